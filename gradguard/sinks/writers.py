"""Where statistics go: TensorBoard, absl logging, JSON lines; composed, not flagged.

A `Sink` (clu's `MetricWriter`) takes scalars and texts on the host: `write_scalars(step,
scalars)`, `write_texts(step, texts)`, `flush()`, `close()`. `MultiSink` sends everything to
several sinks; a new destination is a new small `Sink` subclass.

A sink that can be written in-graph says so through `graph_writer()` (`TensorBoardSink`): the
step's statistics then reach it from inside the compiled step (`recorder.StepRecorder`), and the
other sinks get the same values at the host reads.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

import tensorflow as tf
from absl import logging
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata

from gradguard import replicas
from gradguard.sinks import tags

__all__ = [
    "JsonLinesSink",
    "LoggingSink",
    "MultiSink",
    "Sink",
    "TensorBoardSink",
    "write_scalar",
]


class Sink:
    """Base class of sinks: where statistics and findings go, on the host.

    Subclasses implement `write_scalars`; `write_texts`, `flush` and `close` default to doing
    nothing. A sink may be called from any step cadence; steps need not be contiguous.
    """

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Writes scalars (tag -> value) recorded at `step`."""
        raise NotImplementedError

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Writes texts (tag -> text, e.g. findings) recorded at `step`."""
        del step, texts

    def flush(self) -> None:
        """Makes everything written so far durable."""

    def close(self) -> None:
        """Flushes and releases resources; the sink is not used afterwards."""
        self.flush()

    def parts(self) -> list[Sink]:
        """The sinks this one is made of: itself, or a composite's members (flattened)."""
        return [self]

    def graph_writer(self) -> Any:
        """A `tf.summary` writer the step can write to in-graph, or None (host writes only).

        The step's statistics go to a sink with a graph writer from inside the compiled step,
        and to the others through `write_scalars` at the host reads.
        """
        return None


class MultiSink(Sink):
    """Sends everything to each of `sinks`, in order.

    Args:
      sinks: The sinks to write to.
    """

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks = list(sinks)
        for sink in self.sinks:
            if not isinstance(sink, Sink):
                raise TypeError(
                    f"MultiSink takes gradguard Sinks (TensorBoardSink, LoggingSink, "
                    f"JsonLinesSink or a Sink subclass); got {type(sink).__name__}."
                )

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Writes to every sink."""
        for sink in self.sinks:
            sink.write_scalars(step, scalars)

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Writes to every sink."""
        for sink in self.sinks:
            sink.write_texts(step, texts)

    def flush(self) -> None:
        """Flushes every sink."""
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        """Closes every sink."""
        for sink in self.sinks:
            sink.close()

    def parts(self) -> list[Sink]:
        """Every member's parts, in order."""
        return [part for sink in self.sinks for part in sink.parts()]


class TensorBoardSink(Sink):
    """Writes TensorBoard event files under `log_dir` (one run per directory).

    gradguard's step statistics are written into the same file from inside the compiled step
    through `writer`; `write_scalars` and `write_texts` write from the host.

    On the non-chief workers of a multi-worker cluster it writes nothing (every worker still
    builds the same step: their collective operations must match).

    Args:
      log_dir: The run's directory; created if missing. Give each run its own directory.
    """

    def __init__(self, log_dir: str | os.PathLike[str]):
        self.log_dir = os.fspath(log_dir)
        # Created once, outside any trace, so every trace of a step shares one writer.
        with tf.init_scope():
            if replicas.is_chief():
                self.writer = tf.summary.create_file_writer(self.log_dir)
            else:
                self.writer = tf.summary.create_noop_writer()

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Writes scalar summaries."""
        with tf.init_scope(), self.writer.as_default(step=step):
            for tag, value in scalars.items():
                write_scalar(tag, value)

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Writes text summaries (shown by TensorBoard's text dashboard)."""
        with tf.init_scope(), self.writer.as_default(step=step):
            for tag, text in texts.items():
                tf.summary.write(tag, tf.constant(text), metadata=_TEXT_METADATA)

    def graph_writer(self) -> Any:
        """The event file's writer: the step writes its statistics there in-graph."""
        return self.writer

    def flush(self) -> None:
        """Flushes the event file."""
        with tf.init_scope():
            self.writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file."""
        with tf.init_scope():
            self.writer.close()


class LoggingSink(Sink):
    """Logs scalars and texts with absl logging (one line per write).

    Args:
      level: absl logging level. The default, `absl.logging.WARNING`, shows under absl's
        default verbosity; `absl.logging.INFO` lines show only after
        ``absl.logging.set_verbosity(absl.logging.INFO)``.
    """

    def __init__(self, level: int = logging.WARNING):
        self.level = level

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Logs ``gradguard step N: tag=value, ...``."""
        shown = ", ".join(f"{tag}={value:.4g}" for tag, value in scalars.items())
        logging.log(self.level, "gradguard step %d: %s", step, shown)

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Logs each text on its own line."""
        for tag, text in texts.items():
            logging.log(self.level, "gradguard step %d %s: %s", step, tag, text)


class JsonLinesSink(Sink):
    """Appends one JSON object per write to a file: ``{"step": 100, "scalars": {...}}``.

    Texts are written as ``{"step": ..., "texts": {...}}``. Non-finite values are written as the
    strings ``"nan"``, ``"inf"`` and ``"-inf"``, so every line is strict JSON.

    Args:
      path: The file to append to (its directory must exist).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"JsonLinesSink({self.path!r}) is closed.")
        self._file.write(json.dumps(record, sort_keys=False) + "\n")

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Appends a ``scalars`` line."""
        values = {tag: _json_float(value) for tag, value in scalars.items()}
        self._write({"step": int(step), "scalars": values})

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Appends a ``texts`` line."""
        self._write({"step": int(step), "texts": dict(texts)})

    def flush(self) -> None:
        """Flushes the file."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Closes the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _json_float(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else str(value)


_TEXT_METADATA = text_metadata.create_summary_metadata(display_name=None, description="")


def write_scalar(tag: str, value: Any) -> None:
    """Writes a scalar summary under exactly `tag`, at the default writer's step.

    `tf.summary.scalar` would prefix the enclosing name scopes (``cond/...`` inside the step's
    branches, or the user's own scopes), so tags would not be stable; `tf.summary.write` keeps
    the tag as given.
    """
    description = tags.DESCRIPTIONS.get(tag) or tags.DESCRIPTIONS.get(tag.split("/", 1)[0], "")
    metadata = scalar_metadata.create_summary_metadata(display_name=None, description=description)
    tf.summary.write(tag, tf.cast(value, tf.float32), metadata=metadata)
