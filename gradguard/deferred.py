"""Checks folded later, many steps at once: a step writes one row instead of ~100 ops.

Every op a step executes costs the executor a microsecond or two however small it is, and the
checks' folds are about a hundred scalar ops: on a model whose step is itself many small ops (an
LSTM, a transformer) they were most of gradguard's cost. Steps now write the statistics the
deferrable checks need as one row of a buffer, and one loop folds the rows into the checks,
many at a time. The loop calls the checks' own `update` on each row, so the deferred fold is
the per-step fold by construction. A host read folds what waits first (`Check.state`,
`StateReader`), as a graph, without compiling; a few rows, before the loop was ever traced, op
by op (`EAGER_ROWS`: a short run never traces the loop).

The loop runs as a graph (about 70 us a row) until `COMPILE_AFTER` rows have been folded, then
compiled by XLA (one launch, the loop's scalar work fused: about 4 us a row). Compiling costs
about 0.3 s, so a short run (most scripts) never pays it, and a long one pays it once its graph
folds have cost a quarter of that.

Who folds the rows:

* `TrainStep`'s steps (``host_folds``): the host, which picks lean and measuring steps, folds
  the rows before each measuring step (`before_step`). A measuring step writes its row too and
  folds only the other checks: the deferrable ones are then traced once, in the loop, not in
  the measuring step as well (150 ops fewer in the benchmark MLP's measuring step, of 995).
* The guard's steps, which decide in-graph whether they measure and run any number of updates
  per call (GANs, accumulation, loops), and `TrainStep`'s when they measure more often than
  every 16 steps or accumulate: the step that finds the buffer full folds it first
  (the loop is called from the step, compiled on its first run; in a step XLA compiles, part
  of it, once compiled). The host reads every `read_every` calls, when the rows of one update
  per call have just been folded.

Deferrable checks say so (`Check.deferrable`: their fold reads only `Stats`' scalars,
`grad_sq`, `weight_sq` and their own state, and compiles with XLA). Other checks, `TrainStep`'s
XLA steps (which fuse the per-step fold already) and steps under a strategy fold every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.checks.base import Check
from gradguard.stats import Every, Stats

__all__ = ["COMPILE_AFTER", "EAGER_ROWS", "EVERY_RANGE", "DeferredFold", "defers", "for_checks"]

# A row: these `Stats` fields as float32, then the per-variable squared gradient norms. Bools
# and the small int mask are exact in float32; the step is the row's place.
_SCALARS = (
    "loss",
    "grad_norm",
    "grad_norm_after",
    "applied",
    "overflow",
    "vetoed",
    "bad_input",
    "loss_scale",
    "loss_known",
    "measured",
)
_BOOLS = ("applied", "overflow", "vetoed", "loss_known", "measured")
_PER_VARIABLE = ("grad_sq", "weight_sq")
# The measuring cadences (`every`) whose steps leave the fold: from 16 steps one launch of
# the loop serves enough rows to pay for itself; up to 1000 the buffer stays small (a row is a
# few dozen floats).
EVERY_RANGE = range(16, 1001)
# Rows folded as a graph before the fold loop is compiled (module docstring): 1024 rows at about
# 70 us take a quarter of the compile's 0.3 s.
COMPILE_AFTER = 1024
# Rows a host read folds op by op while the loop was never traced: tracing it costs 0.1-0.2 s
# (every check's update), a row run eagerly about 4 ms.
EAGER_ROWS = 16


def defers(every: int) -> bool:
    """Whether a step measuring every `every` steps leaves the deferrable checks' fold to it."""
    return every in EVERY_RANGE


def for_checks(
    checks: Sequence[Check], every: Every, read_every: Every, step: tf.Variable, defer: str | None
) -> DeferredFold | None:
    """The buffer for the deferrable ones among built `checks`, if `defer` and it gains.

    `defer`: ``"lean"`` (the host folds before each measuring step, every `every` steps: the
    `every` rows since the last fill just before) or ``"all"`` (the steps fold a full buffer;
    the host reads every `read_every` calls: ``read_every - 1`` rows fill just before it does).
    Measuring steps too close together for ``"lean"`` (every statistic every step) take
    ``"all"``.
    """
    deferrable = [check for check in checks if check.deferrable]
    if defer == "lean" and not defers(every.n):
        defer = "all"
    cadence = every if defer == "lean" else read_every
    if defer is None or not deferrable or not defers(cadence.n):
        return None
    rows = cadence.n if defer == "lean" else cadence.n - 1
    return DeferredFold(deferrable, rows, step, host_folds=defer == "lean")


