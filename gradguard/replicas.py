"""tf.distribute concerns in one place.

State every replica can write, conditional updates that work inside `strategy.run`, the replica
context that sums gradients, and which worker is the chief.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from gradguard import _compat
from gradguard import batch as batch_lib

__all__ = [
    "LayerMaxima",
    "check_mirrored",
    "entering_strategy_of",
    "is_chief",
    "multi_replica",
    "replica_local_variable",
    "run_if",
    "run_sharded",
    "state_variable",
    "zeros_state",
    "summing_replica_context",
]


def state_variable(
    value: Any, dtype: tf.DType | None = None, name: str | None = None
) -> tf.Variable:
    """A non-trainable variable for gradguard's own state.

    Under a `tf.distribute` strategy, every replica computes the same statistics (from
    all-reduced gradients), so the first replica's assignment stands for all; plain variables
    could not be assigned inside `strategy.run`.
    """
    return tf.Variable(
        value,
        dtype=dtype,
        trainable=False,
        name=name,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


def zeros_state(size: int, name: str) -> tf.Variable:
    """A float32 `state_variable` of `size` zeros, made outside the trace it is asked for in."""
    with _compat.outside_trace():
        return state_variable(tf.zeros([size]), name=name)


def replica_local_variable(
    value: Any, dtype: tf.DType | None = None, name: str | None = None
) -> tf.Variable:
    """A non-trainable variable of which each replica keeps its own copy.

    For state folded from what one replica saw of its slice of the batch (activations): the
    copies are combined on the host (`checks.base.StateSpec`), so the step needs no
    cross-replica communication for them. Outside a strategy it is a plain variable.
    """
    return tf.Variable(
        value,
        dtype=dtype,
        trainable=False,
        name=name,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


def run_if(pred: tf.Tensor, fn: Callable[..., None], *args: Any, rare: bool = False) -> None:
    """Runs ``fn(*args)`` for its side effects when `pred` holds; also inside `strategy.run`.

    In a replica context of a strategy that synchronizes through `merge_call` (an optimizer's
    all-reduce does), a `tf.cond` whose branch synchronizes is not allowed. There, as Keras'
    LossScaleOptimizer does, the condition is taken in cross-replica context and `fn` runs on
    each replica. Per-replica tensors must come in `args`, not in `fn`'s closure. `rare`: `fn`
    runs on few steps and is many ops (`_compat.rare_cond`).
    """

    def run(*args: Any) -> tf.Tensor:
        fn(*args)
        return tf.constant(True)

    def skip(*args: Any) -> tf.Tensor:
        return tf.constant(False)

    # Even with one replica, a mirrored variable's assignment goes through merge_call.
    replica = tf.distribute.get_replica_context() if tf.distribute.has_strategy() else None
    if replica is None or _compat.strategy_supports_no_merge_call():
        (_compat.rare_cond if rare else tf.cond)(pred, lambda: run(*args), lambda: skip(*args))
        return

    def merge_fn(distribution: tf.distribute.Strategy, pred: Any, *args: Any) -> None:
        def run_each() -> tf.Tensor:
            distribution.extended.call_for_each_replica(fn, args=args)
            return tf.constant(True)

        first = distribution.experimental_local_results(pred)[0]  # the same on every replica
        tf.cond(first, run_each, skip)

    replica.merge_call(merge_fn, args=(pred, *args))


def summing_replica_context() -> tf.distribute.ReplicaContext | None:
    """The replica context when the step runs on several replicas (`strategy.run`), else None."""
    if not tf.distribute.has_strategy():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def is_chief() -> bool:
    """Whether this process writes logs: always, except on the non-chief workers of a cluster."""
    resolver: Any = getattr(tf.distribute.get_strategy(), "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def run_sharded(
    strategy: tf.distribute.Strategy,
    step: Callable[..., tuple[tf.Tensor, tf.Tensor]],
    batch: tuple[Any, ...],
) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs ``step(*batch) -> (loss, healthy)`` on every replica, each on its share of `batch`.

    A batch the strategy already distributed is used as it is; a global batch is sliced, one
    slice per replica. Returns the summed loss (each replica's is its 1/R share) and whether
    every replica's step was healthy.
    """

    def replica_step(*batch: Any) -> tuple[tf.Tensor, tf.Tensor]:
        context = tf.distribute.get_replica_context()
        if not any(isinstance(t, tf.distribute.DistributedValues) for t in tf.nest.flatten(batch)):
            index, count = context.replica_id_in_sync_group, context.num_replicas_in_sync
            batch = tf.nest.map_structure(lambda t: batch_lib.replica_slice(t, index, count), batch)
        return step(*batch)

    loss, healthy = strategy.run(replica_step, args=batch)
    healthy = tf.reduce_all(tf.stack(strategy.experimental_local_results(healthy)))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), healthy


def check_mirrored(strategy: tf.distribute.Strategy, variables: list[Any], model: Any) -> None:
    """Raises a ValueError if `model`'s variables were not created in the strategy's scope."""
    value = getattr(variables[0], "value", variables[0])
    if not strategy.extended.variable_created_in_scope(value):
        raise ValueError(
            f"model {getattr(model, 'name', '')!r} was created outside the strategy's "
            "scope, so its variables are not mirrored: create the model and the optimizer "
            "inside `with strategy.scope():`."
        )


def entering_strategy_of(variables: Sequence[Any]) -> contextlib.AbstractContextManager[Any] | None:
    """The scope of the strategy `variables` were made in, if the code is not in one already.

    gradguard's state for them must be made there too: made outside (a guard made over a built
    optimizer, outside `strategy.scope()`), a `state_variable` is a plain variable that every
    replica assigns, counting each step once per replica.
    """
    if tf.distribute.has_strategy():
        return None
    for variable in variables:
        value = getattr(variable, "value", variable)  # a Keras Variable wraps a tf.Variable
        strategy = getattr(value, "distribute_strategy", None)  # a distributed variable's
        if strategy is not None:
            return strategy.scope()
    return None


def multi_replica() -> bool:
    """Whether the code runs under a strategy with several replicas."""
    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


class LayerMaxima:
    """The largest of a value per layer, folded in-graph into a state variable of each layer's.

    Args:
      name: The variables' name (``gradguard_<what>``).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._seen: dict[int, tuple[weakref.ref[Any], tf.Variable]] = {}

    def fold(self, layer: Any, value: tf.Tensor) -> None:
        """In-graph (or eagerly): keeps the larger of `layer`'s maximum and `value`."""
        if id(layer) not in self._seen:
            with _compat.outside_trace():
                self._seen[id(layer)] = (weakref.ref(layer), state_variable(0.0, name=self._name))
        seen = self._seen[id(layer)][1]
        seen.assign(tf.maximum(seen.read_value(), tf.cast(value, tf.float32)))

    def read(self) -> list[tuple[Any, float]]:
        """On the host: each layer still alive with its maximum so far."""
        alive = [(ref(), seen) for ref, seen in self._seen.values()]
        return [(layer, float(seen.numpy())) for layer, seen in alive if layer is not None]
