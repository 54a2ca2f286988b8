"""A layer computing with a constant copy of a trained variable (`weights-copied-as-constant`).

A tensor computed from a variable eagerly (in `build`, in ``__init__``, before the step is
traced) is a copy of the variable's value at that moment, not a view of it:
``self.kernel_t = tf.transpose(self.encoder.kernel)`` in a tied-weights decoder's `build` gives
the decoder its encoder's first kernel forever. The step captures the copy as a constant;
training moves the variable (the encoder reads it and gets gradients) and never the copy, so
the decoder stays a random projection (hunt22: an autoencoder's test MSE 0.85 against 0.002
with the transpose taken in `call`). Every variable still gets a gradient and moves.

Read from the traced loss of a gradient (`lossgraph.graph_findings`), as the step is traced:
a float constant of the step (an eager tensor it captured, or a NumPy array) of `MIN_SIZE` or
more values, most of them different (drawn, as weights are; not zeros or ones), multiplied as
weights are (a matrix product, a convolution, an einsum, through transposes and reshapes) into
what a variable computed, that holds exactly the values of a variable the gradient is taken
of, read at that trace (before the first update: the copy is still equal). A constant
compared with its variable (a penalty toward the starting weights, L2-SP) is not used as
weights; a frozen copy of a model that multiplies the data (a reference kept on purpose:
learning without forgetting's old model) computes from no variable; and constants of other
values (positional encodings, fixed filters) are not copies: silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.diagnose import VIEWS, reads_variables
from gradguard.findings import Finding

__all__ = ["MIN_SIZE", "graph_weights_copied"]

MIN_SIZE = 16  # values in a copy: a few scalars equal by chance are not a layer's weights
_VIEWS = VIEWS | {"Transpose"}  # (a copy transposed is still the variable's values)
_AS_WEIGHTS = frozenset(
    {
        "MatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
        "Einsum",
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "Conv2DBackpropInput",
    }
)


def graph_weights_copied(
    loss: tf.Tensor, ops: set[tf.Operation], variables: Iterable[Any], step: int
) -> Finding | None:
    """`weights-copied-as-constant` for a captured copy of one of `variables` used as weights.

    `ops` are those `loss` is computed from; `variables`, those its gradient is taken of.
    """
    by_size: dict[int, list[Any]] = {}
    for variable in variables:
        by_size.setdefault(int(np.prod(variable.shape)), []).append(variable)
    captured = {
        id(inside): outside
        for outside, inside in getattr(loss.graph, "captures", ())
        if isinstance(outside, tf.Tensor) and not tf.is_symbolic_tensor(outside)
    }  # (eager tensors only: a nested function captures its outer graph's tensors too)
    for op in ops:
        if op.type not in ("Const", "Placeholder"):
            continue
        tensor = op.outputs[0]
        size = tensor.shape.num_elements() or 0
        if size < MIN_SIZE or size not in by_size or not tensor.dtype.is_floating:
            continue  # (sizes first: the graph walks below only for a variable's size)
        value = captured.get(id(tensor))  # (an eager tensor the step captured)
        value = tf.get_static_value(tensor) if value is None else np.asarray(value)
        if value is None or not _used_as_weights(tensor):
            continue
        value = np.sort(np.asarray(value).ravel())
        # (drawn weights differ from each other; zeros or ones equal a variable by chance)
        if np.count_nonzero(np.diff(value)) < value.size // 2:
            continue
        for variable in by_size[size]:
            with _compat.outside_trace():
                held = np.sort(np.asarray(variable.numpy()).ravel())
            if value.dtype == held.dtype and np.array_equal(value, held):
                return _finding(variable, tensor, step)
    return None


def _used_as_weights(tensor: tf.Tensor) -> bool:
    """Whether `tensor` (through views) multiplies what a variable computed, as weights do.

    A frozen model's copy multiplies data, or other copies (a reference kept on purpose).
    """
    stack, seen = [tensor], set[tf.Operation]()
    while stack:
        current = stack.pop()
        for consumer in current.consumers():
            if consumer in seen:
                continue
            seen.add(consumer)
            others = [t for t in consumer.inputs if t is not current]
            if consumer.type in _AS_WEIGHTS and any(reads_variables(t) for t in others):
                return True
            if consumer.type in _VIEWS:
                stack += consumer.outputs
    return False


def _finding(variable: Any, inside: tf.Tensor, step: int) -> Finding:
    name = str(getattr(variable, "path", None) or variable.name)  # (Keras' path: layer/kernel)
    used = next((c.name for c in inside.consumers()), inside.op.name)
    message = (
        f"The step multiplies by a constant copy of the variable {name!r} ({used}): a tensor "
        "computed from it eagerly (in a layer's build or __init__, or before the step was "
        "traced) holds its value at that moment, not a view of it. Training moves the variable "
        "and never the copy, so the layer that uses it computes with its first weights for "
        "ever. Compute it from the variable where it is used, in call(): "
        "tf.transpose(self.dense.kernel) inside call, not stored in build."
    )
    details = {"variable": name, "shape": [int(d) for d in variable.shape]}
    return Finding("weights-copied-as-constant", message, step, details=details)
