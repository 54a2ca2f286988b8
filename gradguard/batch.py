"""One step's batch: how `TrainStep` takes it apart, describes it in errors, splits it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard.augmentation import upstream

__all__ = [
    "ModelInputError",
    "call_model",
    "describe",
    "head",
    "labels",
    "mismatched_rows",
    "replica_slice",
    "rows_of",
    "sliced",
    "spread_rows",
    "unpack",
]


def describe(structure: Any) -> str:
    """Shapes of a nested input, for error messages: {'a': (32, 4)}; long lists summarized."""
    if isinstance(structure, (list, tuple)) and len(structure) > 8:
        kinds = sorted({type(item).__name__ for item in structure})
        return (
            f"a Python {type(structure).__name__} of {len(structure)} items "
            f"({', '.join(kinds)}): pass a NumPy array or a tensor, e.g. "
            "np.asarray(x, dtype='float32')"
        )

    def shape(t: Any) -> str:
        s = getattr(t, "shape", None)
        if s is None:
            return type(t).__name__
        return "(unknown rank)" if tf.TensorShape(s).rank is None else str(tuple(s))

    return str(tf.nest.map_structure(shape, structure))


def unpack(batch: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight or None)`` from ``step(x, y)``, ``step(x, y, w)`` or ``step((x, y))``.

    Raises:
      TypeError: for another number of arguments, naming their shapes.
    """
    if len(batch) == 1 and isinstance(batch[0], (tuple, list)) and len(batch[0]) in (2, 3):
        batch = tuple(batch[0])
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    raise TypeError(
        f"TrainStep takes step(x, y), step(x, y, sample_weight) or step((x, y)); got "
        f"{len(batch)} argument(s) with shapes {describe(batch)}."
    )


def replica_slice(t: Any, index: Any, replicas: int) -> Any:
    """This replica's rows of a global batch tensor."""
    if t is None:
        return None
    t = tf.convert_to_tensor(t)
    rows = t.shape[0]
    if rows is not None and rows % replicas:
        raise ValueError(
            f"a batch of {rows} examples cannot be split evenly over {replicas} replicas: use a "
            f"global batch size divisible by {replicas}, or drop the remainder "
            "(dataset.batch(..., drop_remainder=True))."
        )
    size = tf.shape(t)[0] // replicas
    return t[index * size : (index + 1) * size]


def training_part(values: np.ndarray, arguments: Any) -> np.ndarray:
    """The examples of `values` (one of `fit`'s arrays) that `fit` trains on.

    `validation_split` (in `fit`'s `arguments` by name) holds out the last examples.
    """
    split = float(arguments.get("validation_split") or 0.0)
    return values[: int(np.floor(len(values) * (1.0 - split)))] if 0.0 < split < 1.0 else values


def head(value: Any, rows: int = 1024) -> np.ndarray | None:
    """The first `rows` examples of one array or tensor, as NumPy (None for a nest, a data set)."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype") or not value.shape:
        return None
    try:
        return np.asarray(value[:rows])
    except (TypeError, ValueError, IndexError):
        return None


def spread(value: Any, rows: int = 1024) -> np.ndarray | None:
    """`rows` examples of one array or tensor spread over all of it (data may be in order)."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype") or not value.shape:
        return None
    try:
        return np.asarray(rows_of(value, spread_rows(int(value.shape[0]), rows)))
    except (TypeError, ValueError, IndexError):
        return None


# Data sets that keep their rows as they are: they only order, group, repeat or drop them.
_KEEPS_ROWS = ("Shuffle", "Batch", "Prefetch", "Cache", "Repeat", "Take", "Skip", "Options")


def sliced(dataset: Any, rows: int = 1024) -> tuple[Any, ...] | None:
    """The first `rows` rows of the arrays a data set slices, as `fit` unpacks an element.

    ``(x, y, sample_weight)`` (y and the weights may be None) when the data set is
    ``from_tensor_slices`` of eager tensors or arrays, then only shuffled, batched, repeated,
    cached, prefetched, taken or skipped: read on the host without drawing an element (which
    would move the data set's shuffle and random ops on). Else None (a map, a generator...).
    """
    *kept, each = upstream(dataset)  # (a chain: its source last)
    keeps = (any(kind in type(one).__name__ for kind in _KEEPS_ROWS) for one in kept)
    if type(each).__name__ != "_TensorSliceDataset" or not all(keeps):
        return None  # (a map, a zip, a generator...)
    specs = tf.nest.flatten(each.element_spec)
    tensors = getattr(each, "_tensors", [])  # (TensorFlow's own: one per leaf, rows first)
    if len(tensors) != len(specs) or not all(isinstance(s, tf.TensorSpec) for s in specs):
        return None  # (ragged or sparse rows are stored otherwise)
    if not all(hasattr(t, "numpy") for t in tensors):
        return None  # (sliced in a graph)
    element = tf.nest.pack_sequence_as(each.element_spec, [t[:rows] for t in tensors])
    if not isinstance(element, tuple):
        return (element, None, None)
    return tuple(element) + (None,) * (3 - len(element)) if len(element) <= 3 else None


