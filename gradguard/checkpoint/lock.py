"""One writer per checkpoint directory: a lock file that says who holds it.

Two processes saving into one directory delete each other's work (each cleans up what looks like
an interrupted save, each rotates the other's checkpoints out). A `Manager` therefore takes an
exclusive `flock` on ``<directory>/.gradguard-writer.lock`` at its first save and writes its pid,
host and start time into it. The kernel releases the lock when the process ends, however it ends,
so a lock can never be left held by a dead process; the record it leaves behind (a killed
process does not clear it) is how the next writer can say whose lock it took over.

Managers of one process share the lock (a notebook that makes a new Manager for the same
directory is one writer), and their saves take turns.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import json
import os
import socket
import sys
import threading
import time
from typing import Any

from absl import logging

try:
    import fcntl
except ImportError:  # Windows: no flock; checkpoints are saved without the writer lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "DirectoryLock", "DirectoryLockedError", "holder"]

LOCK_FILE = ".gradguard-writer.lock"
_ATTEMPTS = 10  # tries, 20 ms apart, before a lock held elsewhere refuses this writer
# flock is not offered by every filesystem (some network filesystems): no lock is taken there.
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class DirectoryLockedError(RuntimeError):
    """Another process is saving checkpoints into the directory.

    Attributes:
      directory: The checkpoint directory.
      holder: What the lock file says of its holder (``pid``, ``host``, ``since``, ``program``).
    """

    def __init__(self, directory: str, record: dict[str, Any]):
        self.directory = directory
        self.holder = record
        super().__init__(
            f"checkpoint directory {directory} is being written by another process: "
            f"{_describe(record)}. Two writers would delete each other's saves; save into "
            "another directory, or stop that process first (its lock is released when it ends)."
        )


def _describe(record: dict[str, Any]) -> str:
    if not record:
        return "a process that has not written its name into the lock file yet"
    program = f" ({record['program']})" if record.get("program") else ""
    return (
        f"pid {record.get('pid', '?')} on host {record.get('host', '?')}{program}, "
        f"since {record.get('since', '?')}"
    )


def _read(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        record = json.loads(raw) if raw.strip() else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "program": " ".join(sys.argv[:1]),
    }


def holder(directory: str) -> dict[str, Any] | None:
    """Who holds the directory's lock, if another process does now (without taking it)."""
    if fcntl is None:
        return None
    path = os.path.join(directory, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read(fd)
            return record if record.get("pid") != os.getpid() else None
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@dataclasses.dataclass
class _Held:
    fd: int | None
    inode: tuple[int, int] | None
    users: int = 0
    turn: threading.RLock = dataclasses.field(default_factory=threading.RLock)
    # A forked child inherits the descriptor; only the process that took the lock lets it go
    # (an unlock from the child would unlock the parent too).
    pid: int = dataclasses.field(default_factory=os.getpid)


_HELD: dict[str, _Held] = {}
_REGISTRY = threading.Lock()


class DirectoryLock:
    """This process's hold on a checkpoint directory, shared by its Managers.

    Args:
      directory: The checkpoint directory.
    """

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self._held: _Held | None = None

    @property
    def turn(self) -> threading.RLock:
        """Held while saving, so that the Managers of one process take turns."""
        assert self._held is not None
        return self._held.turn

    def acquire(self) -> None:
        """Takes the lock, or checks that it still has it (the directory may have been deleted).

        Raises:
          DirectoryLockedError: if another process holds it.
        """
        key = os.path.realpath(self.directory)
        with _REGISTRY:
            held = _HELD.get(key)
            if held is not None and not _still_there(held, self.path):
                _drop(held)  # the directory was deleted (and maybe made again) under us
                del _HELD[key]
                held = None
            if held is None:
                held = _HELD[key] = _take(self.directory, self.path)
            if self._held is not held:
                if self._held is not None:
                    self._held.users -= 1
                held.users += 1
                self._held = held

    def release(self) -> None:
        """Lets go of the lock (once every Manager of this process sharing it has)."""
        key = os.path.realpath(self.directory)
        with _REGISTRY:
            held, self._held = self._held, None
            if held is None:
                return
            held.users -= 1
            if held.users == 0 and _HELD.get(key) is held:
                del _HELD[key]
                _drop(held, clear=True)


def _still_there(held: _Held, path: str) -> bool:
    if held.inode is None:
        return os.path.isdir(os.path.dirname(path))
    try:
        status = os.stat(path)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) == held.inode


def _take(directory: str, path: str) -> _Held:
    os.makedirs(directory, exist_ok=True)
    if fcntl is None:
        logging.warning("gradguard: no file locks here: a second writer would not be refused.")
        return _Held(None, None)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for attempt in range(_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # `holder()` in a reading process holds the lock shared for an instant.
                if attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(0.02)
    except BlockingIOError:
        record = _read(fd)
        os.close(fd)
        raise DirectoryLockedError(directory, record) from None
    except OSError as e:
        os.close(fd)
        if e.errno not in _NO_FLOCK:
            raise
        logging.warning(
            "gradguard: %s does not support file locks (%s): a second process saving into it "
            "would not be refused.",
            directory,
            e.strerror,
        )
        return _Held(None, None)
    left = _read(fd)
    me = _me()
    if left.get("pid") and (left.get("pid"), left.get("host")) != (me["pid"], me["host"]):
        logging.warning(
            "gradguard: took over the checkpoint directory lock %s left by %s: that process "
            "no longer holds it (it ended without releasing it, e.g. killed).",
            path,
            _describe(left),
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    os.fsync(fd)
    status = os.fstat(fd)
    return _Held(fd, (status.st_dev, status.st_ino))


def _drop(held: _Held, clear: bool = False) -> None:
    if held.fd is None or held.pid != os.getpid():
        return
    try:
        if clear:
            os.ftruncate(held.fd, 0)  # a clean release: nothing for the next writer to report
        fcntl.flock(held.fd, fcntl.LOCK_UN)
    except OSError:
        pass
    finally:
        os.close(held.fd)
        held.fd = None
