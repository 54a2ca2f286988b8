"""Update checks: `weights-unchanged`, `update-too-small`, `update-too-large`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard.checks.base import Check
from gradguard.findings import Finding, listing, number
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["UpdateRatio"]


class UpdateRatio(Check):
    """`weights-unchanged`, `update-too-small`, `update-too-large`: the update-to-weight ratio.

    The ratio ``|delta w| / |w|`` is taken per layer (all of a layer's variables together, so a
    zero-initialized bias does not dominate) on the steps where updates are measured.

    Args:
      low: A layer whose ratio is below this on every measured step gets `update-too-small`.
        Healthy training sits around 1e-4 to 1e-2; 1e-7 means the weights barely move.
      min_measured: Each finding needs this many measured steps (steps 0, 1, then every
        `every`): one step can be a warmup that starts at 0, or a first step of Adam.
      high: A layer whose ratio is above this on most measured steps gets `update-too-large`:
        each step changes the weights by half their size.
    """

    def __init__(self, low: float = 1e-7, high: float = 0.5, min_measured: int = 2):
        self.low = low
        self.high = high
        self.min_measured = min_measured

    def _build(self) -> None:
        n, layers = self.layout.size, len(self.layout.layers)
        self.measured = self.add_state("measured", [0] * layers, tf.int64)
        self.below = self.add_state("below", [0] * layers, tf.int64)
        self.above = self.add_state("above", [0] * layers, tf.int64)
        self.last = self.add_state("last", [0.0] * layers)
        self.eligible = self.add_state("eligible", [0] * n, tf.int64)
        self.unchanged = self.add_state("unchanged", [0] * n, tf.int64)

    def update(self, stats: Stats) -> None:
        measured = stats.measured & stats.applied
        w_norm = tf.sqrt(self.layout.per_layer(stats.weight_sq))
        u_norm = tf.sqrt(self.layout.per_layer(stats.update_sq))
        # A layer whose weights are all zero (just initialized) has no meaningful ratio yet, and
        # one without gradient is `zero-gradient`'s business, not a learning rate problem.
        valid = measured & (w_norm > 0) & (self.layout.per_layer(stats.grad_sq) > 0)
        ratio = u_norm / tf.where(w_norm > 0, w_norm, 1.0)

        def count(state: tf.Variable, condition: tf.Tensor) -> None:
            state.assign_add(tf.cast(condition, tf.int64))

        count(self.measured, valid)
        count(self.below, valid & (ratio < self.low))
        count(self.above, valid & (ratio > self.high))
        self.last.assign(tf.where(valid, ratio, self.last))
        eligible = measured & (stats.grad_sq > 0)
        count(self.eligible, eligible)
        count(self.unchanged, eligible & tf.equal(stats.update_sq, 0.0))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        layout = self.layout
        lr = "" if context.learning_rate is None else f" ({number(context.learning_rate)})"
        results = []
        unchanged = [
            i
            for i in range(layout.size)
            if i not in context.none
            and s["eligible"][i] >= self.min_measured
            and s["unchanged"][i] == s["eligible"][i]
        ]
        if unchanged:
            variables = tuple(layout.names[i] for i in unchanged)
            results.append(
                Finding(
                    "weights-unchanged",
                    f"Updates were applied but {listing(variables)} did not change on any "
                    f"measured step despite non-zero gradients: the update is zero or below "
                    f"float precision; the learning rate{lr} is likely 0 or far too small.",
                    context.step,
                    variables,
                    details={"measured_steps": int(s["eligible"][unchanged[0]])},
                )
            )
        measured = s["measured"]
        judged = [li for li in range(len(layout.layers)) if measured[li] > 0]
        small = [
            li
            for li in judged
            if measured[li] >= self.min_measured and measured[li] == s["below"][li]
        ]
        large = [
            li
            for li in judged
            if measured[li] >= self.min_measured and 2 * s["above"][li] > measured[li]
        ]
        if small and len(small) == len(judged):
            small_cause = (
                f"the learning rate{lr} is likely far too small (try 1e-3 for Adam, 1e-2 for SGD)."
            )
        else:
            small_cause = (
                "these layers barely learn while the others do: their gradients are tiny "
                "(vanishing gradients, saturated activations) rather than the learning rate."
            )
        for code, layer_ids, text in (
            (
                "update-too-small",
                small,
                f"far below the healthy 1e-4..1e-2 on every measured step: {small_cause}",
            ),
            (
                "update-too-large",
                large,
                f"above {number(self.high)} on most measured steps: each step rewrites the "
                f"weights; the learning rate{lr} is likely too large (lower it 10x, or clip "
                "gradients).",
            ),
        ):
            if not layer_ids:
                continue
            layers = [layout.layers[li] for li in layer_ids]
            ratios = {layout.layers[li]: float(s["last"][li]) for li in layer_ids}
            shown = ", ".join(f"{name} {number(r)}" for name, r in list(ratios.items())[:4])
            results.append(
                Finding(
                    code,
                    f"Update-to-weight ratio of {listing(layers)} ({shown}) is {text}",
                    context.step,
                    layout.variables_of(layer_ids),
                    details={"ratio": ratios, "low": self.low, "high": self.high},
                )
            )
        return results

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        u = logged.updates()
        # As the live check: a layer without gradient has no meaningful ratio.
        valid = u.layer_valid & (u.layer_grad_sq > 0)
        ratio = u.layer_ratio
        last = np.zeros(len(logged.layout.layers))
        for li in range(len(last)):
            hits = np.flatnonzero(valid[li])
            if hits.size:
                last[li] = ratio[li, hits[-1]]
        eligible = u.measured & (u.grad > 0)
        # A variable whose ratio was not logged (zero weights) is not known to be unchanged.
        unchanged = eligible & u.known & (u.update == 0)
        return {
            "measured": valid.sum(axis=1),
            "below": (valid & (ratio < self.low)).sum(axis=1),
            "above": (valid & (ratio > self.high)).sum(axis=1),
            "last": last,
            "eligible": eligible.sum(axis=1),
            "unchanged": unchanged.sum(axis=1),
        }
