"""How much an update changed the weights: ``|delta w|^2`` and ``|w|^2`` per variable, in-graph.

Reading a variable before an update makes TensorFlow copy it when the update writes in place:
that copy is why `StepCore` measures only on cadence steps (`snapshot` and `measured` decide
in-graph; `measure` when the step is known to measure).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, norms

__all__ = ["measure", "measured", "snapshot"]


def snapshot(
    variables: Sequence[Any],
    present: Sequence[int],
    now: tf.Tensor,
    learning_rate: Callable[[], tf.Tensor],
) -> tuple[list[tf.Tensor], tf.Tensor]:
    """If `now`, the present variables' values before the update and the learning rate.

    Other steps get empty tensors (XLA needs both branches' shapes equal: zeros there) and NaN.
    """
    xla = _compat.in_xla_context()
    read = [variables[i] for i in present]

    def take() -> tuple[list[tf.Tensor], tf.Tensor]:
        # The rate before the update moves a schedule on.
        return [tf.convert_to_tensor(v) for v in read], learning_rate()

    def skip() -> tuple[list[tf.Tensor], tf.Tensor]:
        empty = [tf.zeros_like(v) if xla else tf.zeros([0], v.dtype) for v in read]
        return empty, tf.constant(np.nan)

    return tf.cond(now, take, skip)


def measured(
    variables: Sequence[Any],
    present: Sequence[int],
    before: Sequence[tf.Tensor],
    now: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """`measure` if `now` (the `snapshot` was taken and the update applied), else zeros."""

    def take() -> tf.Tensor:
        return tf.stack(measure(variables, present, before))

    both = tf.cond(now, take, lambda: tf.zeros([2, len(variables)]))
    return both[0], both[1]


def measure(
    variables: Sequence[Any], present: Sequence[int], before: Sequence[tf.Tensor]
) -> tuple[tf.Tensor, tf.Tensor]:
    """|delta w|^2 and |w|^2 per variable (0 for those not present), from their values before."""
    n = len(variables)
    update_sq, weight_sq = [tf.constant(0.0)] * n, [tf.constant(0.0)] * n
    for i, old in zip(present, before):
        new = tf.convert_to_tensor(variables[i])
        update_sq[i] = norms.sq_norm(new - tf.reshape(old, new.shape))
        weight_sq[i] = norms.sq_norm(old)
    return tf.stack(update_sq), tf.stack(weight_sq)
