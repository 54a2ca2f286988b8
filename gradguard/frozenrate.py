"""A learning rate a traced step sets to a Python value (`learning-rate-frozen-at-trace`).

A loop computes a warm-up or a decay in Python and the step sets it,
``optimizer.learning_rate = current_lr``, inside a `tf.function`. Python runs once, when the
function is traced: the value of that moment becomes a constant of the graph, and every call
assigns it again, so the rate never follows the loop's schedule (TensorFlow's tf.function guide
on Python globals; hunt30 b07: a warm-up frozen at its first value, 1/500 of the rate meant,
held-out accuracy 0.58 against 0.76 with the rate passed in as a tensor).

Read from the trace of the step, at each optimizer's first update there (`updating.build`): an
assignment of a constant to the optimizer's learning-rate variable in the step's own graph
(not in a branch of a `tf.cond`), where every argument of the step is a tensor (a Python
argument, ``train_step(x, y, lr=0.01)``, retraces per value: the constant is the argument's), and
the constant is not the rate the optimizer holds as the step is traced (set again: a constant
rate, meant as one). Silent: a rate passed in as a tensor, read from a variable or computed from
``optimizer.iterations``, set outside the `tf.function`, or a `LearningRateSchedule`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.activations import enclosing_graphs
from gradguard.diagnose import before_views, variable_placeholders
from gradguard.findings import Finding

__all__ = ["rate_frozen_at_trace"]


def rate_frozen_at_trace(optimizer: Any, step: int) -> Finding | None:
    """`learning-rate-frozen-at-trace` if the traced step sets `optimizer`'s rate to a constant."""
    rate = _compat.learning_rate_object(optimizer)
    if not tf.inside_function() or not _compat.is_variable(rate):
        return None
    # From the outermost graph in: fit's step is traced inside the function of its iterator,
    # an update in a `tf.cond` in the branch's graph. Each captures the rate's handle itself.
    graphs = enclosing_graphs(tf.compat.v1.get_default_graph())
    for graph in reversed([g for g in graphs if hasattr(g, "captures")]):  # (FuncGraphs)
        arguments = graph.structured_input_signature
        if arguments is None:
            continue  # (a `tf.cond` branch's graph: what it assigns is assigned on a condition)
        if not _only_tensors(arguments):
            return None
        (handle,) = variable_placeholders(graph, [rate])
        for op in graph.get_operations():
            if op.type == "AssignVariableOp" and op.inputs[0] is handle:
                value = before_views(op.inputs[1])
                if value.op.type == "Const":
                    constant = float(tf.get_static_value(value))
                    with tf.init_scope():  # (the rate held now, read eagerly)
                        held = float(rate.numpy())
                    # The rate it already holds, set again: a constant rate, meant as one.
                    # (Relative only: a frozen 1e-9 is not the 0 of a rate yet to warm up.)
                    same = np.isclose(constant, held, rtol=1e-6, atol=0.0)
                    return None if same else _finding(optimizer, constant, step)
    return None


def _only_tensors(arguments: Any) -> bool:
    """Whether a function was traced for tensors (and iterators, or None) only.

    A Python argument (``train_step(x, y, lr=0.01)``) traces the function anew for each value:
    a constant may be the argument's.
    """
    leaves = tf.nest.flatten(arguments, expand_composites=False)
    return all(leaf is None or isinstance(leaf, tf.TypeSpec) for leaf in leaves)


def _finding(optimizer: Any, value: float, step: int) -> Finding:
    name = type(_compat.inner_optimizer(optimizer)).__name__
    message = (
        f"The traced step sets {name}'s learning rate to a constant, {value:.3g}: a Python value "
        "assigned inside a tf.function (optimizer.learning_rate = current_lr) is read once, when "
        "the function is traced, and every call assigns that same value again, so the rate never "
        "follows the schedule the loop computes. Pass the rate in as a tensor argument "
        "(train_step(x, y, tf.constant(lr))), set it outside the tf.function, or give the "
        "optimizer a keras.optimizers.schedules.LearningRateSchedule."
    )
    return Finding("learning-rate-frozen-at-trace", message, step, details={"value": value})
