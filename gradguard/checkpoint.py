"""Checkpoint validation, guarded restore and crash-safe saving.

A checkpoint saved before the model or optimizer changed (a layer added, a dtype switched, a layer
renamed, a file damaged) usually fails deep inside a restore or `apply_gradients` with an opaque
error, or restores partially and silently. This module looks first and says what differs:

- `validate(path, **objects)` matches the checkpoint to the objects exactly as
  `tf.train.Checkpoint` does (through the object graph, not by names) and returns a `Report`.
- `restore(path, **objects)` validates, builds what must be built (Keras optimizers create their
  slots lazily), restores, checks that every saved value arrived, and never half-restores.
- `save(prefix, **objects)` writes a checkpoint plus the optimizer configuration beside it.
- `Manager` keeps the last N checkpoints, refuses to save NaN, verifies every save before it
  deletes older ones, and restores the newest checkpoint that reads whole.

Example:
  >>> manager = Manager("/tmp/run", max_to_keep=3, model=model, optimizer=optimizer)
  >>> path, report = manager.restore()  # None on a fresh start
  >>> ...  # train
  >>> manager.save()
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import glob
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import h5py
import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras.src.saving import saving_lib
from tensorflow.core.protobuf import trackable_object_graph_pb2

from gradguard.findings import CheckpointError, Finding, Report, Severity, names

__all__ = [
    "CheckpointMismatchError",
    "Manager",
    "VariableInfo",
    "list_variables",
    "main_ckpt",
    "restore",
    "save",
    "validate",
    "watch_restores",
]

_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE = "VARIABLE_VALUE"
_SIDECAR = ".gradguard.json"
_SIDECAR_FORMAT = "gradguard.checkpoint/1"
# Shown in messages; more are counted ("and 12 more"), the table lists them all.
_NAMED = 4

_Spec = tuple[tuple[int, ...], str]


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that cannot be restored as asked; nothing was changed.

    Attributes:
      report: Every finding, not only the first error.
      finding: The first error finding (as for every `GradGuardError`).
    """

    def __init__(self, report: Report, text: str | None = None):
        errors = [f for f in report.findings if f.severity is Severity.ERROR]
        super().__init__((errors or report.findings)[0])
        self.report = report
        self.text = text if text is not None else _findings_text(report)

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class VariableInfo:
    """One value stored in a checkpoint.

    Attributes:
      name: Its model path (``dense_1/kernel``), or where it is in the file if it has none.
      key: Where it is in the file: the checkpoint key or the HDF5 dataset path.
      shape: Its shape.
      dtype: Its dtype name.
      size: Its size in bytes.
    """

    name: str
    key: str
    shape: tuple[int, ...]
    dtype: str
    size: int


@dataclasses.dataclass
class _Value:
    """One saved value and the live variable it restores into; either side may be absent."""

    name: str
    key: str = ""
    saved: _Spec | None = None
    variable: Any = None
    current: _Spec | None = None
    optimizer: bool = False
    problem: str | None = None


@dataclasses.dataclass
class _Check:
    """What validation found: each value side by side, and the findings."""

    path: str
    values: list[_Value]
    report: Report
    # What restore needs afterwards: how to read the saved arrays back.
    read: Callable[[str], np.ndarray] | None = None


# ---------------------------------------------------------------------------------------------
# Public functions.


def validate(path: str | os.PathLike[str], **objects: Any) -> Report:
    """Checks a checkpoint against the objects it would be restored into, changing nothing.

    Saved values are matched to variables through the object graph, exactly as
    `tf.train.Checkpoint(**objects).restore(path)` matches them, and every tensor is read once so
    that a damaged file is found now rather than half-way through a restore. A Keras optimizer
    that has not been built yet is compared through a built copy of itself, since its slots do
    not exist until its first step (one that cannot be copied from its config is built, as its
    first step would).

    Args:
      path: A TensorFlow checkpoint prefix (``ckpt-3``), a directory holding one (the latest is
        used), or a Keras weights file (``.weights.h5``, ``.keras``).
      **objects: What the checkpoint is restored into, as passed to `tf.train.Checkpoint`, e.g.
        ``model=model, optimizer=optimizer``. For a Keras file, the Keras model. With no objects
        only the file itself is checked.

    Returns:
      A `Report` of `checkpoint-*` findings; empty when the checkpoint fits.

    Raises:
      FileNotFoundError: if nothing is found at `path`.
      ValueError: if a Keras model has not been built yet.

    Example:
      >>> report = gradguard.checkpoint.validate("/tmp/run/ckpt-3", model=model, optimizer=opt)
      >>> print(report)
    """
    return _check(_resolve(path), objects, build=False).report


def restore(path: str | os.PathLike[str], strict: bool = True, **objects: Any) -> Report:
    """Validates a checkpoint, then restores it whole, or raises and changes nothing.

    Keras optimizers that have not been built are built first with the variables the checkpoint
    says they were built with, so their slots are really restored; afterwards every restored
    value is read back and compared with the checkpoint.

    Args:
      path: As for `validate`.
      strict: If True, any error finding raises. If False, missing variables, unexpected saved
        values and optimizer state that cannot be restored are reported and the rest is
        restored (as `expect_partial()` would); shape or dtype mismatches and corruption still
        raise, since restoring around them would be partial.
      **objects: As for `validate`.

    Returns:
      The validation `Report` (warnings, and with `strict=False` the errors it let through).

    Raises:
      CheckpointMismatchError: with the table of what differs; no variable was changed.
      FileNotFoundError: if nothing is found at `path`.
    """
    return _restore(_resolve(path), objects, strict, root=None)


def save(path_prefix: str | os.PathLike[str], *, force: bool = False, **objects: Any) -> str:
    """Writes a checkpoint, with the optimizer configuration recorded beside it.

    The configuration (class, learning rate or schedule, betas, epsilon, clipping) is written to
    ``<prefix>.gradguard.json`` so that `validate` can report what changed since.

    Args:
      path_prefix: The checkpoint prefix, as for `tf.train.Checkpoint.write`.
      force: Save even if a weight or optimizer slot holds NaN or Inf.
      **objects: As for `tf.train.Checkpoint`.

    Returns:
      The checkpoint prefix written.

    Raises:
      NonFiniteError: (a `non-finite` finding) if a variable holds NaN or Inf and not `force`.
    """
    root = tf.train.Checkpoint(**objects)
    if not force:
        _refuse_non_finite(root, objects)
    prefix = os.fspath(path_prefix)
    _write_sidecar(prefix, objects)
    return str(root.write(prefix))