class DeferredFold:
    """A buffer of steps' statistics and the loop that folds it into the checks.

    The rows are folded before any read of a check's state (it sets `Check.before_read`), and
    before each measuring step by the host (`before_step`) or, without ``host_folds``, when
    the buffer is full by the step that would write the next row.

    Args:
      checks: The deferrable checks, built (on one layout).
      rows: The buffer's rows: with ``host_folds``, at least the steps from one measuring step
        to the next.
      step: The step counter: after a step, the next one (the rows are the steps before it).
      host_folds: The host calls `before_step` before every step.
    """

    def __init__(
        self, checks: Sequence[Check], rows: int, step: tf.Variable, *, host_folds: bool = True
    ):
        self.checks = tuple(checks)
        self.size = checks[0].layout.size  # `Stats.grad_sq`'s length
        self.host_folds = host_folds
        self._step = step
        self.waiting = 0  # steps run since the last fold (the host's count, if it folds)
        self._looped = False  # the host has called the loop (traced it) once
        width = len(_SCALARS) + len(_PER_VARIABLE) * self.size
        with _compat.outside_trace():
            self._rows = replicas.state_variable(
                np.zeros([rows, width], np.float32), name="gradguard_rows"
            )
            self._count = replicas.state_variable(0, tf.int32, "gradguard_rows_count")
            # Rows folded so far (in-graph: the steps that fold a full buffer count too).
            self._folded = replicas.state_variable(0, tf.int64, "gradguard_rows_folded")
        # One trace serves both: the compiled fold calls the graph one, which XLA compiles
        # inline when first run (after `COMPILE_AFTER` rows). Tracing the loop (every check's
        # update) costs a tenth of a second or two.
        self._graph_fold = _compat.function(self._fold)
        self._compiled_fold = _compat.function(self._graph_fold, jit_compile=True)
        for check in self.checks:
            check.before_read = self.fold

    def before_step(self, measure: bool) -> None:
        """Host, before a step: the rows are folded before a measuring step's."""
        if not self.host_folds:
            return  # (the steps fold a full buffer)
        if measure and self.waiting:
            compiled = int(self._folded.numpy()) >= COMPILE_AFTER  # (every `every` steps)
            self._looped = True
            with _compat.without_op_callbacks():  # (gradguard's ops: not check_numerics')
                (self._compiled_fold if compiled else self._graph_fold)()
            self.waiting = 0
        self.waiting += 1

    def fold(self) -> None:
        """Host: folds the waiting rows into the checks, as a graph (no compile for a read).

        A few rows, before the loop was ever traced, are folded op by op instead (a short run's
        reads never trace it: `EAGER_ROWS`).
        """
        if self.waiting or not self.host_folds:  # (the guard's host does not know)
            with _compat.without_op_callbacks():
                if self.host_folds and self.waiting <= EAGER_ROWS and not self._looped:
                    self._fold()
                else:
                    self._looped = True
                    self._graph_fold()
            self.waiting = 0

    def write(self, stats: Stats) -> None:
        """Writes a step's statistics as the buffer's next row (in-graph)."""
        values = [tf.cast(getattr(stats, name), tf.float32) for name in _SCALARS]
        per_variable = [tf.cast(getattr(stats, name), tf.float32) for name in _PER_VARIABLE]
        row = tf.concat([tf.stack(values), *per_variable], axis=0)
        count = self._count.read_value()
        if not self.host_folds:
            count = tf.cond(count < self._rows.shape[0], lambda: count, self._fold_full)
        written = self._rows.scatter_nd_update(tf.reshape(count, [1, 1]), row[tf.newaxis])
        # Counted only once written: a call that fails midway (an assert in the user's step)
        # may have run some of the step's ops, never a count without its row.
        with tf.control_dependencies([written]):
            self._count.assign(count + 1)

    def _fold_full(self) -> tf.Tensor:
        """Folds a full buffer (in-graph); its next row is then the first."""
        compiled = self._folded.read_value() >= COMPILE_AFTER
        tf.cond(compiled, self._compiled_fold, self._graph_fold)
        return self._count.read_value()

    def _fold(self) -> None:
        """Folds the rows into the checks, oldest first, and empties the buffer (in-graph)."""
        rows, count = self._rows.read_value(), self._count.read_value()
        first = self._step.read_value() - tf.cast(count, tf.int64)
        zeros = tf.zeros([self.size])

        def body(i: tf.Tensor) -> list[tf.Tensor]:
            # (one split and two unstacks: a slice per field was 50 ops more to trace and run)
            scalars, per_variable = tf.split(rows[i], [len(_SCALARS), -1])
            fields = dict(zip(_SCALARS, tf.unstack(scalars)))
            fields.update({name: fields[name] > 0.5 for name in _BOOLS})
            fields["bad_input"] = tf.cast(fields["bad_input"], tf.int32)
            per_variable = tf.reshape(per_variable, [len(_PER_VARIABLE), self.size])
            fields.update(zip(_PER_VARIABLE, tf.unstack(per_variable)))
            stats = Stats(
                step=first + tf.cast(i, tf.int64),
                update_sq=zeros,  # (no deferrable check reads these two)
                grad_sample_sq=zeros,
                **fields,
            )
            for check in self.checks:
                check.update(stats)
            return [i + 1]  # (the loop variables' structure: run eagerly, the loop keeps it)

        tf.while_loop(lambda i: i < count, body, [tf.constant(0)])
        self._folded.assign_add(tf.cast(count, tf.int64))
        self._count.assign(0)
