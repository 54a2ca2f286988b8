"""Reading TensorBoard event files: every run under a log directory, damaged files included.

`load_runs(logdir)` reads every run (a directory holding ``*tfevents*`` files) under `logdir`; a
file cut short by a crash is read up to the damage, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
from absl import logging

from gradguard.sinks import tags

__all__ = ["LogDirError", "Run", "Series", "load_runs", "read_event_file"]


class LogDirError(ValueError):
    """LOGDIR does not exist or holds no event files."""


@dataclasses.dataclass(frozen=True)
class Series:
    """One scalar tag's values, sorted by step (the last value written wins for a step)."""

    steps: np.ndarray
    values: np.ndarray

    def at(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values at `steps` (NaN where not logged) and whether each was logged."""
        index = np.searchsorted(self.steps, steps)
        index = np.minimum(index, max(len(self.steps) - 1, 0))
        present = (self.steps[index] == steps) if len(self.steps) else np.zeros(len(steps), bool)
        values = np.where(present, self.values[index] if len(self.steps) else np.nan, np.nan)
        return values.astype(np.float64), present


@dataclasses.dataclass
class Run:
    """What one run directory's event files hold.

    Attributes:
      name: The directory relative to LOGDIR (``.`` for LOGDIR itself).
      path: The directory.
      files: Its event files, in the order read.
      scalars: Tag -> series, for every scalar tag (gradguard's and others').
      texts: Tag -> (step, text) pairs.
      other_tags: Tags of other kinds (histograms, images, ...) -> plugin name.
      warnings: Problems met while reading (a damaged file).
    """

    name: str
    path: str
    files: list[str]
    scalars: dict[str, Series]
    texts: dict[str, list[tuple[int, str]]]
    other_tags: dict[str, str]
    warnings: list[str]

    @property
    def gradguard_tags(self) -> list[str]:
        """The tags written by gradguard."""
        return sorted(t for t in [*self.scalars, *self.texts] if tags.is_gradguard_tag(t))

    @property
    def config(self) -> dict[str, Any]:
        """The recording's configuration (``gradguard/config``), or {} if not logged."""
        entries = self.texts.get(tags.CONFIG)
        if not entries:
            return {}
        try:
            value = json.loads(entries[-1][1])
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def read_event_file(path: str) -> tuple[list[Any], str | None]:
    """Reads the events of one file, stopping at the first damaged record.

    Args:
      path: An event file.

    Returns:
      The `Event` protos read, and a warning if the file is damaged (else None).
    """
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    from gradguard import _compat

    events: list[Any] = []
    reader = _compat.record_reader(path)
    offset = 0
    try:
        while True:
            try:
                record, end = reader.read(offset)
            except IndexError:  # end of file
                return events, None
            except tf.errors.DataLossError as e:
                size = os.path.getsize(path)
                cause = "truncated" if "truncated" in str(e) else "corrupted"
                return events, (
                    f"{path}: {cause} record at byte {offset} of {size}; read the {len(events)} "
                    f"event(s) before it (a run that crashed or is still writing leaves a partial "
                    f"last record)."
                )
            events.append(event_pb2.Event.FromString(record))
            offset = end
    finally:
        reader.close()


def _is_event_file(name: str) -> bool:
    # TensorBoard's own rule (tensorboard/backend/event_processing/io_wrapper.py).
    return "tfevents" in name


def _run_files(logdir: str) -> dict[str, list[str]]:
    if os.path.isfile(logdir):
        if not _is_event_file(os.path.basename(logdir)):
            raise LogDirError(
                f"{logdir!r} is a file, not a log directory or an event file "
                "(events.out.tfevents.*)."
            )
        return {os.path.dirname(os.path.abspath(logdir)): [logdir]}
    if not os.path.isdir(logdir):
        raise LogDirError(
            f"log directory {logdir!r} does not exist; pass the directory given to "
            "TrainStep(log_dir=...) or `tensorboard --logdir`."
        )
    runs: dict[str, list[str]] = {}
    for directory, subdirs, files in os.walk(logdir):
        subdirs.sort()
        events = sorted(f for f in files if _is_event_file(f))
        if events:
            runs[directory] = [os.path.join(directory, f) for f in events]
    if not runs:
        raise LogDirError(
            f"no TensorBoard event files (events.out.tfevents.*) under {logdir!r}; write some "
            "with gradguard.TrainStep(..., log_dir=DIR) or `gradguard run --log-dir DIR`."
        )
    return runs


def load_runs(logdir: str) -> list[Run]:
    """Reads every run under `logdir` (or the one event file `logdir` names).

    Args:
      logdir: A directory (searched recursively) or an event file.

    Returns:
      One `Run` per directory holding event files, sorted by name.

    Raises:
      LogDirError: if `logdir` does not exist or holds no event files.
    """
    from tensorboard.util import tensor_util

    runs = []
    root = logdir if os.path.isdir(logdir) else None
    for directory, files in sorted(_run_files(logdir).items()):
        name = os.path.relpath(directory, root) if root else os.path.basename(directory)
        points: dict[str, dict[int, float]] = {}
        texts: dict[str, dict[int, str]] = {}
        other: dict[str, str] = {}
        plugins: dict[str, str] = {}
        warnings = []
        for path in files:
            events, warning = read_event_file(path)
            if warning:
                logging.warning("gradguard inspect: %s", warning)
                warnings.append(warning)
            for event in events:
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    tag = value.tag
                    plugin = value.metadata.plugin_data.plugin_name
                    if plugin:
                        plugins[tag] = plugin
                    plugin = plugins.get(tag, "")
                    if value.HasField("simple_value"):
                        points.setdefault(tag, {})[event.step] = float(value.simple_value)
                        continue
                    if not value.HasField("tensor"):
                        other[tag] = plugin or value.WhichOneof("value") or "unknown"
                        continue
                    array = tensor_util.make_ndarray(value.tensor)
                    if plugin == "text" or array.dtype.kind in "OSU":
                        item = array.reshape(-1)[0] if array.size else b""
                        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                        texts.setdefault(tag, {})[event.step] = str(text)
                    elif plugin in ("scalars", "") and array.size == 1:
                        points.setdefault(tag, {})[event.step] = float(array.reshape(-1)[0])
                    else:
                        other[tag] = plugin or "tensor"
        scalars = {}
        for tag, by_step in points.items():
            steps = np.array(sorted(by_step), dtype=np.int64)
            scalars[tag] = Series(steps, np.array([by_step[s] for s in steps], np.float64))
        runs.append(
            Run(
                name=name,
                path=directory,
                files=files,
                scalars=scalars,
                texts={t: sorted(v.items()) for t, v in texts.items()},
                other_tags=other,
                warnings=warnings,
            )
        )
    return runs