def list_variables(path: str | os.PathLike[str]) -> list[VariableInfo]:
    """Lists the values a checkpoint holds, without reading them.

    Args:
      path: As for `validate`.

    Returns:
      One `VariableInfo` per saved value, sorted by name.

    Raises:
      FileNotFoundError: if nothing is found at `path`.
      CheckpointMismatchError: (`checkpoint-corrupt`) if the file's index cannot be read.
    """
    path = _resolve(path)
    if _is_keras_file(path):
        specs, _, problems = _read_h5(path, read_data=False)
        if problems:
            raise CheckpointMismatchError(Report(problems))
        infos = [(key, key, spec) for key, spec in specs.items()]
    else:
        try:
            reader = tf.train.load_checkpoint(path)
        except Exception as e:  # noqa: BLE001 - any failure to open is reported the same way
            raise CheckpointMismatchError(Report([_corrupt_index(path, e)])) from None
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        graph_names: dict[str, str] = {}
        try:
            graph_names = _saved_names(_graph(reader))[1]
        except Exception:  # noqa: BLE001 - names are a nicety; a bad graph is found by validate
            pass
        infos = [
            (graph_names.get(k, _object_path(k)), k, (tuple(shapes[k]), dtypes[k].name))
            for k in shapes
            if k != _GRAPH_KEY
        ]
    return sorted(
        (
            VariableInfo(name, key, shape, dtype, _nbytes(shape, dtype))
            for name, key, (shape, dtype) in infos
        ),
        key=lambda info: _natural(info.name),
    )


# ---------------------------------------------------------------------------------------------
# Resolving paths and opening files.


def _resolve(path: str | os.PathLike[str]) -> str:
    """Turns a directory, a prefix or one of a checkpoint's files into what TF and Keras read."""
    path = os.fspath(path)
    if os.path.isdir(path):
        # The state file of a CheckpointManager, else the newest index (`write` keeps no state).
        indexes = sorted(
            glob.glob(os.path.join(glob.escape(path), "*.index")), key=os.path.getmtime
        )
        latest = tf.train.latest_checkpoint(path) or (
            indexes[-1][: -len(".index")] if indexes else None
        )
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in directory {path!r}.")
        return str(latest)
    path = re.sub(r"\.(index|data-\d+-of-\d+)$", "", path)
    if _is_keras_file(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no Keras weights file at {path!r}.")
        return path
    if not glob.glob(glob.escape(path) + ".*") and not os.path.isdir(path + "_temp"):
        raise FileNotFoundError(
            f"no checkpoint at {path!r}: expected {path}.index and {path}.data-*-of-*."
        )
    return path


def _is_keras_file(path: str) -> bool:
    return path.endswith((".h5", ".keras"))


def _data_files(prefix: str) -> list[str]:
    return sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    try:
        itemsize = tf.as_dtype(dtype).size
    except TypeError:
        itemsize = 0  # strings: their size is not known from the index
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _corrupt(message: str, files: Iterable[str]) -> Finding:
    return Finding("checkpoint-corrupt", message, variables=tuple(files))


def _corrupt_index(prefix: str, error: BaseException) -> Finding:
    index = prefix + ".index"
    if not os.path.exists(index):
        why = "it is missing (the save did not finish, or the file was deleted)"
    else:
        why = f"it cannot be read ({_first_line(error)})"
    return _corrupt(
        f"checkpoint index {index} is unusable: {why}; restore an older checkpoint.", [index]
    )


def _graph(reader: Any) -> Any:
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(_GRAPH_KEY))
    return graph


def _read_tf(prefix: str, read_data: bool = True) -> tuple[Any, list[Finding]]:
    """Opens a TF checkpoint and reads every tensor once (which verifies their checksums).

    Returns:
      The reader (None if the checkpoint is damaged) and `checkpoint-corrupt` findings.
    """
    data = _data_files(prefix)
    shards = {int(m.group(1)) for f in data if (m := re.search(r"-of-(\d+)$", f))}
    expected = [f"{prefix}.data-{i:05d}-of-{n:05d}" for n in shards for i in range(n)]
    missing = [f for f in expected if not os.path.exists(f)]
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # noqa: BLE001 - TF raises several types for a bad index
        return None, [_corrupt_index(prefix, e)]
    if not data or missing:
        missing = missing or [f"{prefix}.data-00000-of-00001"]
        return None, [
            _corrupt(
                f"checkpoint {prefix} is missing its data file(s) {', '.join(missing)}; "
                "restore an older checkpoint.",
                missing,
            )
        ]
    bad: dict[str, str] = {}
    shapes = reader.get_variable_to_shape_map()
    for key in shapes if read_data else [k for k in shapes if k == _GRAPH_KEY]:
        try:
            reader.get_tensor(key)
        except Exception as e:  # noqa: BLE001 - TF raises OpError, IndexError, ...
            bad[key] = _first_line(e)
    if not bad:
        return reader, []
    # TF names the shard when it knows it ("shard 0"); otherwise every data file is suspect.
    shard = re.search(r"shard (\d+)", " ".join(bad.values()))
    files = [f for f in data if shard and f".data-{int(shard.group(1)):05d}-" in f] or data
    first = next(iter(bad))
    return None, [
        _corrupt(
            f"{len(bad)} value(s) in {', '.join(files)} cannot be read whole (first: "
            f"{_object_path(first)}: {bad[first]}); the file is truncated or damaged, "
            "restore an older checkpoint.",
            files,
        )
    ]


def _open_h5(path: str) -> Any:
    """Opens the weights of a `.weights.h5` or `.keras` file (checking the archive's CRCs)."""
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ValueError(f"member {bad} fails its CRC check")
            return h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    return h5py.File(path, "r")


def _read_h5(
    path: str, read_data: bool = True
) -> tuple[dict[str, _Spec], dict[str, np.ndarray], list[Finding]]:
    """Reads every dataset of a Keras weights file once.

    Returns:
      Shape and dtype by dataset path, the arrays, and `checkpoint-corrupt` findings.
    """
    specs: dict[str, _Spec] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            dtype = "bfloat16" if obj.attrs.get("dtype") == "bfloat16" else obj.dtype.name
            specs[name] = (tuple(obj.shape), dtype)

    try:
        with _open_h5(path) as h5:
            h5.visititems(visit)
            arrays = {name: np.asarray(h5[name]) for name in specs} if read_data else {}
    except Exception as e:  # noqa: BLE001 - h5py and zipfile raise many types
        message = (
            f"Keras weights file {path} cannot be read whole ({_first_line(e)}); it is truncated "
            "or damaged."
        )
        return {}, {}, [_corrupt(message, [path])]
    return specs, arrays, []


# ---------------------------------------------------------------------------------------------
# Live objects: variables, optimizers, names.


def _is_variable(obj: Any) -> bool:
    return isinstance(obj, (tf.Variable, keras.Variable))


def _is_optimizer(obj: Any) -> bool:
    return isinstance(obj, keras.optimizers.Optimizer)


