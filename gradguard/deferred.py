"""Checks folded later, many steps at once: a lean step writes one row instead of ~100 ops.

Every op a step executes costs the executor a microsecond or two however small it is, and the
checks' folds are about a hundred scalar ops: on a model whose step is itself many small ops (an
LSTM, a transformer) they were most of gradguard's cost. `TrainStep`'s lean graph steps now
write the statistics the deferrable checks need as one row of a buffer; before the next
measuring step (every `every` steps) the host folds the rows into the checks in one loop
compiled by XLA (one launch, the loop's scalar work fused). The loop calls the checks' own
`update` on each row, so the deferred fold is the per-step fold by construction. A host read
folds what waits first (`Check.state`, `StateReader`), as a graph, without compiling.

Deferrable checks say so (`Check.deferrable`: their fold reads only `Stats`' scalars,
`grad_sq` and their own state, and compiles with XLA). Other checks, measuring steps, XLA
steps (which fuse the per-step fold already), steps under a strategy, and steps that decide
in-graph whether they measure (the guard's) fold every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.checks.base import Check
from gradguard.stats import Every, Stats

__all__ = ["EVERY_RANGE", "DeferredFold", "defers", "for_checks"]

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
)
_BOOLS = ("applied", "overflow", "vetoed", "loss_known")
# The measuring cadences (`every`) whose lean steps leave the fold: from 16 steps the one XLA
# compile (a few tenths of a second, at the first measuring step with rows) pays for itself; up
# to 1000 the buffer stays small (a row is a few dozen floats).
EVERY_RANGE = range(16, 1001)


def defers(every: int) -> bool:
    """Whether a step measuring every `every` steps leaves the deferrable checks' fold to it."""
    return every in EVERY_RANGE


def for_checks(
    checks: Sequence[Check], every: Every, step: tf.Variable, wanted: bool = True
) -> DeferredFold | None:
    """The buffer for the deferrable ones among built `checks`, if wanted and `every` gains."""
    deferrable = [check for check in checks if check.deferrable]
    if not (wanted and deferrable and defers(every.n)):
        return None
    return DeferredFold(deferrable, every.n - 1, step)


class DeferredFold:
    """A buffer of lean steps' statistics and the loop that folds it into the checks.

    The host folds the rows before each measuring step (`before_step`), and before any read
    of a check's state (it sets `Check.before_read`).

    Args:
      checks: The deferrable checks, built (on one layout).
      rows: The buffer's rows: at least the lean steps between two measuring steps.
      step: The step counter: after a step, the next one (the rows are the steps before it).
    """

    def __init__(self, checks: Sequence[Check], rows: int, step: tf.Variable):
        self.checks = tuple(checks)
        self.size = checks[0].layout.size  # `Stats.grad_sq`'s length
        self._step = step
        self.waiting = 0  # lean steps run since the last fold (the host's count)
        with tf.init_scope():
            self._rows = replicas.state_variable(
                np.zeros([rows, len(_SCALARS) + self.size], np.float32), name="gradguard_rows"
            )
            self._count = replicas.state_variable(0, tf.int32, "gradguard_rows_count")
        # Traced and compiled at the first measuring step with rows, not at the first call.
        self._compiled_fold = _compat.function(self._fold, jit_compile=True)
        self._graph_fold = _compat.function(self._fold)
        for check in self.checks:
            check.before_read = self.fold

    def before_step(self, measure: bool) -> None:
        """Host, before a step: a measuring step's fold comes after the rows'."""
        if not measure:
            self.waiting += 1
        elif self.waiting:
            self._compiled_fold()
            self.waiting = 0

    def fold(self) -> None:
        """Host: folds the waiting rows into the checks, as a graph (no compile for a read)."""
        if self.waiting:
            self._graph_fold()
            self.waiting = 0

    def write(self, stats: Stats) -> None:
        """Writes a lean step's statistics as the buffer's next row (in-graph)."""
        values = [tf.cast(getattr(stats, name), tf.float32) for name in _SCALARS]
        row = tf.concat([tf.stack(values), tf.cast(stats.grad_sq, tf.float32)], axis=0)
        count = self._count.read_value()
        self._rows.scatter_nd_update(tf.reshape(count, [1, 1]), row[tf.newaxis])
        self._count.assign(count + 1)

    def _fold(self) -> None:
        """Folds the rows into the checks, oldest first, and empties the buffer (in-graph)."""
        rows, count = self._rows.read_value(), self._count.read_value()
        first = self._step.read_value() - tf.cast(count, tf.int64)
        zeros = tf.zeros([self.size])

        def body(i: tf.Tensor) -> tf.Tensor:
            row = rows[i]
            fields = {name: row[k] for k, name in enumerate(_SCALARS)}
            fields.update({name: fields[name] > 0.5 for name in _BOOLS})
            fields["bad_input"] = tf.cast(fields["bad_input"], tf.int32)
            stats = Stats(
                step=first + tf.cast(i, tf.int64),
                grad_sq=row[len(_SCALARS) :],
                measured=tf.constant(False),  # rows are lean steps'
                update_sq=zeros,
                weight_sq=zeros,
                grad_sample_sq=zeros,
                **fields,
            )
            for check in self.checks:
                check.update(stats)
            return i + 1

        tf.while_loop(lambda i: i < count, body, [tf.constant(0)])
        self._count.assign(0)
