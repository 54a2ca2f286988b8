"""The crash-safe checkpoint manager: never a bad save kept in place of a good one."""

from __future__ import annotations

import dataclasses
import os
import weakref
from types import TracebackType
from typing import Any

import tensorflow as tf
from absl import logging

from gradguard.checkpoint import directory as directory_lib
from gradguard.checkpoint import durable, files
from gradguard.checkpoint.config import sidecar_text
from gradguard.checkpoint.lock import DirectoryLock, holder
from gradguard.checkpoint.messages import CheckpointMismatchError, findings_text
from gradguard.checkpoint.restore import refuse_non_finite, restore_resolved
from gradguard.findings import Finding, Report, Severity

__all__ = ["Manager"]


class Manager:
    """A `tf.train.CheckpointManager` that never keeps a bad save in place of a good one.

    - `save` refuses weights or optimizer state holding NaN or Inf (unless forced). It writes the
      checkpoint and the optimizer configuration into ``ckpt-N.saving/``, reads every value back
      (checksums), flushes every file to the disk (fsync), and only then moves them into place,
      the index last: a checkpoint exists only once it is whole, verified and on disk, and a
      save that fails (a full disk) or is killed leaves nothing that counts. Then the state file
      is written (durably too) and the checkpoints beyond `max_to_keep` are deleted, counting
      only those that read: the newest good checkpoint is never deleted for a broken one.
    - One writer per directory: the first save takes a lock in the directory
      (``.gradguard-writer.lock``); a second process is refused with `DirectoryLockedError`
      naming the holder (pid, host); the lock of a process that died is taken over, with a
      warning naming it. Managers of one process share it.
    - `restore` restores the newest checkpoint that reads whole, reporting any newer one it
      skipped (damaged, its save unfinished, or deleted since this Manager saved it) as
      `checkpoint-corrupt`; the next save deletes the damaged ones first.

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
        self._lock = DirectoryLock(self.directory)
        # Released when the Manager goes, and at exit: the next writer then finds no stale lock.
        self._release = weakref.finalize(self, self._lock.release)
        self._damaged: set[str] = set()  # found by restore; rotation drops them first
        self._known: list[str] = []  # saved (and kept) or restored by this Manager, oldest first
        self._failed: dict[int, str] = {}  # why a save of this process failed, by number

    @property
    def checkpoints(self) -> list[str]:
        """The checkpoints in the directory (with an index), oldest first."""
        return [path for _, path in directory_lib.on_disk(self.directory, self._name)]

    @property
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint in the directory, or None."""
        found = self.checkpoints
        return found[-1] if found else None

    def close(self) -> None:
        """Releases the directory's writer lock (also done when the Manager is collected)."""
        self._release()

    def __enter__(self) -> Manager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def save(self, *, force: bool = False) -> str:
        """Saves a checkpoint, verifies it, then drops the oldest beyond `max_to_keep`.

        Args:
          force: Save even if a weight or optimizer slot holds NaN or Inf.

        Returns:
          The new checkpoint's prefix.

        Raises:
          NonFiniteError: (a `non-finite` finding) if a variable holds NaN or Inf, not `force`.
          CheckpointMismatchError: (`checkpoint-corrupt`) if the new checkpoint does not read
            back whole; nothing of it is kept, and the older ones are.
          DirectoryLockedError: if another process is saving into the directory.
          OSError: if a file cannot be written (e.g. ENOSPC), naming it; nothing of the new
            checkpoint is kept, and the older ones are. TensorFlow's own write errors come as
            TensorFlow raises them.
        """
        if not force:
            refuse_non_finite(self._root, self._objects)
        if not self._release.alive:  # closed: a later save takes the lock again
            self._release = weakref.finalize(self, self._lock.release)
        self._lock.acquire()
        with self._lock.turn:
            self._say_if_gone()
            self._remove_incomplete()
            numbers = [n for n, _ in directory_lib.on_disk(self.directory, self._name)]
            counter = self._root.save_counter
            number = max([int(counter.numpy()), *numbers]) + 1
            prefix = os.path.join(self.directory, f"{self._name}-{number}")
            counter.assign_add(1)  # as tf.train.CheckpointManager.save does
            try:
                path = durable.write_checkpoint(self._write, prefix, sidecar_text(self._objects))
                self._rotate(path)
            except BaseException as e:
                if not os.path.exists(prefix + ".index"):  # it does not count: nor its number
                    counter.assign_sub(1)
                    self._failed[number] = files.first_line(e)
                raise
        return path

    def _write(self, prefix: str) -> None:
        """Writes the objects as a TF checkpoint at `prefix` (a staging place)."""
        self._root.write(prefix)

    def _rotate(self, new: str) -> None:
        """Lists the checkpoints that read in the state file, then deletes the rest."""
        good: list[str] = []
        bad: list[str] = []
        for _, path in directory_lib.on_disk(self.directory, self._name):
            why = None if path == new else directory_lib.unreadable(path)
            if path in self._damaged:
                why = "restore found it damaged"
            (bad if why else good).append(path)
            if why:
                logging.warning("gradguard: deleting checkpoint %s: %s.", path, why)
        excess = good[: -self.max_to_keep] if self.max_to_keep else []
        kept = good[len(excess) :]
        # The state file forgets them first, so a crash while deleting leaves no dangling
        # entry; the newest (just verified) is always among those kept.
        try:
            directory_lib.write_state(self.directory, kept)
        except BaseException as e:
            # The save fails as a whole: the new checkpoint goes, the state file is as it was.
            directory_lib.delete(new)
            e.add_note(f"gradguard: {new} was removed again; older checkpoints are untouched.")
            raise
        for old in [*excess, *bad]:
            directory_lib.delete(old)
        durable.fsync_directory(self.directory)
        self._damaged.clear()
        self._known = [p for p in self._known if p in kept and p != new] + [new]

    def restore(self, *, strict: bool = True) -> tuple[str | None, Report]:
        """Restores the newest checkpoint that reads whole.

        Args:
          strict: As for the module's `restore`.

        Returns:
          The checkpoint restored (None if the directory has none: a fresh start) and the report:
          its findings, plus a `checkpoint-corrupt` finding for each newer checkpoint skipped.

        Raises:
          CheckpointMismatchError: if a checkpoint reads whole but does not fit the objects (an
            older one would not fit either), if every checkpoint is damaged, or if the
            checkpoints this Manager saved or restored are gone (the directory deleted): never
            a silent fresh start.
        """
        report = Report()
        candidates = sorted(directory_lib.on_disk(self.directory, self._name), reverse=True)
        gone = self._gone()
        unfinished = self._incomplete()
        for number, path in candidates:
            try:
                result = restore_resolved(path, self._objects, strict, root=self._root)
            except CheckpointMismatchError as e:
                if not _damaged(e.report):
                    raise
                self._damaged.add(path)
                for finding in e.report.findings:
                    skipped = f"{finding.message} Skipped: an older checkpoint is tried instead."
                    report.add(dataclasses.replace(finding, message=skipped))
                continue
            for newer, finding in [*gone, *unfinished]:
                if newer > number:
                    report.add(finding)
            for finding in result.findings:
                report.add(finding)
            if path not in self._known:
                self._known = sorted([*self._known, path], key=_number)
            return path, report
        for _, finding in [*gone, *unfinished]:
            report.add(finding)
        if candidates or gone:
            what = "reads whole" if candidates else "is left"
            raise CheckpointMismatchError(
                report, f"no checkpoint in {self.directory} {what}:\n{findings_text(report)}"
            )
        return None, report

    def _gone(self) -> list[tuple[int, Finding]]:
        """Checkpoints this Manager saved or restored that are no longer there."""
        missing = [p for p in self._known if not os.path.exists(p + ".index")]
        if not missing:
            return []
        if not os.path.isdir(self.directory):
            where = f"the directory {self.directory} was deleted"
        else:
            where = "it was deleted from the directory"
        return [
            (
                _number(path),
                files.corrupt(
                    f"checkpoint {path} is gone: this Manager saved or restored it, and {where} "
                    "since; restoring it is not possible, and starting fresh would be silent "
                    "data loss (make a new Manager to start fresh on purpose).",
                    [path + ".index"],
                ),
            )
            for path in missing
        ]

    def _say_if_gone(self) -> None:
        gone = self._gone()
        if gone:
            logging.warning(
                "gradguard: %d checkpoint(s) this Manager saved in %s are gone (e.g. %s); "
                "saving anew.",
                len(gone),
                self.directory,
                gone[-1][1].variables[0],
            )
            self._known = []

    def _incomplete(self) -> list[tuple[int, Finding]]:
        """Saves that did not finish, as findings; none while another process is writing."""
        if holder(self.directory) is not None:
            return []  # its staging files are a save in progress, not leftovers
        return [
            (n, directory_lib.leftover_finding(self._name, n, left, self._failed.get(n)))
            for n, left in directory_lib.leftovers(self.directory, self._name).items()
        ]

    def _remove_incomplete(self) -> None:
        for left in directory_lib.leftovers(self.directory, self._name).values():
            directory_lib.remove(left)


def _number(prefix: str) -> int:
    return int(prefix.rpartition("-")[2])


def _damaged(report: Report) -> bool:
    """Whether a restore failed because the checkpoint is damaged (an older one may do)."""
    return any(
        f.code == "checkpoint-corrupt" and f.severity is Severity.ERROR for f in report.findings
    )
