"""The data `lr_find` and `preflight` accept, validated where it enters and pooled as examples.

Users have their data in one of three forms: ``(x, y)`` arrays or tensors, a `tf.data.Dataset`
of ``(x, y)`` batches, or a Python iterable of ``(x, y)`` batches (a list, a generator). `pool`
takes up to a few hundred examples from any of them and holds them as NumPy arrays (``x`` may be
a tuple or a dict of arrays, for multi-input models), so the trial runs can cut fixed-size
batches from them: every batch has the same shape, and the compiled step traces once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["Examples", "pool"]

# Arrays are batched like `model.fit` batches them when no batch size is given.
DEFAULT_BATCH_SIZE = 32
# Batches are taken from a dataset until this many bytes are held (large images stay cheap).
_MAX_BYTES = 256 * 2**20


@dataclasses.dataclass(frozen=True)
class Examples:
    """Examples held in memory, and the batch size the data came in.

    Attributes:
      x: The inputs: an array, or a tuple/dict of arrays with one row per example.
      y: The labels: an array (or a structure of arrays) with one row per example.
      batch_size: The data's own batch size (the first batch's rows), or the one given.
    """

    x: Any
    y: Any
    batch_size: int

    def non_finite(self) -> dict[str, int]:
        """How many examples hold NaN or Inf, in x and in y (only those that do)."""
        found = {}
        for name, part in (("x", self.x), ("y", self.y)):
            bad = np.zeros(len(self), dtype=bool)
            for array in tf.nest.flatten(part):
                values = np.asarray(array)
                if np.issubdtype(values.dtype, np.floating):
                    bad |= ~np.isfinite(values.reshape(len(self), -1)).all(axis=1)
            if bad.any():
                found[name] = int(bad.sum())
        return found

    def __len__(self) -> int:
        return int(tf.nest.flatten(self.y)[0].shape[0])

    def take(self, indices: Any) -> Examples:
        """The examples at `indices` (in that order)."""
        pick = np.asarray(indices)
        x, y = tf.nest.map_structure(lambda a: a[pick], (self.x, self.y))
        return Examples(x, y, self.batch_size)

    def with_labels(self, y: Any) -> Examples:
        """The same inputs with other labels (the same structure and rows)."""
        return Examples(self.x, y, self.batch_size)

    def spread(self, count: int) -> Examples:
        """`count` examples spread over the labels: evenly spaced in the labels' sort order.

        Classes then appear about as often as in all the examples (a rare class too, once
        there are enough examples), and regression targets cover their range: the first
        examples of sorted or imbalanced data may all share one label. Labels other than one
        array are not sorted; the first examples are taken.
        """
        n = len(self)
        if count >= n:
            return self
        if not isinstance(self.y, np.ndarray):
            return self.take(np.arange(count))
        rows = self.y.reshape(n, -1)
        key = rows.argmax(axis=1) if rows.shape[1] > 1 else rows[:, 0]
        order = np.argsort(key, kind="stable")
        return self.take(np.sort(order[np.linspace(0, n - 1, count).round().astype(int)]))

    def shuffled_labels(self, seed: int) -> tuple[Examples, float]:
        """The same inputs with the labels permuted against them, and how many labels changed.

        Returns:
          The examples, and the fraction of them whose label moved by more than a tenth of
          the labels' standard deviation (a class changed, for class labels): with one
          dominant class, most examples keep a label like their own.
        """
        n = len(self)
        permutation = np.random.default_rng(seed).permutation(n)
        y = tf.nest.map_structure(lambda a: a[permutation], self.y)
        changed = np.zeros(n, dtype=bool)
        for before, after in zip(tf.nest.flatten(self.y), tf.nest.flatten(y)):
            old = np.asarray(before, dtype=np.float64).reshape(n, -1)
            new = np.asarray(after, dtype=np.float64).reshape(n, -1)
            scale = old.std(axis=0)
            moved = np.abs(new - old) > 0.1 * np.where(scale > 0, scale, np.inf)
            changed |= moved.any(axis=1)
        return self.with_labels(y), float(changed.mean())

    def batches(self, size: int, seed: int = 0) -> Iterator[tuple[Any, Any]]:
        """Endless batches of exactly `size` examples (or all of them, if fewer), as tensors.

        Each pass over the examples is in a new random order (from `seed`); the examples left
        over at the end of a pass are dropped, so every batch has the same shape.
        """
        n = len(self)
        size = max(1, min(size, n))
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(n)
            for start in range(0, n - size + 1, size):
                batch = self.take(order[start : start + size])
                yield tensors(batch.x), tensors(batch.y)


def tensors(structure: Any) -> Any:
    """Each array of a structure as a tensor."""
    return tf.nest.map_structure(tf.convert_to_tensor, structure)


def pool(
    data: Any, *, max_examples: int, batch_size: int | None = None, what: str = "lr_find"
) -> Examples:
    """Up to `max_examples` examples of `data`, validated, as NumPy arrays.

    Args:
      data: ``(x, y)`` arrays or tensors (a random subset is taken, with a fixed seed, when
        there are more examples than needed), a `tf.data.Dataset` of ``(x, y)`` batches, or an
        iterable of ``(x, y)`` batches (the first batches are taken, in order).
      max_examples: How many examples to hold at most.
      batch_size: The batch size of the trial runs; default: the data's own (32 for arrays).
      what: The caller's name, for error messages.

    Returns:
      The examples.

    Raises:
      TypeError: for data in none of these forms, a batch that is not an ``(x, y)`` pair, or
        values that are not dense numeric arrays.
      ValueError: for data with no examples, or an ``x`` and ``y`` with different numbers of
        rows.
    """
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if _is_pair_of_arrays(data):
        x, y = _pair(data, what, "data")
        n = _rows(x, y, what, "data")
        if n > max_examples:  # a random subset, in the data's order
            keep = np.sort(np.random.default_rng(0).choice(n, max_examples, replace=False))
            x, y = tf.nest.map_structure(lambda a: _subset(a, keep), (x, y))
        x, y = tf.nest.map_structure(lambda a: _numpy(a, what), (x, y))
        return Examples(x, y, batch_size or DEFAULT_BATCH_SIZE)
    if isinstance(data, dict):
        raise TypeError(
            f"{what} takes data as (x, y); got a dict with keys {sorted(map(str, data))}. A "
            "dict of inputs goes in x: pass (x_dict, y)."
        )
    if isinstance(data, (str, bytes)) or _is_array(data) or not _is_iterable(data):
        raise TypeError(
            f"{what} takes data as (x, y) arrays or tensors, a tf.data.Dataset of (x, y) "
            f"batches, or an iterable of (x, y) batches; got {_kind(data)}. Pass e.g. "
            "(x_train, y_train), or tf.data.Dataset.from_tensor_slices((x, y)).batch(32)."
        )
    return _from_batches(data, max_examples, batch_size, what)


def _from_batches(data: Any, max_examples: int, batch_size: int | None, what: str) -> Examples:
    xs: list[Any] = []
    ys: list[Any] = []
    held = size = 0
    for index, batch in enumerate(data):
        x, y = _pair(batch, what, f"batch {index}")
        rows = _rows(x, y, what, f"batch {index}")
        x, y = tf.nest.map_structure(lambda a: _numpy(a, what), (x, y))
        if xs:
            try:
                tf.nest.assert_same_structure((xs[0], ys[0]), (x, y))
            except (ValueError, TypeError):
                raise TypeError(
                    f"{what}: batch {index} is structured {_kind((x, y))}, unlike batch 0 "
                    f"({_kind((xs[0], ys[0]))}); every batch must have the same structure."
                ) from None
        xs.append(x)
        ys.append(y)
        size = size or rows
        held += rows
        nbytes = sum(a.nbytes for a in tf.nest.flatten((xs, ys)))
        if held >= max_examples or nbytes >= _MAX_BYTES:
            break
    if not xs:
        raise ValueError(f"{what} got data with no batches: the dataset or iterable is empty.")

    def concatenate(*arrays: np.ndarray) -> np.ndarray:
        return np.concatenate(arrays)[:max_examples]

    x, y = tf.nest.map_structure(concatenate, *zip(xs, ys))
    return Examples(x, y, batch_size or size)


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, tf.Tensor)) or (
        hasattr(value, "__array__") and hasattr(value, "shape")
    )


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _is_pair_of_arrays(data: Any) -> bool:
    """``(x, y)`` arrays, not a tuple of batches: y is an array (or a dict of arrays)."""
    if not isinstance(data, tuple) or len(data) != 2:
        return False
    y = data[1]
    return _is_array(y) or (isinstance(y, dict) and all(_is_array(v) for v in y.values()))


def _pair(batch: Any, what: str, where: str) -> tuple[Any, Any]:
    if isinstance(batch, dict) or not isinstance(batch, (tuple, list)) or len(batch) != 2:
        count = f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else ""
        hint = (
            " Drop the sample weights: the trial runs weigh every example alike."
            if isinstance(batch, (tuple, list)) and len(batch) == 3
            else ""
        )
        raise TypeError(
            f"{what} needs (x, y) pairs; {where} is {_kind(batch)}{count}.{hint} A dataset "
            "must yield (x, y) tuples, e.g. tf.data.Dataset.from_tensor_slices((x, y))."
        )
    return batch[0], batch[1]


def _rows(x: Any, y: Any, what: str, where: str) -> int:
    counts = set()
    for leaf in tf.nest.flatten((x, y)):
        if isinstance(leaf, (tf.RaggedTensor, tf.SparseTensor)):
            raise TypeError(
                f"{what} needs dense arrays; {where} holds a {type(leaf).__name__}. Pad or "
                "densify it (e.g. ragged.to_tensor())."
            )
        shape = getattr(leaf, "shape", None)
        if shape is None or len(shape) == 0:
            raise TypeError(
                f"{what} needs arrays with one row per example; {where} holds "
                f"{_kind(leaf)}. Pass NumPy arrays or tensors (a tf.data.Dataset batched: "
                "dataset.batch(32), as for model.fit)."
            )
        counts.add(shape[0])
    if len(counts) != 1:
        raise ValueError(
            f"{what}: {where} has x and y with different numbers of rows "
            f"({_kind((x, y))}); x and y must hold one row per example each."
        )
    rows = int(counts.pop())
    if rows == 0:
        raise ValueError(f"{what}: {where} has no examples (0 rows).")
    return rows


def _subset(array: Any, keep: np.ndarray) -> Any:
    if isinstance(array, tf.Tensor):
        return tf.gather(array, keep)
    if isinstance(array, np.ndarray):
        return array[keep]
    return np.asarray(array)[keep]


def _numpy(array: Any, what: str) -> np.ndarray:
    value = array.numpy() if isinstance(array, tf.Tensor) else np.asarray(array)
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise TypeError(
            f"{what} needs numeric arrays; got one of dtype {value.dtype}. Convert the "
            "strings or objects to numbers first (e.g. a StringLookup layer, or np.float32)."
        )
    return value


def _kind(value: Any) -> str:
    """What a value is, for error messages: shapes of arrays, types of the rest."""

    def describe(leaf: Any) -> str:
        shape = getattr(leaf, "shape", None)
        if shape is not None and not isinstance(leaf, type):
            return f"{type(leaf).__name__}{tuple(shape)}"
        return type(leaf).__name__

    if isinstance(value, (tuple, list, dict)):
        try:
            return str(tf.nest.map_structure(describe, value))
        except (TypeError, ValueError):
            return type(value).__name__
    return describe(value)
