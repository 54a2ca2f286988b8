"""Loss checks: `loss-not-decreasing`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard.checks.base import Check
from gradguard.findings import Finding, number
from gradguard.sinks import tags
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["LossNotDecreasing"]


class LossNotDecreasing(Check):
    """`loss-not-decreasing`: the loss now is no lower than over the first `window` steps.

    Compares the mean loss of the first `window` steps with a moving average of the recent loss,
    once `2 * window` steps are seen. A loss that improved and then plateaus is not flagged.

    Args:
      window: Steps in the first window, and the moving average's span.
      min_improvement: Relative improvement that counts as decreasing.
    """

    def __init__(self, window: int = 50, min_improvement: float = 1e-3):
        self.window = window
        self.min_improvement = min_improvement

    def _build(self) -> None:
        self.first_sum = self.add_state("loss_first_sum", 0.0)
        self.recent = self.add_state("loss_recent", 0.0)
        self.count = self.add_state("loss_count", 0, tf.int64)

    def update(self, stats: Stats) -> None:
        loss = tf.cast(stats.loss, tf.float32)
        finite = tf.math.is_finite(loss)
        loss = tf.where(finite, loss, 0.0)
        in_first = finite & (self.count < self.window)
        self.first_sum.assign_add(tf.where(in_first, loss, 0.0))
        decay = 2.0 / (self.window + 1)
        recent = tf.where(self.count == 0, loss, self.recent + decay * (loss - self.recent))
        self.recent.assign(tf.where(finite, recent, self.recent))
        self.count.assign_add(tf.cast(finite, tf.int64))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        if int(s["loss_count"]) < 2 * self.window:
            return []
        first = float(s["loss_first_sum"]) / self.window
        recent = float(s["loss_recent"])
        if abs(first) < 1e-8 or first - recent > self.min_improvement * abs(first):
            return []
        message = (
            f"The loss has not decreased: it averaged {number(first)} over the first "
            f"{self.window} steps and is {number(recent)} now (step {context.step}); the weights "
            "are not moving usefully: see the other findings (learning rate, gradients, "
            "updates) and check that labels match the model's outputs."
        )
        details = {"first_mean": first, "recent": recent, "window": self.window}
        return [Finding("loss-not-decreasing", message, context.step, details=details)]

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        window = self.window
        loss, present = logged.column(tags.LOSS)
        finite = present & np.isfinite(loss)
        losses = loss[finite]
        if not losses.size:
            return {"loss_first_sum": 0.0, "loss_recent": 0.0, "loss_count": np.int64(0)}
        # The first window is the first `window` finite steps: a logged non-finite step pushes
        # its end one step later.
        finite_steps = logged.steps - np.cumsum(present & ~finite)
        early = loss[finite & (finite_steps < window)]
        first_mean = float(early.mean() if early.size else losses[0])
        # The live moving average decays by `decay` per finite step; between two samples `gap`
        # finite steps apart it decays by (1 - decay) ** gap. A logged non-finite loss is a step
        # the live check skipped.
        decay = 2.0 / (window + 1)
        recent: float | None = None
        gap = 0
        previous = None
        for step, value, ok in zip(logged.steps[present], loss[present], finite[present]):
            if previous is not None:
                gap += int(step - previous)
            previous = step
            if not ok:
                gap -= 1
            elif recent is None:
                recent, gap = float(value), 0
            else:
                recent += (1.0 - (1.0 - decay) ** gap) * (float(value) - recent)
                gap = 0
        seen = logged.last_step + 1
        count = round(seen * finite.sum() / max(int(present.sum()), 1))
        return {
            "loss_first_sum": first_mean * window,
            "loss_recent": recent if recent is not None else 0.0,
            "loss_count": np.int64(count),
        }
