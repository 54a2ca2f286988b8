"""Writing checkpoints so that a failed or killed save leaves nothing that looks like one.

TensorFlow writes a checkpoint's data through a temporary directory but its merged
``<prefix>.index`` in place, so a save that fails (a full disk) or is killed at that moment leaves
an index that is empty or torn beside the previous checkpoints, and nothing reaches the disk
before the operating system decides to write it. `write_checkpoint` stages the whole checkpoint
in ``<prefix>.saving/``, reads every value back (checksums), fsyncs every file, and only then
moves the files into place: the data files and the configuration sidecar first, the index last.
The index is what makes a checkpoint exist (for `tf.train.latest_checkpoint`, for `Manager`), so
at every instant the directory holds the previous checkpoints plus either nothing of the new
one, or files without an index (which a `Manager` reports and removes), or the whole new one.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable

from gradguard.checkpoint import files
from gradguard.checkpoint.config import SIDECAR
from gradguard.checkpoint.messages import CheckpointMismatchError
from gradguard.findings import Report

__all__ = ["STAGING", "fsync_directory", "fsync_file", "write_checkpoint", "write_text"]

STAGING = ".saving"  # <prefix>.saving/: where a checkpoint is written before it counts

# fsync of a directory is refused by some filesystems (EINVAL); it is then not needed there.
_NO_DIRECTORY_FSYNC = {errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EISDIR}


def fsync_file(path: str) -> None:
    """Flushes a file's content and size to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: str) -> None:
    """Flushes a directory's entries (files created, renamed, removed) to the disk."""
    if os.name == "nt":
        return  # directories cannot be opened there; NTFS journals renames itself
    fd = os.open(path or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIRECTORY_FSYNC:
            raise
    finally:
        os.close(fd)


def write_text(path: str, text: str, what: str, shown: str | None = None) -> None:
    """Writes `text` to `path` whole or not at all, and durably (temporary file, fsync, rename).

    Args:
      path: The file.
      text: Its content.
      what: What the file is, for the error message.
      shown: The file's name in the error message, if not `path` (a file being staged).

    Raises:
      OSError: with the errno of the failure, naming the file and the cause; the file is as it
        was and no temporary file is left.
    """
    temporary = path + ".tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        fsync_directory(os.path.dirname(path))
    except OSError as e:
        _remove(temporary)
        shown = shown or path
        raise OSError(e.errno, f"could not write {shown} ({what}): {e.strerror or e}", shown) from e


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _published(staged: str, prefix: str) -> list[tuple[str, str]]:
    """Each staged file and where it goes: data files and sidecar first, the index last."""
    moves = [(f, prefix + f[len(staged) :]) for f in files.data_files(staged)]
    if os.path.exists(staged + SIDECAR):
        moves.append((staged + SIDECAR, prefix + SIDECAR))
    return [*moves, (staged + ".index", prefix + ".index")]


def write_checkpoint(write: Callable[[str], object], prefix: str, sidecar: str | None) -> str:
    """Writes a checkpoint at `prefix` that exists only once it is whole, verified and on disk.

    Args:
      write: Writes a TF checkpoint at the prefix it is given (`tf.train.Checkpoint.write`).
      prefix: Where the checkpoint goes (``runs/ckpt-7``).
      sidecar: The optimizer configuration to record beside it (None: none).

    Returns:
      `prefix`.

    Raises:
      CheckpointMismatchError: (`checkpoint-corrupt`) if what was written does not read back
        whole; nothing of it is kept.
      OSError: naming the file and the cause (e.g. ENOSPC); nothing of it is kept. Errors of
        TensorFlow's own writing are raised as they come, with a note saying what was kept.
    """
    directory = os.path.dirname(prefix) or "."
    staging = prefix + STAGING
    staged = os.path.join(staging, os.path.basename(prefix))
    shutil.rmtree(staging, ignore_errors=True)  # a save of this prefix that died before
    os.makedirs(staging)
    moved: list[str] = []
    try:
        try:
            write(staged)
        except Exception as e:
            e.add_note(f"gradguard: nothing of {prefix} was kept; older checkpoints are untouched.")
            raise
        if sidecar is not None:
            what = f"the optimizer configuration recorded beside {os.path.basename(prefix)}"
            try:
                write_text(staged + SIDECAR, sidecar, what, shown=prefix + SIDECAR)
            except OSError as e:
                e.add_note(
                    f"gradguard: nothing of {prefix} was kept; older checkpoints are untouched."
                )
                raise
        _, problems = files.read_tf(staged)
        if problems:
            raise CheckpointMismatchError(
                Report(
                    files.corrupt(
                        f"the new checkpoint {prefix} did not read back whole once written, so "
                        f"it was not kept (older checkpoints are untouched): {p.message}",
                        p.variables,
                    )
                    for p in problems
                )
            )
        moves = _published(staged, prefix)
        for source, _ in moves:
            fsync_file(source)
        if os.path.exists(prefix + ".index"):
            # Saving over a checkpoint: it stops counting before its files are replaced, so that
            # no moment pairs the old index with new data.
            os.remove(prefix + ".index")
        for source, target in moves:
            if target.endswith(".index"):
                fsync_directory(directory)  # the data is in place before the index names it
            os.replace(source, target)
            moved.append(target)
        fsync_directory(directory)
    except BaseException:
        if not (moved and moved[-1] == prefix + ".index"):
            for target in moved:  # published without its index: it never counted
                _remove(target)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prefix
