"""Where statistics go: TensorBoard, absl logging, JSON lines; composed, not flagged.

A `Sink` (clu's `MetricWriter`) takes scalars and texts on the host: `write_scalars(step,
scalars)`, `write_texts(step, texts)`, `flush()`, `close()`. `MultiSink` sends everything to
several sinks; a new destination is a new small `Sink` subclass.

gradguard's own statistics take a faster road to TensorBoard: `StepRecorder` (used by the core
of `TrainStep` and `guard`) writes them with `tf.summary` inside the compiled step, on cadence
steps only, so no value crosses to the host for them. Sinks that are not `TensorBoardSink`s get
the same values on the host when the core reads its checks (every `every` steps anyway).

Tags are stable (the README lists them). The part before the first ``/`` is the section
TensorBoard groups cards by, so each kind of statistic gets its own section:

* ``gradguard/loss``, ``gradguard/grad_norm``, ``gradguard/grad_norm_applied``,
  ``gradguard/learning_rate``, ``gradguard/clipped``, ``gradguard/clipped_steps``,
  ``gradguard/skipped``, ``gradguard/skipped_updates``: the whole step.
* ``gradguard_grad_norm/<layer>``, ``gradguard_weight_norm/<layer>``,
  ``gradguard_update_ratio/<layer>``: per layer (per variable, ``<layer>/<variable>``, on
  request).
* ``gradguard_findings/<code>`` (text): each finding, at the step it was first seen.
* ``gradguard/config`` (text, JSON): how the run was recorded, for `gradguard inspect`.

Example:
  >>> sink = MultiSink([TensorBoardSink("/tmp/logs/run1"), LoggingSink()])  # doctest: +SKIP
  >>> step = gradguard.TrainStep(model, optimizer, loss_fn, sink=sink)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata
from tensorflow.python.ops import control_flow_util

from gradguard import checks as checks_lib
from gradguard import replicas, tracing
from gradguard.findings import Finding

__all__ = [
    "CLIPPED",
    "CLIPPED_STEPS",
    "CONFIG",
    "DESCRIPTIONS",
    "FINDINGS",
    "GRAD_NORM",
    "GRAD_NORM_APPLIED",
    "LAYER_GRAD_NORM",
    "LAYER_UPDATE_RATIO",
    "LAYER_WEIGHT_NORM",
    "LEARNING_RATE",
    "LOSS",
    "SKIPPED",
    "SKIPPED_UPDATES",
    "JsonLinesSink",
    "LoggingSink",
    "MultiSink",
    "Sink",
    "StepRecorder",
    "TensorBoardSink",
    "is_gradguard_tag",
]

# The whole step.
LOSS = "gradguard/loss"
GRAD_NORM = "gradguard/grad_norm"
GRAD_NORM_APPLIED = "gradguard/grad_norm_applied"
LEARNING_RATE = "gradguard/learning_rate"
CLIPPED = "gradguard/clipped"
CLIPPED_STEPS = "gradguard/clipped_steps"
SKIPPED = "gradguard/skipped"
SKIPPED_UPDATES = "gradguard/skipped_updates"
# Sections of per-layer (or per-variable) scalars: f"{LAYER_GRAD_NORM}/{layer}".
LAYER_GRAD_NORM = "gradguard_grad_norm"
LAYER_WEIGHT_NORM = "gradguard_weight_norm"
LAYER_UPDATE_RATIO = "gradguard_update_ratio"
DEAD_UNITS = "gradguard_dead_units"
SATURATION = "gradguard_saturation"
# Texts.
FINDINGS = "gradguard_findings"
CONFIG = "gradguard/config"

DESCRIPTIONS: Mapping[str, str] = {
    LOSS: "The step's loss (with regularization losses).",
    GRAD_NORM: "Global L2 norm of the gradients, before gradguard's transforms.",
    GRAD_NORM_APPLIED: "Global L2 norm of the gradients the optimizer got (after clipping).",
    LEARNING_RATE: "The optimizer's learning rate at this step (schedules resolved).",
    CLIPPED: "1 if a transform scaled the gradients down on this step, else 0.",
    CLIPPED_STEPS: "Steps so far on which a transform scaled the gradients down.",
    SKIPPED: "1 if this step's update was skipped (non-finite gradients), else 0.",
    SKIPPED_UPDATES: "Updates skipped so far (non-finite gradients).",
    LAYER_GRAD_NORM: "L2 norm of this layer's gradients, before gradguard's transforms.",
    LAYER_WEIGHT_NORM: "L2 norm of this layer's weights before the update.",
    LAYER_UPDATE_RATIO: "|update| / |weights| for this layer; healthy is about 1e-4 to 1e-2.",
}
_STEP_TAGS = (
    LOSS,
    GRAD_NORM,
    GRAD_NORM_APPLIED,
    LEARNING_RATE,
    CLIPPED,
    CLIPPED_STEPS,
    SKIPPED,
    SKIPPED_UPDATES,
)
_SKIPPED_INDEX = _STEP_TAGS.index(SKIPPED)


def is_gradguard_tag(tag: str) -> bool:
    """Whether `tag` is one gradguard writes (its section starts with ``gradguard``)."""
    return tag.split("/", 1)[0].startswith("gradguard")


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
                _scalar(tag, value)

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Writes text summaries (shown by TensorBoard's text dashboard)."""
        with tf.init_scope(), self.writer.as_default(step=step):
            for tag, text in texts.items():
                tf.summary.write(tag, tf.constant(text), metadata=_TEXT_METADATA)

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
      level: absl logging level, e.g. `absl.logging.INFO` (the default) or `WARNING`.
    """

    def __init__(self, level: int = logging.INFO):
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


def _scalar(tag: str, value: Any) -> None:
    """Writes a scalar summary under exactly `tag`, at the default writer's step.

    `tf.summary.scalar` would prefix the enclosing name scopes (``cond/...`` inside the step's
    branches, or the user's own scopes), so tags would not be stable; `tf.summary.write` keeps
    the tag as given.
    """
    description = DESCRIPTIONS.get(tag) or DESCRIPTIONS.get(tag.split("/", 1)[0], "")
    metadata = scalar_metadata.create_summary_metadata(display_name=None, description=description)
    tf.summary.write(tag, tf.cast(value, tf.float32), metadata=metadata)


def _leaves(sink: Sink) -> list[Sink]:
    if isinstance(sink, MultiSink):
        return [leaf for child in sink.sinks for leaf in _leaves(child)]
    return [sink]


def in_xla_context() -> bool:
    """Whether the code being traced will be compiled by XLA (`jit_compile=True`)."""
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


class StepRecorder:
    """Records a step core's statistics to a sink, on the steps where updates are measured.

    Used by `StepCore`; not part of the public API. `record` runs inside the step. It computes
    the step's scalars (one float32 vector, so they travel together) only on cadence steps,
    inside one `tf.cond`, so other steps pay for one untaken branch and one counter.

    * Outside XLA, TensorBoard sinks are written right there, with `tf.summary`.
    * TensorFlow's summary ops cannot be compiled by XLA, so under `jit_compile=True` the vector
      is kept in a variable instead and `flush` (called by the core at its host read) writes it
      from a small uncompiled `tf.function`. Still no value crosses to the host.
    * Other sinks get the vector as Python floats at `flush`: a host read every `every` steps.

    Args:
      sink: Where to write.
      layout: The variables' layout.
      per_variable: Per-variable scalars instead of per-layer ones.
      learning_rate: Returns the optimizer's current learning rate as a float32 tensor.
      every: The cadence, recorded in the config text.
      extra: More scalars, as (tag, function returning a float scalar tensor) pairs, read
        in-graph on cadence steps (e.g. `checks.ActivationHealth.scalars`).
    """

    def __init__(
        self,
        sink: Sink,
        layout: checks_lib.Layout,
        *,
        per_variable: bool,
        learning_rate: Callable[[], Any],
        every: int,
        extra: Sequence[tuple[str, Callable[[], tf.Tensor]]] = (),
    ):
        self.every = int(every)
        self._extra = list(extra)
        self.sink = sink
        self.layout = layout
        self.per_variable = per_variable
        self._learning_rate = learning_rate
        leaves = _leaves(sink)
        self._writers = [s.writer for s in leaves if isinstance(s, TensorBoardSink)]
        self._host_sinks = [s for s in leaves if not isinstance(s, TensorBoardSink)]
        self.groups = layout.names if per_variable else layout.layers
        g = len(self.groups)
        self.tags = (
            list(_STEP_TAGS)
            + [f"{LAYER_GRAD_NORM}/{name}" for name in self.groups]
            + [f"{LAYER_WEIGHT_NORM}/{name}" for name in self.groups]
            + [f"{LAYER_UPDATE_RATIO}/{name}" for name in self.groups]
            + [tag for tag, _ in self._extra]
        )
        self._grad_at = len(_STEP_TAGS)
        self._weight_at = self._grad_at + g
        self._ratio_at = self._weight_at + g
        self._extra_at = self._ratio_at + g
        # Filled while tracing: groups none of whose variables gets a gradient. They get no
        # scalars (their weights are not measured either), so inspect does not judge them.
        self._none_groups: frozenset[int] = frozenset()
        self._xla = False
        self._host_written = -1
        with tf.init_scope():
            self._skipped = replicas.state_variable(0, tf.int64)
            self._pending = replicas.state_variable(tf.zeros([len(self.tags)]))
            self._pending_step = replicas.state_variable(-1, tf.int64)
            self._written_step = replicas.state_variable(-1, tf.int64)
        self._write_pending: Callable[[], None] | None = None
        config = {
            "scalars": "variable" if per_variable else "layer",
            "every": int(every),
            "layers": list(layout.layers),
            "variables": list(layout.names),
        }
        sink.write_texts(0, {CONFIG: json.dumps(config)})

    def record(
        self,
        stats: checks_lib.Stats,
        *,
        present: Iterable[int],
        clipped: tf.Tensor,
        clipped_steps: tf.Variable,
        learning_rate: tf.Tensor,
    ) -> None:
        """Folds one step in and writes its scalars on cadence steps (in-graph).

        Args:
          stats: The step's statistics; `stats.measured` is the cadence.
          present: Indices of the variables that get a gradient.
          clipped: Whether a transform scaled the gradients down on this step.
          clipped_steps: The core's count of clipped steps, this step included.
          learning_rate: The rate read before the update (NaN on steps not measured).
        """
        present = set(present)
        index = range(self.layout.size) if self.per_variable else self.layout.layer_index
        live = {group for i, group in enumerate(index) if i in present}
        self._none_groups = frozenset(k for k in range(len(self.groups)) if k not in live)
        skipped = tf.logical_not(stats.applied)
        self._skipped.assign_add(tf.cast(skipped, tf.int64))
        in_xla = in_xla_context()
        self._xla = self._xla or in_xla
        keep = in_xla or bool(self._host_sinks)
        writers = [] if in_xla else self._writers

        # Activations are tensors of many shapes, summarized by their check, not written here.
        fields = [f.name for f in dataclasses.fields(stats) if f.name != "activations"]

        def measured(clipped: tf.Tensor, learning_rate: tf.Tensor, *values: Any) -> None:
            stats = checks_lib.Stats(**dict(zip(fields, values)))
            # An applied update moved a schedule's step on: the step's rate is the one read
            # before it; a skipped one did not, so the current rate is the step's.
            lr = tf.where(stats.applied, learning_rate, self._learning_rate())
            scalars = self._values(stats, clipped, clipped_steps, lr, ~stats.applied)
            if keep:
                self._pending.assign(scalars)
                self._pending_step.assign(stats.step)
            self._write(writers, stats.step, scalars)

        # Per-replica tensors go in as arguments: under a strategy the branch may run once per
        # replica (see replicas.run_if).
        due = stats.measured & tf.equal(stats.step % self.every, 0)
        values = [tf.convert_to_tensor(getattr(stats, name)) for name in fields]
        replicas.run_if(due, measured, clipped, learning_rate, *values)

    def flush(self) -> None:
        """Host side: writes what the step kept for later, then flushes the sink."""
        if self._xla and self._writers:
            if self._write_pending is None:
                self._write_pending = tracing.own_function(self._write_kept)
            self._write_pending()
        if self._host_sinks:
            step = int(self._pending_step.numpy())
            if step > self._host_written:
                self._host_written = step
                scalars = self.host_scalars(self._pending.numpy())
                for sink in self._host_sinks:
                    sink.write_scalars(step, scalars)
        self.sink.flush()

    def write_findings(self, findings: Sequence[Finding], step: int) -> None:
        """Writes findings as texts, each at the step it was first seen (else `step`)."""
        for finding in findings:
            assert finding.severity is not None
            where = ", ".join(finding.variables)
            text = f"**{finding.severity.value}** `{finding.code}` at step {finding.step}" + (
                f" ({where})" if where else ""
            )
            self.sink.write_texts(
                finding.step if finding.step >= 0 else step,
                {f"{FINDINGS}/{finding.code}": f"{text}: {finding.message}"},
            )

    def host_scalars(self, values: np.ndarray) -> dict[str, float]:
        """The tag -> value mapping of a kept vector, leaving out what was not measured."""
        applied = values[_SKIPPED_INDEX] == 0
        scalars = {}
        for i, tag in enumerate(self.tags):
            if i >= self._extra_at:
                scalars[tag] = float(values[i])
                continue
            group = (i - self._grad_at) % len(self.groups) if i >= self._grad_at else -1
            if group in self._none_groups:
                continue
            if i >= self._weight_at and not applied:
                continue
            if i >= self._ratio_at and values[self._weight_at + group] == 0:
                continue
            scalars[tag] = float(values[i])
        return scalars

    def _values(
        self,
        stats: checks_lib.Stats,
        clipped: tf.Tensor,
        clipped_steps: tf.Variable,
        lr: tf.Tensor,
        skipped: tf.Tensor,
    ) -> tf.Tensor:
        def group(per_variable: tf.Tensor) -> tf.Tensor:
            return per_variable if self.per_variable else self.layout.per_layer(per_variable)

        weight = tf.sqrt(group(stats.weight_sq))
        update = tf.sqrt(group(stats.update_sq))
        ratio = update / tf.where(weight > 0, weight, 1.0)

        def f32(x: Any) -> tf.Tensor:
            return tf.reshape(tf.cast(x, tf.float32), [1])

        return tf.concat(
            [
                f32(stats.loss),
                f32(stats.grad_norm),
                f32(stats.grad_norm_after),
                f32(lr),
                f32(clipped),
                f32(clipped_steps),
                f32(skipped),
                f32(self._skipped),
                tf.sqrt(group(stats.grad_sq)),
                weight,
                ratio,
                *[f32(value()) for _, value in self._extra],
            ],
            axis=0,
        )

    def _write(self, writers: Sequence[Any], step: tf.Tensor, values: tf.Tensor) -> None:
        """Writes `values` with `tf.summary` to each writer (in-graph, outside XLA)."""
        for writer in writers:
            with writer.as_default(step=step):
                self._write_default(values)

    def _write_default(self, values: tf.Tensor) -> None:
        live = [k for k in range(len(self.groups)) if k not in self._none_groups]
        for i in range(self._weight_at):
            if i < self._grad_at or i - self._grad_at in live:
                _scalar(self.tags[i], values[i])
        for i in range(self._extra_at, len(self.tags)):
            _scalar(self.tags[i], values[i])
        # Whatever `tf.summary.record_if` the caller set still applies.
        record = tf.summary.should_record_summaries()

        def updates() -> None:
            # Weights are measured only when the update ran; a zero-norm weight (a fresh zero
            # bias) has no ratio.
            for k in live:
                weight = values[self._weight_at + k]
                _scalar(self.tags[self._weight_at + k], weight)
                with tf.summary.record_if(record & tf.not_equal(weight, 0.0)):
                    _scalar(self.tags[self._ratio_at + k], values[self._ratio_at + k])

        tf.cond(tf.equal(values[_SKIPPED_INDEX], 0.0), updates, lambda: None)

    def _write_kept(self) -> None:
        step = self._pending_step.read_value()

        def write() -> None:
            self._write(self._writers, step, self._pending.read_value())
            self._written_step.assign(step)

        tf.cond(step > self._written_step, write, lambda: None)
