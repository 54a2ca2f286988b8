"""The public functions: validate a checkpoint, restore it whole or not at all, save one."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from gradguard import _compat
from gradguard.checkpoint import durable, files, graph
from gradguard.checkpoint.compare import check, model_of
from gradguard.checkpoint.config import sidecar_text
from gradguard.checkpoint.messages import CheckpointMismatchError, findings, text
from gradguard.checkpoint.values import NAMED, Check, Value, is_optimizer
from gradguard.findings import Finding, Report, Severity

__all__ = ["refuse_non_finite", "restore", "restore_resolved", "save", "validate"]


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
    return check(files.resolve(path), objects, build=False).report


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
    return restore_resolved(files.resolve(path), objects, strict, root=None)


def save(path_prefix: str | os.PathLike[str], *, force: bool = False, **objects: Any) -> str:
    """Writes a checkpoint, with the optimizer configuration recorded beside it.

    The configuration (class, learning rate or schedule, betas, epsilon, clipping) is written to
    ``<prefix>.gradguard.json`` so that `validate` can report what changed since. The checkpoint
    is written aside, read back whole, flushed to the disk, and only then put in place (see
    `Manager`): a save that fails leaves nothing at `path_prefix`.

    Args:
      path_prefix: The checkpoint prefix, as for `tf.train.Checkpoint.write`.
      force: Save even if a weight or optimizer slot holds NaN or Inf.
      **objects: As for `tf.train.Checkpoint`.

    Returns:
      The checkpoint prefix written.

    Raises:
      NonFiniteError: (a `non-finite` finding) if a variable holds NaN or Inf and not `force`.
      CheckpointMismatchError: (`checkpoint-corrupt`) if what was written does not read back.
      OSError: if a file cannot be written (e.g. ENOSPC), naming it.
    """
    root = tf.train.Checkpoint(**objects)
    if not force:
        refuse_non_finite(root, objects)
    prefix = os.fspath(path_prefix)
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)  # as TF's write does
    return durable.write_checkpoint(root.write, prefix, sidecar_text(objects))


_BLOCKING = {"checkpoint-corrupt", "checkpoint-shape-mismatch", "checkpoint-dtype-mismatch"}


def restore_resolved(path: str, objects: Mapping[str, Any], strict: bool, root: Any) -> Report:
    """`restore` of a resolved path, into `root` (a `tf.train.Checkpoint` of `objects`)."""
    if not objects:
        raise ValueError("restore needs the objects to restore into, e.g. model=..., optimizer=...")
    if root is None and not files.is_keras_file(path):
        root = tf.train.Checkpoint(**objects)
    checked = check(path, objects, build=False, root=root)
    errors = {f.code for f in checked.report.findings if f.severity is Severity.ERROR}
    if errors & _BLOCKING or (strict and errors):
        raise CheckpointMismatchError(checked.report, text(checked))
    # Build unbuilt optimizers for real now, then match again so the variables are the real ones.
    checked = check(path, objects, build=True, root=root)
    variables = {id(v.variable): v.variable for v in checked.values if v.variable is not None}
    snapshot = {i: v.numpy() for i, v in variables.items()}
    try:
        if files.is_keras_file(path):
            _load_keras(path, objects, checked, strict)
        else:
            root.restore(path).expect_partial()  # what does not fit is in the report already
        lost = _verify(checked)
    except Exception as e:
        _roll_back(variables, snapshot)
        if isinstance(e, CheckpointMismatchError):
            raise
        finding = files.corrupt(
            f"restoring {path} failed half-way ({files.first_line(e)}); every variable was put "
            "back as it was.",
            [path],
        )
        raise CheckpointMismatchError(Report([*checked.report.findings, finding])) from e
    if lost:
        for finding in findings(lost, path):
            checked.report.add(finding)
        if strict:
            _roll_back(variables, snapshot)
            raise CheckpointMismatchError(checked.report, text(checked))
    for finding in checked.report.findings:
        log = logging.error if finding.severity is Severity.ERROR else logging.warning
        log("gradguard [%s]: %s", finding.code, finding.message)
    return checked.report


def _load_keras(path: str, objects: Mapping[str, Any], checked: Check, strict: bool) -> None:
    """Loads a Keras weights file: the model's weights, then the optimizer's own state.

    The optimizer is loaded here rather than by `load_weights`, which would load only the
    model's compiled optimizer: the one passed as ``optimizer=`` is the one restored into.
    """
    assert checked.read is not None
    model = model_of(objects)
    own = getattr(model, "optimizer", None)
    if not path.endswith((".weights.h5", ".keras")):  # a legacy .h5: Keras' own loader
        model.load_weights(path, skip_mismatch=not strict)
        return
    _compat.load_keras_weights(model, path, not strict, [own] if own is not None else [])
    saved = [v.key for v in checked.values if v.key.startswith("optimizer/") and v.saved]
    for state in checked.optimizers:
        if state.restored and len(saved) == len(state.optimizer.variables):
            store = {str(i): checked.read(f"optimizer/vars/{i}") for i in range(len(saved))}
            state.optimizer.load_own_variables(store)


def _verify(checked: Check) -> list[Value]:
    """Reads every restored variable back and compares it with its saved value."""
    assert checked.read is not None
    lost = []
    for value in checked.values:
        if value.variable is None or value.saved is None or value.problem:
            continue
        saved, current = checked.read(value.key), np.asarray(value.variable.numpy())
        nan = saved.dtype.kind in "fc"
        if not np.array_equal(saved, current.astype(saved.dtype), equal_nan=nan):
            code = (
                "checkpoint-optimizer-state-not-restored"
                if value.optimizer
                else "checkpoint-missing-variables"
            )
            lost.append(dataclasses.replace(value, problem=code))
    for value in lost:
        for original in checked.values:
            if original.key == value.key:
                original.problem = value.problem
    return lost


def _roll_back(variables: Mapping[int, Any], snapshot: Mapping[int, np.ndarray]) -> None:
    for i, variable in variables.items():
        variable.assign(snapshot[i])


def refuse_non_finite(root: Any, objects: Mapping[str, Any]) -> None:
    """Raises `NonFiniteError` if a floating-point variable reachable from `root` is not finite."""
    seen = graph.walk(root, {})
    optimizers = [(path, obj) for path, obj in seen.values() if is_optimizer(obj)]
    live_names = graph.live_names(objects, seen, optimizers)
    bad = [
        live_names[i]
        for i, (_, obj) in seen.items()
        if _compat.is_variable(obj)
        and tf.as_dtype(obj.dtype).is_floating
        and not bool(tf.reduce_all(tf.math.is_finite(obj)))
    ]
    if bad:
        listing = ", ".join(bad[:NAMED]) + (
            f" and {len(bad) - NAMED} more" if len(bad) > NAMED else ""
        )
        raise Finding(
            "non-finite",
            f"refusing to save: {listing} hold NaN or Inf, and a poisoned checkpoint would later "
            "be restored as if it were good; restore the last good checkpoint and find where the "
            "NaN first appeared, or pass force=True to save anyway.",
            variables=tuple(bad),
        ).error()
