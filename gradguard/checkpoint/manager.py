"""The crash-safe checkpoint manager: never a bad save kept in place of a good one."""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
from typing import Any

import tensorflow as tf

from gradguard import _compat
from gradguard.checkpoint import files
from gradguard.checkpoint.config import SIDECAR, write_sidecar
from gradguard.checkpoint.messages import CheckpointMismatchError, findings_text
from gradguard.checkpoint.restore import refuse_non_finite, restore_resolved
from gradguard.findings import Finding, Report

__all__ = ["Manager"]


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
            refuse_non_finite(self._root, self._objects)
        os.makedirs(self.directory, exist_ok=True)
        self._remove_incomplete()
        numbers = [n for n, _ in self._on_disk()]
        number = max([int(self._root.save_counter.numpy()), *numbers]) + 1
        prefix = os.path.join(self.directory, f"{self._name}-{number}")
        write_sidecar(prefix, self._objects)
        path = str(self._manager.save(checkpoint_number=number))
        _, problems = files.read_tf(path)
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
                result = restore_resolved(path, self._objects, strict, root=self._root)
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
                report, f"no checkpoint in {self.directory} reads whole:\n{findings_text(report)}"
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
                files.corrupt(
                    f"checkpoint {self._name}-{number} is incomplete: its save was interrupted "
                    f"({', '.join(left)} left behind); it is skipped and removed by the next "
                    "save.",
                    left,
                ),
            )
            for number, left in sorted(leftovers.items())
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
            _compat.update_checkpoint_state(self.directory, paths, times)
        elif os.path.exists(os.path.join(self.directory, "checkpoint")):
            os.remove(os.path.join(self.directory, "checkpoint"))
        self._manager = self._inner()  # re-reads the state file


def _delete(prefix: str) -> None:
    for path in [prefix + ".index", *files.data_files(prefix), prefix + SIDECAR]:
        if os.path.exists(path):
            os.remove(path)
