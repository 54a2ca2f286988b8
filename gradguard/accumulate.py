"""Gradient accumulation for `TrainStep(accumulate=k)`: k micro-batches, one update."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from gradguard import replicas

__all__ = ["Accumulator"]


def _summed_per_replica(value: Any) -> tf.Variable:
    # ON_READ: each replica sums its own micro-batches; the core sums over replicas when it
    # applies.
    return tf.Variable(
        value,
        trainable=False,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.SUM,
    )


class Accumulator:
    """Averages the gradients of `k` calls and hands the mean to an update every k-th call.

    Costs one copy of the weights; sparse gradients are accumulated densely. Create it outside
    any trace (under the strategy's scope, if any).

    Args:
      variables: The variables the gradients are for.
      k: Micro-batches per update.
    """

    def __init__(self, variables: Sequence[Any], k: int):
        self.k = k
        self._sums = [_summed_per_replica(tf.zeros(v.shape, v.dtype)) for v in variables]
        self._loss = _summed_per_replica(0.0)
        self._micro_batches = replicas.state_variable(0, tf.int64)

    def add(
        self,
        loss: tf.Tensor,
        grads: Sequence[Any],
        update: Callable[[tf.Tensor, list[Any], Any], None],
        extra: Any = (),
    ) -> None:
        """Adds 1/k of this micro-batch's gradients; every k-th call, runs the update.

        Args:
          loss: This micro-batch's loss.
          grads: Its gradients (None where a variable has none).
          update: ``update(mean_loss, mean_grads, extra)``, run on the k-th call.
          extra: Per-replica tensors the update needs (passed through, as `replicas.run_if`
            requires).
        """
        k = self.k
        for total, g in zip(self._sums, grads):
            if isinstance(g, tf.IndexedSlices):
                values = g.values / tf.cast(k, g.values.dtype)
                total.scatter_add(tf.IndexedSlices(values, g.indices, g.dense_shape))
            elif g is not None:
                total.assign_add(g / tf.cast(k, g.dtype))
        self._loss.assign_add(loss / k)
        micro_batch = self._micro_batches.assign_add(1)

        def apply(extra: Any) -> None:
            mean_grads = [
                None if g is None else tf.convert_to_tensor(total)
                for total, g in zip(self._sums, grads)
            ]
            update(tf.convert_to_tensor(self._loss), mean_grads, extra)
            for total in self._sums:
                total.assign(tf.zeros_like(total))
            self._loss.assign(0.0)

        replicas.run_if(tf.equal(micro_batch % k, 0), apply, extra)