def _spec(variable: Any) -> _Spec:
    return tuple(int(d) for d in variable.shape), tf.as_dtype(variable.dtype).name


def _children(obj: Any) -> dict[str, Any]:
    return dict(obj._trackable_children())


def _walk(root: Any, substitutes: Mapping[int, Any]) -> dict[int, tuple[str, Any]]:
    """Every object reachable from `root`, by id, with its first (shortest) path."""
    seen: dict[int, tuple[str, Any]] = {}
    queue = collections.deque([("", root)])
    while queue:
        path, obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen[id(obj)] = (path, obj)
        for name, child in _children(obj).items():
            child = substitutes.get(id(child), child)
            queue.append((f"{path}/{name}" if path else name, child))
    return seen


def _strip_first(path: str) -> str:
    return path.split("/", 1)[1] if "/" in path else path


# Lists an optimizer holds that are not slots (parallel to its trainable variables).
_NOT_SLOTS = frozenset({"_variables", "_trainable_variables", "_trainable_variables_indices"})


def _singular(attribute: str) -> str:
    """``_momentums`` -> ``momentum``, ``_velocities`` -> ``velocity``: the slot's name."""
    name = attribute.lstrip("_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def _live_names(
    objects: Mapping[str, Any],
    walk: Mapping[int, tuple[str, Any]],
    optimizers: Iterable[tuple[str, Any]],
) -> dict[int, str]:
    """Display names of live variables: ``dense/kernel``, ``optimizer/dense/kernel/velocity``.

    A slot is named after the variable it belongs to: Keras 3 optimizers keep each kind of slot
    in a list parallel to their trainable variables (``_momentums[i]`` for variable ``i``).
    """
    result: dict[int, str] = {}
    layers = {k: v for k, v in objects.items() if isinstance(v, keras.Layer)}
    for key, layer in layers.items():
        for variable, name in zip(layer.weights, names(layer.weights, layer.name), strict=True):
            result.setdefault(id(variable), f"{key}/{name}" if len(layers) > 1 else name)
    for key, optimizer in optimizers:
        trainable = list(getattr(optimizer, "_trainable_variables", []))
        slots = {}
        for attribute, child in _children(optimizer).items():
            if attribute in _NOT_SLOTS or not isinstance(child, list) or not trainable:
                continue
            if len(child) == len(trainable) and all(_is_variable(v) for v in child):
                for variable, slot in zip(trainable, child, strict=True):
                    base = result.get(id(variable)) or names([variable])[0]
                    slots[id(slot)] = f"{base}/{_singular(attribute)}"
        for variable in optimizer.variables:
            result.setdefault(id(variable), f"{key}/{slots.get(id(variable), variable.name)}")
    for path, obj in walk.values():
        if _is_variable(obj):
            result.setdefault(id(obj), path)
    return result


@dataclasses.dataclass
class _SavedOptimizer:
    """A Keras 3 optimizer in a saved object graph, as node ids."""

    trainable: list[int]
    own: list[int]
    # slot node -> (the trainable variable's node, the slot's name)
    slots: dict[int, tuple[int, str]]


def _optimizer_nodes(graph: Any) -> dict[int, _SavedOptimizer]:
    """Saved Keras 3 optimizers, recognised by the lists every one of them holds."""
    result = {}
    for node_id, node in enumerate(graph.nodes):
        lists = {ref.local_name: _list_nodes(graph, ref.node_id) for ref in node.children}
        if not {"_variables", "_iterations", "_trainable_variables"} <= set(lists):
            continue
        trainable = lists["_trainable_variables"]
        slots = {
            slot: (variable, _singular(attribute))
            for attribute, items in lists.items()
            if attribute not in _NOT_SLOTS and trainable and len(items) == len(trainable)
            for variable, slot in zip(trainable, items, strict=True)
        }
        result[node_id] = _SavedOptimizer(trainable, lists["_variables"], slots)
    return result


def _list_nodes(graph: Any, node_id: int) -> list[int]:
    """The items of a saved list (children named 0, 1, ...), in order; [] if not a list."""
    children = graph.nodes[node_id].children
    if not children or not all(c.local_name.isdigit() for c in children):
        return []
    return [c.node_id for c in sorted(children, key=lambda c: int(c.local_name))]


def _saved_names(
    graph: Any, known: Mapping[int, str] | None = None
) -> tuple[dict[int, str], dict[str, str]]:
    """Display names of saved values, from the saved object graph.

    A model variable is named by its Keras path when the checkpoint recorded one
    (``sequential/dense/kernel`` -> ``dense/kernel``), else by its object path
    (``model/dense1/kernel``); slots as in `_live_names`, so a value reads the same whichever
    side has it.

    Args:
      graph: The saved `TrackableObjectGraph`.
      known: Names already known for some nodes (those of the live variables they match), so
        that a slot is named after the variable as it is now.

    Returns:
      Names by node id and by checkpoint key.
    """
    paths = _node_paths(graph)
    result: dict[int, str] = dict(known or {})
    for node_id, node in enumerate(graph.nodes):
        if node_id not in result and any(a.name == _VALUE for a in node.attributes):
            name = _strip_first(_full_name(graph, node_id))
            result[node_id] = name if "/" in name else paths.get(node_id, name)
    for opt_node, optimizer in _optimizer_nodes(graph).items():
        for node in optimizer.own:
            if known and node in known:
                continue
            if node in optimizer.slots:
                variable, slot = optimizer.slots[node]
                result[node] = f"{paths[opt_node]}/{result.get(variable, variable)}/{slot}"
            else:
                result[node] = f"{paths[opt_node]}/{_strip_first(_full_name(graph, node))}"
    by_key = {
        a.checkpoint_key: result[i]
        for i, node in enumerate(graph.nodes)
        for a in node.attributes
        if i in result
    }
    return result, by_key


def _full_name(graph: Any, node_id: int) -> str:
    attrs = [a for a in graph.nodes[node_id].attributes if a.name == _VALUE]
    return attrs[0].full_name.split(":")[0] if attrs else ""


def _node_paths(graph: Any) -> dict[int, str]:
    """A readable object path to each saved node (``model/dense1/kernel``), breadth-first.

    The way through an optimizer's list of trainable variables is not taken: the model's own
    path names them better.
    """
    paths = {0: ""}
    queue = collections.deque([0])
    while queue:
        node_id = queue.popleft()
        for ref in graph.nodes[node_id].children:
            if ref.node_id not in paths and ref.local_name != "_trainable_variables":
                parent, name = paths[node_id], ref.local_name.lstrip("_")
                paths[ref.node_id] = f"{parent}/{name}" if parent else name
                queue.append(ref.node_id)
    return paths


def _object_path(key: str) -> str:
    return key.split("/.ATTRIBUTES/")[0]


