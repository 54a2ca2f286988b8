"""Symmetry check: `units-identical`, a layer whose units stay copies of one another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard.checks.base import Check
from gradguard.findings import Finding, listing
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["IdenticalUnits"]


class IdenticalUnits(Check):
    """`units-identical`: a kernel whose units (its last axis) keep identical weights.

    Units initialized to one value (``tf.ones``, ``tf.zeros``, a constant initializer) compute
    the same output and get the same gradient, so every update moves them alike: the symmetry
    is never broken and the layer works as a single unit. A random initialization makes them
    differ from the start; a kernel initialized to zeros on purpose (a zero-initialized head or
    residual branch, LoRA's second matrix) gets a different gradient for each unit and parts
    them at the first update.

    Judged on the steps that measure the weights (after their update), from each kernel's
    `Stats.unit_spread`: flagged when its units were identical on the first `min_measured` such
    steps that moved it. Only those: rounding (a matmul's kernel sums each column in its own
    order) parts symmetric units in the end, their spread doubling every 10 or so updates from
    1e-8, but only after hundreds of steps in which the layer learned as one unit.

    Args:
      tolerance: Units whose weights differ by at most this much, against the kernel's
        largest weight, count as identical. Randomly initialized units differ by about their
        scale (a spread near 1) from the start, and a zero-initialized kernel's differ once
        it moved.
      min_measured: The measured updates a kernel is judged on, its first.
    """

    measured_only = True
    # The spread of each kernel's units is not logged: `gradguard inspect` does not judge it.
    not_logged = frozenset({"moved", "identical"})

    def __init__(self, tolerance: float = 1e-2, min_measured: int = 2):
        self.tolerance = tolerance
        self.min_measured = min_measured

    def _build(self) -> None:
        n = self.layout.size
        self.counts = self.add_states({"moved": [0] * n, "identical": [0] * n}, tf.int64)

    def update(self, stats: Stats) -> None:
        moved = stats.measured & stats.applied & (stats.update_sq > 0)
        first = moved & (self.counts.read_value()[: self.layout.size] < self.min_measured)
        identical = first & (stats.unit_spread <= self.tolerance)
        self.counts.assign_add(tf.cast(tf.concat([moved, identical], axis=0), tf.int64))

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        n = len(logged.layout.names)
        return {"moved": np.zeros(n, np.int64), "identical": np.zeros(n, np.int64)}  # no finding

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        moved, identical = state["moved"], state["identical"]
        copies = [i for i in range(self.layout.size) if identical[i] >= self.min_measured]
        if not copies:
            return []
        variables = tuple(self.layout.names[i] for i in copies)
        message = (
            f"The units of {listing(variables)} were identical on the first "
            f"{self.min_measured} measured updates: their weights were initialized to one "
            "value (tf.ones, tf.zeros, a constant initializer), so each unit gets the same "
            "gradient and they remain copies of one another; the layer works as a single unit "
            "(until rounding parts them, hundreds of steps later). Initialize them with random "
            "values (keras.initializers.GlorotUniform(), or tf.random.normal(shape, stddev=0.1))."
        )
        return [
            Finding(
                "units-identical",
                message,
                context.step,
                variables,
                details={"measured_updates": int(moved[copies[0]])},
            )
        ]
