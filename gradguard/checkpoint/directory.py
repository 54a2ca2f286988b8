"""What a `Manager`'s directory holds: checkpoints, what unfinished saves left, the state file."""

from __future__ import annotations

import collections
import os
import re
import shutil
from collections.abc import Iterable
from typing import Any

import tensorflow as tf

from gradguard import _compat
from gradguard.checkpoint import durable, files
from gradguard.checkpoint.config import SIDECAR
from gradguard.findings import Finding

__all__ = [
    "STATE_FILE",
    "delete",
    "leftover_finding",
    "leftovers",
    "on_disk",
    "remove",
    "unreadable",
    "write_state",
]

STATE_FILE = "checkpoint"  # TensorFlow's, read by tf.train.latest_checkpoint


def on_disk(directory: str, name: str) -> list[tuple[int, str]]:
    """Checkpoints in the directory that have an index, by number, oldest first.

    The directory, not the state file, is the truth: a crash can leave the state file behind.
    """
    pattern = re.compile(re.escape(name) + r"-(\d+)\.index$")
    found = []
    for entry in os.listdir(directory) if os.path.isdir(directory) else []:
        match = pattern.match(entry)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, entry[: -len(".index")])))
    return sorted(found)


def leftovers(directory: str, name: str) -> dict[int, list[str]]:
    """What saves that did not finish left behind, by checkpoint number.

    gradguard stages a save in ``ckpt-N.saving/``; older versions and TensorFlow's own
    `CheckpointManager` leave ``ckpt-N_temp/`` and ``*.tempstate*`` files. Data files or a
    sidecar without an index never counted as a checkpoint either.
    """
    pattern = re.compile(
        re.escape(name) + r"-(\d+)(\.saving|_temp|\.data-\d+-of-\d+(\.tempstate\d+)?"
        r"|\.index\.tempstate\d+|" + re.escape(SIDECAR) + r"(\.tmp)?)$"
    )
    found: dict[int, list[str]] = collections.defaultdict(list)
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        match = pattern.match(entry)
        if not match:
            continue
        prefix = os.path.join(directory, f"{name}-{match.group(1)}")
        temporary = match.group(2) in (durable.STAGING, "_temp") or entry.endswith(".tmp")
        if temporary or ".tempstate" in entry or not os.path.exists(prefix + ".index"):
            found[int(match.group(1))].append(os.path.join(directory, entry))
    return dict(sorted(found.items()))


def leftover_finding(name: str, number: int, left: list[str], failed: str | None) -> Finding:
    """`checkpoint-corrupt` for a save that did not finish, with what it left and why."""
    if failed:
        why = f"its save failed ({failed})"
    else:
        why = (
            "its save was interrupted before it finished (the process killed or the machine "
            "down, or it failed and could not clean up)"
        )
    return files.corrupt(
        f"checkpoint {name}-{number} is incomplete: {why}; {', '.join(left)} left behind; it is "
        "skipped and removed by the next save.",
        left,
    )


def remove(paths: Iterable[str]) -> None:
    """Removes files and directories; those already gone are fine."""
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)


def delete(prefix: str) -> None:
    """Deletes a checkpoint: its index first, so that it stops counting before it is partial."""
    remove([prefix + ".index", *files.data_files(prefix), prefix + SIDECAR])


def unreadable(prefix: str) -> str | None:
    """Why a checkpoint cannot be restored, judged from its index and files (None: it can).

    Cheap enough to run on every checkpoint at every save: the index is parsed and the data
    files counted, not read (the new checkpoint was read whole before it counted).
    """
    try:
        reader: Any = tf.train.load_checkpoint(prefix)
    except Exception as e:  # noqa: BLE001 - TF raises several types for a bad index
        return f"its index cannot be read ({files.first_line(e)})"
    if _compat.CHECKPOINT_GRAPH_KEY not in reader.get_variable_to_shape_map():
        return None  # a name-based checkpoint: readable, nothing more to say
    shards = files.data_files(prefix)
    counts = {int(m.group(1)) for f in shards if (m := re.search(r"-of-(\d+)$", f))}
    if not shards or any(len(shards) < n for n in counts):
        return "data files are missing"
    return None


def write_state(directory: str, paths: list[str]) -> None:
    """Writes TensorFlow's ``checkpoint`` state file durably, listing `paths` (oldest first)."""
    relative = [os.path.relpath(p, directory) for p in paths]
    times = [os.path.getmtime(p + ".index") for p in paths]
    text = _compat.checkpoint_state_text(relative, times)
    durable.write_text(
        os.path.join(directory, STATE_FILE), text, "TensorFlow's list of the checkpoints"
    )