# ---------------------------------------------------------------------------------------------
# Matching a TF checkpoint to live objects.


def _match(graph: Any, root: Any, substitutes: Mapping[int, Any]) -> dict[int, Any]:
    """Binds saved nodes to live objects breadth-first, as `tf.train.Checkpoint.restore` does.

    Each saved node's children are looked up by their local name among the live object's
    trackable children; the first path to reach a node binds it (see TF's
    `restore._queue_children_for_restoration`).
    """
    bound = {0: root}
    queue = collections.deque([0])
    while queue:
        node_id = queue.popleft()
        obj = bound[node_id]
        children = _children(obj)
        for ref in graph.nodes[node_id].children:
            if ref.node_id in bound:
                continue
            child = obj._lookup_dependency(ref.local_name, children)
            if child is None:
                continue
            bound[ref.node_id] = substitutes.get(id(child), child)
            queue.append(ref.node_id)
    return bound


def _prepare_optimizers(graph: Any, bound: Mapping[int, Any], build: bool) -> dict[int, Any]:
    """Makes unbuilt Keras optimizers comparable: their slots exist only once built.

    The variables to build with are those the saved optimizer was built with (its saved
    `_trainable_variables`, mapped to live variables through the object graph), in the saved
    order, so that slot `i` lands where it was. With `build`, the live optimizer is built (for a
    restore); otherwise a built copy stands in for it, so that validation changes nothing.

    Returns:
      Stand-ins by id of the live optimizer they replace.
    """
    substitutes: dict[int, Any] = {}
    for node_id, saved in _optimizer_nodes(graph).items():
        optimizer: Any = bound.get(node_id)
        if not _is_optimizer(optimizer) or optimizer.built or not saved.trainable:
            continue
        variables = [bound.get(n) for n in saved.trainable]
        if not all(_is_variable(v) for v in variables):
            continue  # the model changed; its slots are reported as not restorable
        substitutes[id(optimizer)] = _built(optimizer, variables, build)
    return substitutes


def _built(optimizer: Any, variables: list[Any], build: bool) -> Any:
    """The optimizer built with `variables`: itself if `build`, else a built copy of it."""
    if not build:
        try:
            optimizer = type(optimizer).from_config(optimizer.get_config())
        except Exception:  # noqa: BLE001 - a custom optimizer that cannot be copied
            pass  # is built itself, as its first step would do anyway
    optimizer.build(variables)
    return optimizer


def _check_tf(prefix: str, objects: Mapping[str, Any], root: Any, build: bool) -> _Check:
    # `build` comes from a restore, right after a validation that read every tensor.
    reader, problems = _read_tf(prefix, read_data=not build)
    check = _Check(prefix, [], Report(problems))
    if reader is None or not objects:
        return check
    if _GRAPH_KEY not in reader.get_variable_to_shape_map():
        raise ValueError(
            f"{prefix} has no object graph: it is a name-based (TF1 Saver) checkpoint; "
            "gradguard validates checkpoints written by tf.train.Checkpoint or Keras."
        )
    check.read = reader.get_tensor
    graph = _graph(reader)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    substitutes = _prepare_optimizers(graph, _match(graph, root, {}), build)
    bound = _match(graph, root, substitutes)
    walk = _walk(root, substitutes)
    optimizers = [(path, obj) for path, obj in walk.values() if _is_optimizer(obj)]
    live_names = _live_names(objects, walk, optimizers)
    known = {n: live_names[id(v)] for n, v in bound.items() if id(v) in live_names}
    saved_names = _saved_names(graph, known)[0]
    paths = _node_paths(graph)
    optimizer_owned = {id(v) for _, opt in optimizers for v in opt.variables}
    saved_owner = {n: o for o, saved in _optimizer_nodes(graph).items() for n in saved.own}

    restored: set[int] = set()
    for node_id, node in enumerate(graph.nodes):
        if paths.get(node_id) == "save_counter":
            continue  # bookkeeping of tf.train.Checkpoint.save, not user state
        for attr in node.attributes:
            if attr.name != _VALUE:
                continue  # other state (iterators, tables) has no shape to compare
            key = attr.checkpoint_key
            saved = (tuple(shapes[key]), dtypes[key].name)
            live = bound.get(node_id)
            if _is_variable(live):
                restored.add(id(live))
                current = _spec(live)
                problem = None
                if saved[0] != current[0]:
                    problem = "checkpoint-shape-mismatch"
                elif saved[1] != current[1]:
                    problem = "checkpoint-dtype-mismatch"
                value = _Value(
                    live_names.get(id(live), saved_names[node_id]),
                    key,
                    saved,
                    live,
                    current,
                    id(live) in optimizer_owned,
                    problem,
                )
            else:
                # A saved optimizer slot whose optimizer is here but did not get it is lost
                # state; a value of an object not passed at all is merely unexpected.
                owner = saved_owner.get(node_id)
                lost = owner is not None and _is_optimizer(bound.get(owner))
                value = _Value(
                    saved_names[node_id],
                    key,
                    saved,
                    optimizer=owner is not None,
                    problem="checkpoint-optimizer-state-not-restored"
                    if lost
                    else "checkpoint-unexpected-variables",
                )
            check.values.append(value)
    for path, obj in walk.values():
        if _is_variable(obj) and id(obj) not in restored and path != "save_counter":
            check.values.append(
                _Value(
                    live_names[id(obj)],
                    variable=obj,
                    current=_spec(obj),
                    optimizer=id(obj) in optimizer_owned,
                    problem="checkpoint-missing-variables",
                )
            )
    for finding in _findings(check.values, prefix):
        check.report.add(finding)
    for finding in _config_findings(prefix, objects):
        check.report.add(finding)
    return check


# ---------------------------------------------------------------------------------------------
# Matching a Keras weights file to a live model.


class _RecordingStore(saving_lib.H5IOStore):
    """Receives what `model.save_weights` would write, keeping the variables instead.

    Walking the model with Keras' own `_save_state` gives exactly the dataset paths that
    `load_weights` will read, without writing anything.
    """

    def __init__(self) -> None:  # no file: nothing is written
        self.path = ""
        self.values: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return True

    def make(self, path: str, metadata: dict[str, Any] | None = None) -> _RecordingStore:
        self.path = f"{path}/vars" if path else "vars"
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[f"{self.path}/{key}"] = value

    def close(self) -> None:
        pass


def _model(objects: Mapping[str, Any]) -> Any:
    layers = [v for v in objects.values() if isinstance(v, keras.Layer)]
    if len(layers) != 1:
        raise ValueError(
            "a Keras weights file holds one model's weights; pass that model as model=...; "
            f"got {sorted(objects)}."
        )
    return layers[0]


