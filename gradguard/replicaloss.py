"""A step's loss averaged, or summed, over one replica's examples only.

Under a `tf.distribute` strategy of N replicas, each replica computes the loss on its share of
the global batch, and the optimizer adds up the replicas' gradients. A loss averaged over the
replica's own examples (``tf.reduce_mean``) then gives gradients N times those of the global
batch's average: the learning rate in effect is N times the one set (hunt18: 4 replicas, SGD
at 0.05, diverged to a gradient norm of 1e13; a held-out R² of 0.91 with the loss averaged over
the global batch). TensorFlow's guide divides by the global batch,
``tf.nn.compute_average_loss(per_example_loss, global_batch_size=...)``; Keras' loss objects
scale their mean by 1/N themselves, as `fit` does.

Read, as the optimizer is asked for an update in a replica (more than one in sync), from the
traced loss of the latest gradient: a ``Mean`` over every axis, reached from the loss through
identities, casts and sums only (a penalty added). A product or a division on the way (by N,
by the global batch, Keras' own scaling) is taken for the scaling, and gradients averaged across
the replicas and applied once, outside them (``strategy.reduce(MEAN, ...)``), are right: silent.

A ``Sum`` over every axis there (or an ``L2Loss``; the walk also passes a constant weight of
0.5 or more), of values not divided first, by a scalar or in weights, is the guide's sum with
its division by the global batch forgotten (a loss object built with ``reduction="sum"``, as
the guide once said, then used as it is: `loss-summed-per-replica`). Each update is then the
global batch's size times its average (hunt22: SGD at 0.005, 64 examples a batch: accuracy
0.87 against 0.93). After a constant weight, a mean is not judged: ``0.5 * mean`` on 2
replicas is their share.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from gradguard.diagnose import ancestors, before_views, reduces_all
from gradguard.findings import Finding

__all__ = ["mean_per_replica"]

_PASSING = frozenset({"Identity", "Cast", "AddV2", "Add", "AddN"})
_DIVISIONS = frozenset({"RealDiv", "DivNoNan", "Div", "TrueDiv", "Reciprocal"})
_DATA = frozenset({"IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue"})


def mean_per_replica(loss: Any, step: int) -> list[Finding]:
    """`loss-averaged-per-replica` for an update, in a replica, of its own examples' mean.

    `loss-summed-per-replica` for one of its own examples' sum, never divided (TensorFlow's
    guide sums, then divides by the global batch; a loss object's ``reduction="sum"`` does not).
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas <= 1 or not hasattr(loss, "graph"):
        return []
    stack, seen = [(loss, False)], set[tf.Operation]()
    while stack:
        tensor, weighted = stack.pop()
        op = tensor.op
        if op in seen:
            continue
        seen.add(op)
        name = op.name.split("/", 1)[-1] if op.name.startswith("replica_") else op.name
        if op.type == "Mean" and reduces_all(op) and not weighted:
            message = (
                f"The loss is a mean over this replica's examples ({name}), under a strategy "
                f"of {replicas} replicas whose gradients the optimizer adds up: each update is "
                f"{replicas} times the global batch's average, as if the learning rate were "
                f"{replicas} times the one set. Average over the global batch: "
                "tf.nn.compute_average_loss(per_example_loss, global_batch_size=...), or a "
                "keras.losses object, which scales by the replicas itself."
            )
            details = {"replicas": replicas}
            return [Finding("loss-averaged-per-replica", message, step, details=details)]
        summed = op.type == "Sum" and reduces_all(op) or op.type == "L2Loss"  # (a sum, halved)
        if summed and _of_examples(op.inputs[0]) and not _scaled(op.inputs[0]):
            message = (
                f"The loss is a sum over this replica's examples ({name}), never divided by the "
                f"global batch, under a strategy of {replicas} replicas whose gradients the "
                "optimizer adds up: each update is the global batch's average times its number "
                "of examples, as if the learning rate were that many times the one set. Divide "
                "the sum by the global batch: tf.nn.compute_average_loss(per_example_loss, "
                "global_batch_size=...), or a keras.losses object with its default reduction."
            )
            details = {"replicas": replicas}
            return [Finding("loss-summed-per-replica", message, step, details=details)]
        if op.type in _PASSING:
            stack += [(t, weighted) for t in op.inputs if t.dtype.is_floating]
        elif op.type == "Mul" and _weight(op):  # (0.5 * a sum of squares)
            stack += [(t, True) for t in op.inputs if tf.get_static_value(t) is None]
    return []


def _weight(op: tf.Operation) -> bool:
    """Whether a product has a constant scalar factor of 0.5 or more: a weight, not 1 / batch.

    (After one, a mean over the replica's examples may be the replicas' share: 0.5 of 2.)
    """
    for t in op.inputs:
        value = tf.get_static_value(t) if t.shape.rank == 0 else None
        if value is not None and float(value) >= 0.5:
            return True
    return False


def _scaled(values: tf.Tensor) -> bool:
    """Whether `values` (what a sum adds up) were divided first, by a scalar or in weights.

    ``tf.reduce_sum(per_example / global_batch)``, a product with weights divided by the
    global count (``per_token * (mask / tokens)``), or one value only: nothing to divide.
    """
    if values.shape.num_elements() == 1:
        return True
    op = before_views(values).op
    if op.type in _DIVISIONS or op.type == "Mul" and any(t.shape.rank == 0 for t in op.inputs):
        return True
    return op.type == "Mul" and any(before_views(t).op.type in _DIVISIONS for t in op.inputs)


def _of_examples(values: tf.Tensor) -> bool:
    """Whether `values` are computed from the step's data, not from variables only.

    ``tf.reduce_sum(model.losses)`` sums penalties, one per regularizer: nothing to divide.
    """
    return any(
        op.type in _DATA or op.type == "Placeholder" and op.outputs[0].dtype != tf.resource
        for op in ancestors(values)
    )
