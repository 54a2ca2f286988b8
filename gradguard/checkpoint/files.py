"""Reading checkpoint files: TF checkpoints, `.weights.h5` and `.keras`; listing; corruption."""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import re
import zipfile
from collections.abc import Iterable
from typing import Any

import h5py
import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.checkpoint import graph
from gradguard.checkpoint.messages import CheckpointMismatchError
from gradguard.checkpoint.values import Spec, natural
from gradguard.findings import Finding, Report

__all__ = [
    "VariableInfo",
    "corrupt",
    "data_files",
    "first_line",
    "is_keras_file",
    "list_variables",
    "object_graph",
    "object_path",
    "read_h5",
    "read_tf",
    "resolve",
]


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


def list_variables(path: str | os.PathLike[str]) -> list[VariableInfo]:
    """Lists the values a checkpoint holds, without reading them.

    Args:
      path: A TensorFlow checkpoint prefix (``ckpt-3``), a directory holding one (the latest is
        used), or a Keras weights file (``.weights.h5``, ``.keras``).

    Returns:
      One `VariableInfo` per saved value, sorted by name.

    Raises:
      FileNotFoundError: if nothing is found at `path`.
      CheckpointMismatchError: (`checkpoint-corrupt`) if the file's index cannot be read.
    """
    path = resolve(path)
    if is_keras_file(path):
        specs, _, problems = read_h5(path, read_data=False)
        if problems:
            raise CheckpointMismatchError(Report(problems))
        infos = [(key, key, spec) for key, spec in specs.items()]
    else:
        try:
            reader = tf.train.load_checkpoint(path)
        except Exception as e:  # noqa: BLE001 - any failure to open is reported the same way
            raise CheckpointMismatchError(Report([corrupt_index(path, e)])) from None
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        graph_names: dict[str, str] = {}
        try:
            graph_names = graph.saved_names(object_graph(reader))[1]
        except Exception:  # noqa: BLE001 - names are a nicety; a bad graph is found by validate
            pass
        infos = [
            (graph_names.get(k, object_path(k)), k, (tuple(shapes[k]), dtypes[k].name))
            for k in shapes
            if k != _compat.CHECKPOINT_GRAPH_KEY
        ]
    return sorted(
        (
            VariableInfo(name, key, shape, dtype, _nbytes(shape, dtype))
            for name, key, (shape, dtype) in infos
        ),
        key=lambda info: natural(info.name),
    )


def resolve(path: str | os.PathLike[str]) -> str:
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
    if is_keras_file(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no Keras weights file at {path!r}.")
        return path
    if not glob.glob(glob.escape(path) + ".*") and not os.path.isdir(path + "_temp"):
        raise FileNotFoundError(
            f"no checkpoint at {path!r}: expected {path}.index and {path}.data-*-of-*."
        )
    return path


def is_keras_file(path: str) -> bool:
    """Whether `path` names a Keras weights file rather than a TF checkpoint prefix."""
    return path.endswith((".h5", ".keras"))


def data_files(prefix: str) -> list[str]:
    """The data shards of a TF checkpoint that are on disk."""
    return sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    try:
        itemsize = tf.as_dtype(dtype).size
    except TypeError:
        itemsize = 0  # strings: their size is not known from the index
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def first_line(error: BaseException) -> str:
    """The first line of an error's message, at most 300 characters."""
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def corrupt(message: str, files: Iterable[str]) -> Finding:
    """A `checkpoint-corrupt` finding naming the damaged files."""
    return Finding("checkpoint-corrupt", message, variables=tuple(files))


def corrupt_index(prefix: str, error: BaseException) -> Finding:
    """`checkpoint-corrupt` for an index that is missing or cannot be read."""
    index = prefix + ".index"
    if not os.path.exists(index):
        why = "it is missing (the save did not finish, or the file was deleted)"
    else:
        why = f"it cannot be read ({first_line(error)})"
    return corrupt(
        f"checkpoint index {index} is unusable: {why}; restore an older checkpoint.", [index]
    )


def object_graph(reader: Any) -> Any:
    """The object graph a TF checkpoint was saved with."""
    return _compat.checkpoint_object_graph(reader.get_tensor(_compat.CHECKPOINT_GRAPH_KEY))


def object_path(key: str) -> str:
    """``model/dense/kernel`` from the checkpoint key ``model/dense/kernel/.ATTRIBUTES/...``."""
    return key.split("/.ATTRIBUTES/")[0]


def read_tf(prefix: str, read_data: bool = True) -> tuple[Any, list[Finding]]:
    """Opens a TF checkpoint and reads every tensor once (which verifies their checksums).

    Returns:
      The reader (None if the checkpoint is damaged) and `checkpoint-corrupt` findings.
    """
    data = data_files(prefix)
    shards = {int(m.group(1)) for f in data if (m := re.search(r"-of-(\d+)$", f))}
    expected = [f"{prefix}.data-{i:05d}-of-{n:05d}" for n in shards for i in range(n)]
    missing = [f for f in expected if not os.path.exists(f)]
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # noqa: BLE001 - TF raises several types for a bad index
        return None, [corrupt_index(prefix, e)]
    if not data or missing:
        missing = missing or [f"{prefix}.data-00000-of-00001"]
        return None, [
            corrupt(
                f"checkpoint {prefix} is missing its data file(s) {', '.join(missing)}; "
                "restore an older checkpoint.",
                missing,
            )
        ]
    bad: dict[str, str] = {}
    shapes = reader.get_variable_to_shape_map()
    graph_key = _compat.CHECKPOINT_GRAPH_KEY
    for key in shapes if read_data else [k for k in shapes if k == graph_key]:
        try:
            reader.get_tensor(key)
        except Exception as e:  # noqa: BLE001 - TF raises OpError, IndexError, ...
            bad[key] = first_line(e)
    if not bad:
        return reader, []
    # TF names the shard when it knows it ("shard 0"); otherwise every data file is suspect.
    shard = re.search(r"shard (\d+)", " ".join(bad.values()))
    files = [f for f in data if shard and f".data-{int(shard.group(1)):05d}-" in f] or data
    first = next(iter(bad))
    return None, [
        corrupt(
            f"{len(bad)} value(s) in {', '.join(files)} cannot be read whole (first: "
            f"{object_path(first)}: {bad[first]}); the file is truncated or damaged, "
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


def read_h5(
    path: str, read_data: bool = True
) -> tuple[dict[str, Spec], dict[str, np.ndarray], list[Finding]]:
    """Reads every dataset of a Keras weights file once.

    Returns:
      Shape and dtype by dataset path, the arrays, and `checkpoint-corrupt` findings.
    """
    specs: dict[str, Spec] = {}

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
            f"Keras weights file {path} cannot be read whole ({first_line(e)}); it is truncated "
            "or damaged."
        )
        return {}, {}, [corrupt(message, [path])]
    return specs, arrays, []