def _check_keras(path: str, objects: Mapping[str, Any], build: bool) -> _Check:
    specs, arrays, problems = _read_h5(path)
    check = _Check(path, [], Report(problems))
    if problems or not objects:
        return check
    check.read = arrays.__getitem__
    model = _model(objects)
    optimizer = getattr(model, "optimizer", None)
    store = _RecordingStore()
    skip = {id(optimizer)} if optimizer is not None else set()
    saving_lib._save_state(model, store, None, "", visited_saveables=skip)
    if optimizer is not None:
        # Like a Keras `.keras` load, which builds the optimizer before loading its slots.
        if not optimizer.built and any(k.startswith("optimizer/") for k in specs):
            optimizer = _built(optimizer, model.trainable_variables, build)
        for i, variable in enumerate(optimizer.variables):
            store.values[f"optimizer/vars/{i}"] = variable
    live_names = _live_names({"model": model}, {}, [("optimizer", optimizer)] if optimizer else [])
    for key in sorted(set(specs) | set(store.values), key=_natural):
        live = store.values.get(key)
        is_optimizer = key.startswith("optimizer/")
        name = live_names.get(id(live), key) if _is_variable(live) else key
        current = _spec(live) if _is_variable(live) else None
        if live is not None and current is None:
            array = np.asarray(live)
            current = (tuple(array.shape), array.dtype.name)
        saved = specs.get(key)
        problem = None
        if saved is None:
            problem = "checkpoint-missing-variables"
        elif current is None:
            problem = (
                "checkpoint-optimizer-state-not-restored"
                if is_optimizer and optimizer is not None
                else "checkpoint-unexpected-variables"
            )
        elif saved[0] != current[0]:
            problem = "checkpoint-shape-mismatch"
        elif saved[1] != current[1]:
            problem = "checkpoint-dtype-mismatch"
        value = _Value(
            name, key, saved, live if _is_variable(live) else None, current, is_optimizer, problem
        )
        check.values.append(value)
    for finding in _findings(check.values, path):
        check.report.add(finding)
    return check


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


# ---------------------------------------------------------------------------------------------
# Findings and the table.


def _fmt(spec: _Spec | None) -> str:
    if spec is None:
        return "-"
    shape, dtype = spec
    return f"{shape} {dtype}"


def _listing(values: list[_Value], detail: Callable[[_Value], str]) -> str:
    shown = ", ".join(f"{v.name} {detail(v)}".strip() for v in values[:_NAMED])
    more = len(values) - _NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _versus(value: _Value, index: int) -> str:
    """``(saved (3, 2), now (3, 4))`` for index 0 (shape) or 1 (dtype)."""
    saved = value.saved[index] if value.saved else "?"
    current = value.current[index] if value.current else "?"
    return f"(saved {saved}, now {current})"


def _findings(values: list[_Value], where: str) -> list[Finding]:
    """One finding per code, naming the variables with saved and current shape and dtype."""
    by_code: dict[str, list[_Value]] = collections.defaultdict(list)
    for value in values:
        if value.problem:
            by_code[value.problem].append(value)
    findings = []
    for code, group in by_code.items():
        # Model variables first: they are what the user changed; slots follow from them.
        group.sort(key=lambda v: v.optimizer)
        severity = None
        if code in ("checkpoint-shape-mismatch", "checkpoint-dtype-mismatch"):
            what = "shape" if code == "checkpoint-shape-mismatch" else "dtype"
            listing = _listing(group, functools.partial(_versus, index=int(what == "dtype")))
            fix = (
                "build the model as it was when saved (same layers and units)"
                if what == "shape"
                else "create the model with the dtype it was saved with (set dtype= or the "
                "mixed-precision policy before building) and cast after restoring"
            )
            message = f"{len(group)} variable(s) differ in {what} from {where}: {listing}; {fix}."
        elif code == "checkpoint-missing-variables":
            model_missing = [v for v in group if not v.optimizer]
            if not model_missing:
                severity = Severity.WARNING
                message = (
                    f"{len(group)} optimizer variable(s) have no saved value in {where}: "
                    f"{_listing(group, lambda v: '')}; they keep their current values (the "
                    "optimizer starts fresh), which is fine only if that is intended."
                )
            else:
                message = (
                    f"{len(group)} variable(s) have no saved value in {where}: "
                    f"{_listing(group, lambda v: f'{_fmt(v.current)}')}; they would keep their "
                    "initial values (was a layer added or renamed after saving?); restore into "
                    "the model as it was saved, or with strict=False to start them fresh."
                )
        elif code == "checkpoint-unexpected-variables":
            message = (
                f"{len(group)} saved value(s) in {where} have no variable to go into: "
                f"{_listing(group, lambda v: _fmt(v.saved))}; they will not be restored (was "
                "a layer removed or renamed, or an object such as optimizer= not passed?)."
            )
        else:  # checkpoint-optimizer-state-not-restored
            message = (
                f"{len(group)} saved optimizer value(s) in {where} do not reach the optimizer: "
                f"{_listing(group, lambda v: _fmt(v.saved))}; its state (e.g. Adam's moments) "
                "would silently start from zero; use the optimizer class and variables it was "
                "saved with."
            )
        details = {
            "path": where,
            "values": [
                {"name": v.name, "key": v.key, "saved": _fmt(v.saved), "current": _fmt(v.current)}
                for v in group
            ],
        }
        findings.append(
            Finding(
                code,
                message,
                variables=tuple(v.name for v in group),
                severity=severity,
                details=details,
            )
        )
    return findings


def _table(values: list[_Value], all_rows: bool = False) -> str:
    rows = [
        (v.name, _fmt(v.saved), _fmt(v.current), v.problem or "ok")
        for v in sorted(values, key=lambda v: v.optimizer)  # model first, then its slots
        if all_rows or v.problem
    ]
    if not rows:
        return ""
    header = ("variable", "saved", "current", "problem")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _findings_text(report: Report) -> str:
    """The findings one per line; checkpoint findings belong to no step, so none is shown."""
    if not report.findings:
        return "gradguard: no findings."
    lines = [f"gradguard: {len(report)} finding(s):"]
    lines += [
        f"  {f.severity.value:7s} {f.code}: {f.message}" for f in report.findings if f.severity
    ]
    return "\n".join(lines)


def _text(check: _Check) -> str:
    """What a CheckpointMismatchError says: the table of what differs, then the findings."""
    table = _table(check.values)
    report = _findings_text(check.report)
    return f"checkpoint {check.path}:\n{table}\n{report}" if table else report


# ---------------------------------------------------------------------------------------------
# Optimizer configuration.


