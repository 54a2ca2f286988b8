"""Records the step's statistics in-graph, on cadence steps: the road to TensorBoard.

`StepRecorder` (used by `core.StepCore`) writes with `tf.summary` inside the compiled step, so
no value crosses to the host for the sinks that can be written in-graph.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, deltas, replicas
from gradguard.findings import Finding
from gradguard.sinks import tags
from gradguard.sinks.writers import Sink, write_scalar
from gradguard.stats import Every, Layout, Stats, known_false

__all__ = ["StepRecorder"]

_SKIPPED_INDEX = tags.STEP_TAGS.index(tags.SKIPPED)


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
      every: The cadence: scalars are written on measured steps that are due.
      extra: The checks' own scalars (`checks.base.Scalar`: a tag and a function computing
        the value in-graph), read on the same steps.
    """

    def __init__(
        self,
        sink: Sink,
        layout: Layout,
        *,
        per_variable: bool,
        learning_rate: Callable[[], Any],
        every: Every,
        extra: Sequence[Any] = (),
    ):
        self.every = every
        self._extra = list(extra)
        self.sink = sink
        self.layout = layout
        self.per_variable = per_variable
        self._learning_rate = learning_rate
        parts = sink.parts()
        self._writers = [s.graph_writer() for s in parts if s.graph_writer() is not None]
        self._host_sinks = [s for s in parts if s.graph_writer() is None]
        self.groups = layout.names if per_variable else layout.layers
        g = len(self.groups)
        self.tags = (
            list(tags.STEP_TAGS)
            + [f"{tags.LAYER_GRAD_NORM}/{name}" for name in self.groups]
            + [f"{tags.LAYER_WEIGHT_NORM}/{name}" for name in self.groups]
            + [f"{tags.LAYER_UPDATE_RATIO}/{name}" for name in self.groups]
            + [scalar.tag for scalar in self._extra]
        )
        self._grad_at = len(tags.STEP_TAGS)
        self._weight_at = self._grad_at + g
        self._ratio_at = self._weight_at + g
        self._extra_at = self._ratio_at + g
        # Filled while tracing: groups none of whose variables gets a gradient. They get no
        # scalars (their weights are not measured either), so inspect does not judge them.
        self._none_groups: frozenset[int] = frozenset()
        self._xla = False
        self._host_written = -1
        with _compat.outside_trace():
            self._skipped = replicas.state_variable(0, tf.int64)
            self._pending = replicas.state_variable(tf.zeros([len(self.tags)]))
            self._pending_step = replicas.state_variable(-1, tf.int64)
            self._written_step = replicas.state_variable(-1, tf.int64)
        self._write_pending: Callable[[], None] | None = None
        self.config: dict[str, Any] = {
            "scalars": "variable" if per_variable else "layer",
            "every": every.n,
            "layers": list(layout.layers),
            "variables": list(layout.names),
        }
        sink.write_texts(0, {tags.CONFIG: json.dumps(self.config)})

    def note(self, **config: Any) -> None:
        """Adds to the recorded configuration, which ``gradguard inspect`` reads.

        E.g. the codes the run's policy ignores: ``note(ignored=["loss-not-decreasing"])``.
        Written again only when a value changes (a value of None is the same as none).
        """
        if all(self.config.get(key) == value for key, value in config.items()):
            return
        self.config.update(config)
        self.sink.write_texts(0, {tags.CONFIG: json.dumps(self.config)})

    def record(
        self,
        stats: Stats,
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
        # Updates skipped as non-finite (by the gate or the loss scaler); a call a Keras
        # optimizer only accumulates is no update (its step's `skipped` flag, below, is 1).
        skipped = tf.convert_to_tensor(stats.vetoed) | tf.convert_to_tensor(stats.overflow)
        self._skipped.assign_add(tf.cast(skipped, tf.int64))
        if known_false(stats.measured):
            return  # a lean step (the host picked it): nothing to write
        in_xla = _compat.in_xla_context()
        self._xla = self._xla or in_xla
        keep = in_xla or bool(self._host_sinks)
        writers = [] if in_xla else self._writers

        # Activations are tensors of many shapes, summarized by their check, not written here.
        def measured(clipped: tf.Tensor, learning_rate: tf.Tensor, *values: Any) -> None:
            stats = Stats.from_tensors(values)
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
        due = stats.measured & self.every(stats.step)
        replicas.run_if(due, measured, clipped, learning_rate, *stats.tensors())

    def flush(self) -> None:
        """Host side: writes what the step kept for later, then flushes the sink."""
        if self._xla and self._writers:
            if self._write_pending is None:
                self._write_pending = _compat.function(self._write_kept)
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
                {f"{tags.FINDINGS}/{finding.code}": f"{text}: {finding.message}"},
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
            if i >= self._ratio_at and (values[self._weight_at + group] == 0 or values[i] < 0):
                continue
            scalars[tag] = float(values[i])
        return scalars

    def _values(
        self,
        stats: Stats,
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
        if any(self.layout.sampled):
            # A group with a sample that told nothing of its variable (`deltas.known`) gets no
            # ratio, as the live check judges none: -1 marks it (a ratio is >= 0 or NaN).
            unknown = ~deltas.known(self.layout.sampled, stats.update_sq, stats.grad_sample_sq)
            ratio = tf.where(group(tf.cast(unknown, tf.float32)) > 0, -1.0, ratio)

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
                *[f32(scalar.value()) for scalar in self._extra],
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
                write_scalar(self.tags[i], values[i])
        for i in range(self._extra_at, len(self.tags)):
            write_scalar(self.tags[i], values[i])
        # Whatever `tf.summary.record_if` the caller set still applies.
        record = tf.summary.should_record_summaries()

        def updates() -> None:
            # Weights are measured only when the update ran; a zero-norm weight (a fresh zero
            # bias) has no ratio, nor has a group whose sample told nothing (-1).
            for k in live:
                weight, ratio = values[self._weight_at + k], values[self._ratio_at + k]
                write_scalar(self.tags[self._weight_at + k], weight)
                with tf.summary.record_if(record & tf.not_equal(weight, 0.0) & ~(ratio < 0.0)):
                    write_scalar(self.tags[self._ratio_at + k], ratio)

        tf.cond(tf.equal(values[_SKIPPED_INDEX], 0.0), updates, lambda: None)

    def _write_kept(self) -> None:
        step = self._pending_step.read_value()

        def write() -> None:
            self._write(self._writers, step, self._pending.read_value())
            self._written_step.assign(step)

        tf.cond(step > self._written_step, write, lambda: None)