def spread_rows(count: int, most: int) -> np.ndarray:
    """Up to `most` indices spread evenly over `count` examples (data may be stored in order)."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).astype(np.int64))


def rows_of(value: Any, rows: np.ndarray) -> Any:
    """The examples `rows` of an array, a tensor or a data frame."""
    if hasattr(value, "iloc"):
        return value.iloc[rows]
    if isinstance(value, np.ndarray):
        return value[rows]
    return tf.gather(value, rows)


def labels(y: Any) -> Any:
    """The labels as a NumPy array when they are one tensor or array (else None)."""
    try:
        return np.asarray(y) if not isinstance(y, (dict, list, tuple)) else None
    except (TypeError, ValueError):
        return None


def class_ids(y: Any) -> np.ndarray | None:
    """`fit`'s labels as one class id per example: ids (a trailing axis of 1) or one-hot rows.

    None for anything else (a regression's targets, soft labels, a dataset, a dict). Reading
    never raises: it runs on whatever a user's `fit` was given.
    """
    labels = np.asarray(y) if isinstance(y, np.ndarray) or hasattr(y, "numpy") else None
    if labels is None or labels.dtype.kind not in "biuf" or labels.ndim == 0:
        return None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2 and np.all((labels == 0) | (labels == 1)):
        if np.all(labels.sum(axis=1) == 1):
            labels = labels.argmax(axis=1)  # one-hot rows
    if labels.ndim != 1:
        return None
    if not (np.issubdtype(labels.dtype, np.integer) or np.all(labels == np.round(labels))):
        return None
    return labels


def mismatched_rows(batch: tuple[Any, Any, Any]) -> str | None:
    """What is wrong when ``(x, y, sample_weight)`` hold different numbers of examples, or None."""
    rows: dict[str, int] = {}
    for name, part in zip(("x", "y", "sample_weight"), batch):
        for leaf in tf.nest.flatten(part):
            shape = tf.TensorShape(getattr(leaf, "shape", None))
            if shape.rank and shape[0] is not None:
                rows.setdefault(name, int(shape[0]))
    if len(set(rows.values())) < 2:
        return None
    counts = ", ".join(f"{name} {n}" for name, n in rows.items())
    return (
        f"the batch's parts hold different numbers of examples ({counts} rows): each example "
        "needs its label (and weight). Slice x and y with the same indices, or batch them "
        "together: tf.data.Dataset.from_tensor_slices((x, y)).batch(n)."
    )


# The op an eager error names, when it is a check users add to debug, not a shape mismatch.
_DEBUGGING_OP = re.compile(r"\[Op:(CheckNumerics\w*|Assert)\]")


class ModelInputError(ValueError):
    """The model could not be called on x: the message names x's shapes and the model's inputs."""


def call_model(model: Any, x: Any, training: bool) -> Any:
    """``model(x, training=training)``, or a ValueError naming x's shapes and the model's inputs.

    Raises:
      ModelInputError: when the model cannot be called on `x`.
    """
    try:
        return model(x, training=training)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
        if _DEBUGGING_OP.search(str(e)):
            raise  # an eager check the user asked for (check_numerics, an assert) failed
        expected = getattr(model, "inputs", None)
        hint = f" The model expects {describe(expected)}." if expected else ""
        shapes = describe(x)
        if "unknown rank" in shapes:  # the step was traced again for a batch of another rank
            hint += " A batch had another rank than the first: keep x's batch axis (x[None] for "
            hint += "one example)."
        raise ModelInputError(
            f"model could not be called on x with shapes {shapes}: {e}.{hint} "
            "Pass x as the model's inputs (a tensor, a tuple or a dict matching its Input "
            "layers)."
        ) from e