def _optimizer_config(optimizer: Any) -> dict[str, Any]:
    """The configuration as flat fields: ``beta_1``, ``learning_rate.decay_steps``, ..."""
    # Through JSON so that saved and current compare alike (tuples, numpy scalars).
    config = json.loads(json.dumps(optimizer.get_config(), default=str))
    return {"class": type(optimizer).__name__, **_flatten(config)}


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested Keras configs (a schedule, a wrapped optimizer) into dotted fields."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("name", "module", "registered_name"):
            continue  # names are auto-generated (adam, adam_1) and differ between runs
        if key == "config" and isinstance(value, Mapping):
            flat.update(_flatten(value, prefix))
        elif isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{'class' if key == 'class_name' else key}"] = value
    return flat


def _write_sidecar(prefix: str, objects: Mapping[str, Any]) -> None:
    optimizers = {k: _optimizer_config(v) for k, v in objects.items() if _is_optimizer(v)}
    if not optimizers:
        return
    text = json.dumps({"format": _SIDECAR_FORMAT, "optimizers": optimizers}, indent=2)
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)  # as TF's write does
    temporary = f"{prefix}{_SIDECAR}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(temporary, prefix + _SIDECAR)  # a crash leaves the old file or the new, whole


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _config_findings(prefix: str, objects: Mapping[str, Any]) -> list[Finding]:
    try:
        with open(prefix + _SIDECAR, encoding="utf-8") as f:
            saved_all = json.load(f)["optimizers"]
    except (OSError, ValueError, KeyError):
        return []  # not saved through gradguard: nothing to compare with
    findings = []
    for key, saved in saved_all.items():
        optimizer = objects.get(key)
        if not _is_optimizer(optimizer):
            continue
        current = _optimizer_config(optimizer)
        changed = {
            field: {"saved": saved.get(field), "current": current.get(field)}
            # Fields of one side only come from another class or Keras version: not changes.
            for field in sorted(set(saved) & set(current))
            if saved[field] != current[field]
        }
        if not changed:
            continue
        listing = ", ".join(
            f"{k} {_short(v['saved'])} -> {_short(v['current'])}" for k, v in changed.items()
        )
        note = ""
        if "learning_rate" in changed:  # a float; a schedule's fields are dotted
            note = (
                " Restoring puts the saved learning rate back (it is a saved variable): set "
                f"{key}.learning_rate after restoring to keep the new one."
            )
        findings.append(
            Finding(
                "checkpoint-optimizer-config-changed",
                f"{key} configuration changed since the save ({listing}); this is often "
                f"deliberate (a new learning rate on resume), check that it is.{note}",
                variables=(key,),
                details={"path": prefix, "changed": changed},
            )
        )
    return findings


# ---------------------------------------------------------------------------------------------
# Restore.


def _check(path: str, objects: Mapping[str, Any], build: bool, root: Any = None) -> _Check:
    for key, obj in objects.items():
        if isinstance(obj, keras.Layer) and not obj.built:
            raise ValueError(
                f"{key} has not been built, so it has no variables to compare or restore into; "
                "call it on a batch (or model.build(input_shape)) first."
            )
    if _is_keras_file(path):
        return _check_keras(path, objects, build)
    if root is None:
        root = tf.train.Checkpoint(**objects)
    return _check_tf(path, objects, root, build)


_BLOCKING = {"checkpoint-corrupt", "checkpoint-shape-mismatch", "checkpoint-dtype-mismatch"}


def _restore(path: str, objects: Mapping[str, Any], strict: bool, root: Any) -> Report:
    if not objects:
        raise ValueError("restore needs the objects to restore into, e.g. model=..., optimizer=...")
    if root is None and not _is_keras_file(path):
        root = tf.train.Checkpoint(**objects)
    check = _check(path, objects, build=False, root=root)
    errors = {f.code for f in check.report.findings if f.severity is Severity.ERROR}
    if errors & _BLOCKING or (strict and errors):
        raise CheckpointMismatchError(check.report, _text(check))
    # Build unbuilt optimizers for real now, then match again so the variables are the real ones.
    check = _check(path, objects, build=True, root=root)
    variables = {id(v.variable): v.variable for v in check.values if v.variable is not None}
    snapshot = {i: v.numpy() for i, v in variables.items()}
    try:
        if _is_keras_file(path):
            _model(objects).load_weights(path, skip_mismatch=not strict)
        else:
            root.restore(path).expect_partial()  # what does not fit is in the report already
        lost = _verify(check)
    except Exception as e:
        _roll_back(variables, snapshot)
        if isinstance(e, CheckpointMismatchError):
            raise
        finding = _corrupt(
            f"restoring {path} failed half-way ({_first_line(e)}); every variable was put back "
            "as it was.",
            [path],
        )
        raise CheckpointMismatchError(Report([*check.report.findings, finding])) from e
    if lost:
        for finding in _findings(lost, path):
            check.report.add(finding)
        if strict:
            _roll_back(variables, snapshot)
            raise CheckpointMismatchError(check.report, _text(check))
    for finding in check.report.findings:
        log = logging.error if finding.severity is Severity.ERROR else logging.warning
        log("gradguard [%s]: %s", finding.code, finding.message)
    return check.report


def _verify(check: _Check) -> list[_Value]:
    """Reads every restored variable back and compares it with its saved value."""
    assert check.read is not None
    lost = []
    for value in check.values:
        if value.variable is None or value.saved is None or value.problem:
            continue
        saved, current = check.read(value.key), np.asarray(value.variable.numpy())
        nan = saved.dtype.kind in "fc"
        if not np.array_equal(saved, current.astype(saved.dtype), equal_nan=nan):
            code = (
                "checkpoint-optimizer-state-not-restored"
                if value.optimizer
                else "checkpoint-missing-variables"
            )
            lost.append(dataclasses.replace(value, problem=code))
    for value in lost:
        for original in check.values:
            if original.key == value.key:
                original.problem = value.problem
    return lost


def _roll_back(variables: Mapping[int, Any], snapshot: Mapping[int, np.ndarray]) -> None:
    for i, variable in variables.items():
        variable.assign(snapshot[i])


def _refuse_non_finite(root: Any, objects: Mapping[str, Any]) -> None:
    walk = _walk(root, {})
    optimizers = [(path, obj) for path, obj in walk.values() if _is_optimizer(obj)]
    live_names = _live_names(objects, walk, optimizers)
    bad = [
        live_names[i]
        for i, (_, obj) in walk.items()
        if _is_variable(obj)
        and tf.as_dtype(obj.dtype).is_floating
        and not bool(tf.reduce_all(tf.math.is_finite(obj)))
    ]
    if bad:
        listing = ", ".join(bad[:_NAMED]) + (
            f" and {len(bad) - _NAMED} more" if len(bad) > _NAMED else ""
        )
        raise Finding(
            "non-finite",
            f"refusing to save: {listing} hold NaN or Inf, and a poisoned checkpoint would later "
            "be restored as if it were good; restore the last good checkpoint and find where the "
            "NaN first appeared, or pass force=True to save anyway.",
            variables=tuple(bad),
        ).error()


