"""Loops that update their weights by hand (``w.assign_sub(lr * g)``): no optimizer, no core.

gradguard's checks run in an optimizer's `StepCore`, so a loop that never calls an optimizer gets
none of them. What such a loop still shows is its loss at each `tape.gradient` call: the first
call whose loss is NaN or Inf is kept (a few scalar ops a call, in-graph inside a `tf.function`)
and reported as `non-finite` when no optimizer update was seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding

__all__ = ["LossWatch"]


class LossWatch:
    """The gradient calls so far and the first one whose loss was not finite (-1: none)."""

    def __init__(self) -> None:
        self._state: tf.Variable | None = None

    def on_loss(self, loss: Any) -> None:
        """A gradient call's loss (in-graph or eager)."""
        if not tf.is_tensor(loss) or not loss.dtype.is_floating:
            return
        if self._state is None:
            with _compat.outside_trace():
                self._state = replicas.state_variable(
                    np.array([0, -1], np.int64), name="gradguard_manual_loss"
                )
        calls, first = tf.unstack(self._state.read_value())
        bad = ~tf.reduce_all(tf.math.is_finite(loss)) & (first < 0)
        self._state.assign(tf.stack([calls + 1, tf.where(bad, calls, first)]))

    def judge(self) -> list[Finding]:
        """`non-finite` at the first call whose loss was NaN/Inf (a host read), if any."""
        if self._state is None:
            return []
        first = int(self._state.numpy()[1])
        if first < 0:
            return []
        message = (
            f"The loss became NaN/Inf at step {first}. This loop updates its weights by hand (no "
            "optimizer update was seen), so where it began cannot be told: look for a learning "
            "rate too large, an update of the wrong sign (assign_add where assign_sub descends), "
            "and log(0), division by zero or sqrt of a negative in the loss."
        )
        origin = {"stage": "loss", "layer": None, "op": None, "step": first}
        return [Finding("non-finite", message, first, details={"origin": origin})]