# ---------------------------------------------------------------------------------------------
# The crash-safe manager.


class Manager:
    """A `tf.train.CheckpointManager` that never keeps a bad save in place of a good one.

    - `save` refuses weights or optimizer state holding NaN or Inf (unless forced), records the
      optimizer configuration beside the checkpoint, reads the new checkpoint back (which checks
      every tensor's checksum), and only then deletes checkpoints beyond `max_to_keep`, so the
      newest checkpoint that validated is never deleted.
    - A save killed half-way leaves the previous checkpoints untouched: TensorFlow writes into a
      temporary directory and renames at the end; the leftovers are removed by the next save.
    - `restore` restores the newest checkpoint that reads whole, reporting any newer one it
      skipped (damaged, or its save interrupted) as `checkpoint-corrupt`; the next save deletes
      the damaged ones first.

    Example:
      >>> manager = Manager("/tmp/run", max_to_keep=3, model=model, optimizer=optimizer)
      >>> path, report = manager.restore()
      >>> for step in range(start, steps):
      ...     train_step(...)
      ...     if step % 1000 == 0:
      ...         manager.save()

    Args:
      directory: Where checkpoints go; also holds TensorFlow's ``checkpoint`` state file, so
        `tf.train.latest_checkpoint(directory)` keeps working.
      max_to_keep: How many checkpoints to keep (None keeps all).
      checkpoint_name: File name prefix of the checkpoints (``ckpt-7``).
      **objects: What to save and restore, as for `tf.train.Checkpoint`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_to_keep: int | None = 5,
        *,
        checkpoint_name: str = "ckpt",
        **objects: Any,
    ):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be a positive integer or None; got {max_to_keep}.")
        self.directory = os.fspath(directory)
        self.max_to_keep = max_to_keep
        self._name = checkpoint_name
        self._objects = dict(objects)
        self._root = tf.train.Checkpoint(**objects)
        self._manager = self._inner()
        self._damaged: set[str] = set()  # found by restore; rotation drops them first

    def _inner(self) -> Any:
        # Rotation is done here, after verification, so the inner manager keeps everything.
        return tf.train.CheckpointManager(
            self._root, self.directory, max_to_keep=None, checkpoint_name=self._name
        )

    @property
    def checkpoints(self) -> list[str]:
        """The checkpoints in the directory (with an index), oldest first."""
        return [path for _, path in self._on_disk()]

    @property
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint in the directory, or None."""
        found = self._on_disk()
        return found[-1][1] if found else None

    def save(self, *, force: bool = False) -> str:
        """Saves a checkpoint, verifies it, then drops the oldest beyond `max_to_keep`.

        Args:
          force: Save even if a weight or optimizer slot holds NaN or Inf.

        Returns:
          The new checkpoint's prefix.

        Raises:
          NonFiniteError: (a `non-finite` finding) if a variable holds NaN or Inf, not `force`.
          CheckpointMismatchError: (`checkpoint-corrupt`) if the new checkpoint does not read
            back whole; it is deleted and the older ones are kept.
        """
        if not force:
            _refuse_non_finite(self._root, self._objects)
        os.makedirs(self.directory, exist_ok=True)
        self._remove_incomplete()
        numbers = [n for n, _ in self._on_disk()]
        number = max([int(self._root.save_counter.numpy()), *numbers]) + 1
        prefix = os.path.join(self.directory, f"{self._name}-{number}")
        _write_sidecar(prefix, self._objects)
        path = str(self._manager.save(checkpoint_number=number))
        _, problems = _read_tf(path)
        if problems:
            self._write_state([p for p in self.checkpoints if p != path])
            _delete(path)
            raise CheckpointMismatchError(Report(problems))
        kept = [p for p in self.checkpoints if p not in self._damaged]
        excess = [p for p in self.checkpoints if p in self._damaged]
        if self.max_to_keep:
            excess += kept[: -self.max_to_keep]
            kept = kept[-self.max_to_keep :]
        # The state file forgets them first, so a crash while deleting leaves no dangling
        # entry; the newest (just verified) is always among those kept.
        self._write_state(kept)
        for old in excess:
            _delete(old)
        return path

    def restore(self, *, strict: bool = True) -> tuple[str | None, Report]:
        """Restores the newest checkpoint that reads whole.

        Args:
          strict: As for the module's `restore`.

        Returns:
          The checkpoint restored (None if the directory has none: a fresh start) and the report:
          its findings, plus a `checkpoint-corrupt` finding for each newer checkpoint skipped.

        Raises:
          CheckpointMismatchError: if a checkpoint reads whole but does not fit the objects (an
            older one would not fit either), or if every checkpoint is damaged.
        """
        report = Report()
        candidates = sorted(self._on_disk(), reverse=True)
        incomplete = self._incomplete()
        for number, path in candidates:
            try:
                result = _restore(path, self._objects, strict, root=self._root)
            except CheckpointMismatchError as e:
                if "checkpoint-corrupt" not in e.report.codes():
                    raise
                self._damaged.add(path)
                for finding in e.report.findings:
                    skipped = f"{finding.message} Skipped: an older checkpoint is tried instead."
                    report.add(dataclasses.replace(finding, message=skipped))
                continue
            for n, leftover in incomplete:
                if n > number:
                    report.add(leftover)
            for finding in result.findings:
                report.add(finding)
            return path, report
        for _, leftover in incomplete:
            report.add(leftover)
        if candidates:
            raise CheckpointMismatchError(
                report, f"no checkpoint in {self.directory} reads whole:\n{_findings_text(report)}"
            )
        return None, report

    def _on_disk(self) -> list[tuple[int, str]]:
        """Checkpoints in the directory that have an index, by number, oldest first.

        The directory, not the state file, is the truth: a crash can leave the state file behind.
        """
        pattern = re.compile(re.escape(self._name) + r"-(\d+)\.index$")
        found = []
        for entry in os.listdir(self.directory) if os.path.isdir(self.directory) else []:
            match = pattern.match(entry)
            if match:
                prefix = os.path.join(self.directory, entry[: -len(".index")])
                found.append((int(match.group(1)), prefix))
        return sorted(found)

    def _incomplete(self) -> list[tuple[int, Finding]]:
        """Saves that were interrupted: temporary files, or data or sidecar without an index.

        TensorFlow writes into ``ckpt-N_temp/`` and ``*.tempstate*`` files and renames them at
        the end; a killed save leaves those behind, and never a finished index.
        """
        pattern = re.compile(
            re.escape(self._name) + r"-(\d+)(_temp|\.data-\d+-of-\d+(\.tempstate\d+)?"
            r"|\.index\.tempstate\d+|\.gradguard\.json(\.tmp)?)$"
        )
        leftovers: dict[int, list[str]] = collections.defaultdict(list)
        for entry in sorted(os.listdir(self.directory)) if os.path.isdir(self.directory) else []:
            match = pattern.match(entry)
            if not match:
                continue
            prefix = os.path.join(self.directory, f"{self._name}-{match.group(1)}")
            temporary = match.group(2) == "_temp" or ".tempstate" in entry or entry.endswith(".tmp")
            if temporary or not os.path.exists(prefix + ".index"):
                leftovers[int(match.group(1))].append(os.path.join(self.directory, entry))
        return [
            (
                number,
                _corrupt(
                    f"checkpoint {self._name}-{number} is incomplete: its save was interrupted "
                    f"({', '.join(files)} left behind); it is skipped and removed by the next "
                    "save.",
                    files,
                ),
            )
            for number, files in sorted(leftovers.items())
        ]

    def _remove_incomplete(self) -> None:
        for _, finding in self._incomplete():
            for leftover in finding.variables:
                if os.path.isdir(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
                elif os.path.exists(leftover):
                    os.remove(leftover)

    def _write_state(self, paths: list[str]) -> None:
        """Rewrites TensorFlow's ``checkpoint`` state file (atomically) to list `paths`."""
        if paths:
            times = [os.path.getmtime(p + ".index") for p in paths]
            tf.__internal__.train.update_checkpoint_state(
                self.directory,
                paths[-1],
                all_model_checkpoint_paths=paths,
                all_model_checkpoint_timestamps=times,
                last_preserved_timestamp=min(times) - 1,  # older: none are "preserved" forever
                save_relative_paths=True,
            )
        elif os.path.exists(os.path.join(self.directory, "checkpoint")):
            os.remove(os.path.join(self.directory, "checkpoint"))
        self._manager = self._inner()  # re-reads the state file


def _delete(prefix: str) -> None:
    for path in [prefix + ".index", *_data_files(prefix), prefix + _SIDECAR]:
        if os.path.exists(path):
            os.remove(path)


# ---------------------------------------------------------------------------------------------
# Watching the restores of an unmodified script (for `gradguard run`).


def watch_restores(report: Report) -> Callable[[], None]:
    """Validates every checkpoint restore and `load_weights` call made from now on.

    `tf.train.Checkpoint.restore` / `read` and `keras.Model.load_weights` are wrapped: before each
    call the checkpoint is validated against the objects it restores into and the findings are
    added to `report` (and logged); the call itself then runs unchanged, so the script behaves
    exactly as without gradguard. A validation that fails is logged and never breaks the script.

    Args:
      report: Where the findings go.

    Returns:
      A function that removes the wrappers.
    """
    busy = threading.local()  # Checkpoint.restore calls read: validate once
    undo: list[tuple[type, str, Any]] = []

    def wrap(owner: type, name: str, objects_of: Callable[[Any], dict[str, Any]]) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
            if path is None or getattr(busy, "on", False):
                return original(self, path, *args, **kwargs)
            busy.on = True
            try:
                try:
                    root = self if isinstance(self, tf.train.Checkpoint) else None
                    check = _check(_resolve(path), objects_of(self), build=False, root=root)
                    for finding in check.report.findings:
                        if report.add(finding):
                            logging.warning("gradguard [%s]: %s", finding.code, finding.message)
                except Exception as e:  # noqa: BLE001 - the user's script must go on
                    logging.warning("gradguard: could not validate checkpoint %s: %s", path, e)
                return original(self, path, *args, **kwargs)
            finally:
                busy.on = False

        setattr(owner, name, wrapper)
        undo.append((owner, name, original))

    def children(root: Any) -> dict[str, Any]:
        return {k: v for k, v in _children(root).items() if k != "save_counter"}

    wrap(tf.train.Checkpoint, "restore", children)
    wrap(tf.train.Checkpoint, "read", children)
    wrap(keras.Model, "load_weights", lambda model: {"model": model})

    def unwatch() -> None:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)

    return unwatch


# ---------------------------------------------------------------------------------------------
# Command line: `gradguard ckpt PATH [--against MODULE:FACTORY]`.


def _load_factory(against: str) -> dict[str, Any]:
    """Builds the objects from ``MODULE:FACTORY`` (a module name or a ``.py`` file)."""
    module_name, _, attr = against.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"--against must look like MODULE:FACTORY; got {against!r}.")
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("_gradguard_factory", module_name)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module_name}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would, for a module beside the user
        module = importlib.import_module(module_name)
    built = getattr(module, attr)()
    if isinstance(built, Mapping):
        return dict(built)
    if isinstance(built, (tuple, list)):
        return dict(zip(("model", "optimizer"), built, strict=False))
    return {"model": built}


def _size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} B"


def main_ckpt(path: str, against: str | None = None) -> int:
    """Lists a checkpoint's values, checks it reads whole, and optionally validates it.

    Args:
      path: As for `validate`.
      against: ``MODULE:FACTORY`` (or ``path/to/file.py:FACTORY``): a function taking no
        arguments that returns the model, a ``(model, optimizer)`` tuple, or a dict of objects
        as passed to `tf.train.Checkpoint` (``{"model": m, "optimizer": opt}``). Build the model
        in it (call it on a batch) so that it has its variables.

    Returns:
      The exit status: 0 if healthy, 1 if there are error findings, 2 for bad input (no such
      checkpoint, a factory that cannot be loaded).
    """
    try:
        resolved = _resolve(path)
        infos = list_variables(resolved)
    except FileNotFoundError as e:
        print(f"gradguard ckpt: {e}", file=sys.stderr)
        return 2
    except CheckpointMismatchError as e:
        print(e)
        return 1
    rows = [(i.name, str(i.shape), i.dtype, _size(i.size)) for i in infos]
    header = ("variable", "shape", "dtype", "size")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    print(f"checkpoint {resolved}: {len(infos)} values, {_size(sum(i.size for i in infos))}")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    objects: dict[str, Any] = {}
    if against:
        try:
            objects = _load_factory(against)
        except Exception as e:  # noqa: BLE001 - any failure of user code is bad input here
            print(f"gradguard ckpt: cannot build objects from {against}: {e}", file=sys.stderr)
            return 2
    try:
        check = _check(resolved, objects, build=False)
    except ValueError as e:
        print(f"gradguard ckpt: {e}", file=sys.stderr)
        return 2
    print()
    if against:
        described = ", ".join(f"{k}={type(v).__name__}" for k, v in objects.items())
        print(f"validation against {described}:")
        print(_table(check.values, all_rows=True))
    if check.report.findings:
        print(_findings_text(check.report))
    else:
        print(f"ok: every value reads whole{' and fits' if against else ''}.")
    errors = [f for f in check.report.findings if f.severity is Severity.ERROR]
    return 1 if errors else 0
