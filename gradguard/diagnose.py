"""Trace-time diagnosis: where the chain from a variable to the loss breaks, and silent broadcasts.

Both read a traced `FuncGraph` (TensorFlow's record of the computation) rather than running
anything, so they cost one trace, once, and only when a problem was already seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from gradguard.findings import Finding, Severity

__all__ = [
    "DISCARDED",
    "chain_breaks",
    "graph_breaks",
    "graph_double_softmax",
    "graph_loss_broadcast",
    "loss_broadcast",
    "model_breaks",
    "none_gradient_finding",
    "tape_breaks",
]

# Ops whose gradient function exists but returns None.
_NO_GRADIENT = {"Round", "Floor", "Ceil", "Rint"}
_FRIENDLY = {
    "PyFunc": "tf.numpy_function (a NumPy round trip)",
    "PyFuncStateless": "tf.numpy_function (a NumPy round trip)",
    "StopGradient": "tf.stop_gradient",
    "PreventGradient": "an op that prevents gradients",
    "ArgMax": "argmax",
    "ArgMin": "argmin",
    "Round": "round",
    "Floor": "floor",
    "Ceil": "ceil",
    "Rint": "rint",
}
NOT_USED = "not used in computing the loss"
NUMPY_CALL = ".numpy() or a NumPy conversion of a tensor (a NumPy round trip)"


def _breaks_chain(op: tf.Operation) -> bool:
    if op.type in _NO_GRADIENT:
        return True
    outputs = [t for t in op.outputs]
    if outputs and not any(t.dtype.is_floating or t.dtype.is_complex for t in outputs):
        return True  # integer or bool output: argmax, casts to int, comparisons
    try:
        return tf_ops.get_gradient_function(op) is None
    except LookupError:
        return True


def _describe(op: tf.Operation) -> str:
    if op.type == "Cast":
        return f"a cast to {op.outputs[0].dtype.name}"
    if op.type in ("Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"):
        return "a comparison (>, <, ==)"
    name = _FRIENDLY.get(op.type, f"{op.type}, which has no gradient")
    return f"{name} (op '{op.name}')"


def _ancestors(tensor: tf.Tensor) -> set[tf.Operation]:
    seen: set[tf.Operation] = set()
    stack = [tensor.op]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
    return seen


def _handle(variable: Any) -> Any:
    value = getattr(variable, "value", variable)  # a Keras Variable wraps a tf.Variable
    return getattr(value, "handle", None)


def chain_breaks(
    fn: Callable[..., tf.Tensor], args: Sequence[Any], variables: Sequence[Any]
) -> dict[int, str]:
    """Says, per variable, why the loss computed by `fn(*args)` has no gradient for it.

    Traces `fn` (the forward pass and loss) once and reads the graph with `graph_breaks`.

    Args:
      fn: Computes the scalar loss from `args`.
      args: Example arguments (tensors or arrays); only their shapes and dtypes matter.
      variables: The variables to explain.

    Returns:
      Index into `variables` -> a phrase naming the break (e.g. "tf.stop_gradient ...") or
      `NOT_USED`. A variable that reaches the loss without a break is absent.
    """
    try:
        concrete = tf.function(fn, autograph=False).get_concrete_function(*args)
    except (AttributeError, NotImplementedError, TypeError) as e:
        if "numpy" in str(e).lower():
            return dict.fromkeys(range(len(variables)), NUMPY_CALL)
        raise
    return graph_breaks(concrete.outputs[0], variables)


def tape_breaks(tape: Any, target: Any, variables: Sequence[Any]) -> dict[int, str]:
    """Why `tape.gradient(target, variables)` gave None for every one of `variables`.

    The forward pass ran outside the tape; else, inside a trace, the break `graph_breaks` finds
    on the graph; else (eagerly, no graph to read) the kinds of op that break a chain.
    """
    watched = {id(v) for v in tape.watched_variables()}
    handles = {id(getattr(v, "value", v)) for v in variables} | {id(v) for v in variables}
    if not watched & handles:
        cause = (
            "the tape, because the forward pass ran outside the `with tf.GradientTape()` "
            "block (nothing was recorded)"
        )
        return dict.fromkeys(range(len(variables)), cause)
    if isinstance(target, tf.Tensor) and hasattr(target, "graph") and tf.inside_function():
        return graph_breaks(target, variables)
    cause = (
        "an op without gradient (a .numpy() or NumPy round trip, a cast to an integer, "
        "argmax or round, or tf.stop_gradient)"
    )
    return dict.fromkeys(range(len(variables)), cause)


def graph_breaks(loss: tf.Tensor, variables: Sequence[Any]) -> dict[int, str]:
    """Like `chain_breaks`, for a symbolic `loss` already traced in a `FuncGraph`.

    Walks the graph from each variable towards the loss, naming the first op on the way that
    has no gradient.
    """
    graph = loss.graph
    on_path = _ancestors(loss)
    # Inside a function, a variable appears as a placeholder that captures its handle.
    placeholders = {id(ext): internal for ext, internal in getattr(graph, "captures", ())}
    causes: dict[int, str] = {}
    for index, variable in enumerate(variables):
        handle = _handle(variable)
        placeholder = placeholders.get(id(handle), handle)
        if placeholder is None or getattr(placeholder, "graph", None) is not graph:
            causes[index] = NOT_USED
            continue
        if placeholder.op not in on_path:
            causes[index] = NOT_USED
            continue
        # Breadth-first from the variable, so the break named is the one nearest to it.
        frontier, seen = [placeholder.op], {placeholder.op}
        while frontier:
            breaking = [op for op in frontier if op is not placeholder.op and _breaks_chain(op)]
            if breaking:
                causes[index] = _describe(breaking[0])
                break
            following = []
            for op in frontier:
                for out in op.outputs:
                    for consumer in out.consumers():
                        if consumer in on_path and consumer not in seen:
                            seen.add(consumer)
                            following.append(consumer)
            frontier = following
    return causes


DISCARDED = (
    "computed, but the result is discarded inside the model (a layer called whose output "
    "nothing uses: check call())"
)


def model_breaks(model: Any, spec: Any, variables: Sequence[Any]) -> dict[int, str]:
    """Says, per variable, why it cannot reach the model's outputs, from a trace of the model.

    Traces ``model(x, training=True)`` for inputs of `spec` (once; no data runs) and reads the
    graph from each variable to the outputs.

    Returns:
      Index into `variables` -> the break (an op without gradient) when every path to the
      outputs is cut, or `DISCARDED` when no path reaches them. A variable that reaches an
      output (its output unused by the loss, say) is absent.
    """
    concrete = tf.function(
        lambda x: model(x, training=True), autograph=False
    ).get_concrete_function(spec)
    outputs = [t for t in tf.nest.flatten(concrete.structured_outputs) if tf.is_tensor(t)]
    causes: dict[int, str] = {}
    for index in range(len(variables)):
        found = [graph_breaks(out, [variables[index]]).get(0) for out in outputs]
        if any(cause is None for cause in found):
            continue  # reaches an output
        cuts = [cause for cause in found if cause is not None and cause != NOT_USED]
        causes[index] = cuts[0] if cuts else DISCARDED
    return causes


def none_gradient_finding(
    variable_names: Sequence[str], none: Iterable[int], causes: dict[int, str], step: int
) -> Finding:
    """The `none-gradient` finding for the variables at indices `none`, grouped by cause."""
    none = sorted(none)
    by_cause: dict[str, list[str]] = {}
    for i in none:
        by_cause.setdefault(causes.get(i, "an unknown break"), []).append(variable_names[i])
    parts = []
    for cause, vars_ in by_cause.items():
        shown = ", ".join(vars_[:4]) + (f" and {len(vars_) - 4} more" if len(vars_) > 4 else "")
        if cause == NOT_USED:
            parts.append(
                f"{shown} {'is' if len(vars_) == 1 else 'are'} not used in computing the loss "
                "(a layer not called, an output the loss ignores, or work done outside the tape)"
            )
        elif cause == DISCARDED:
            parts.append(f"{shown} {'is' if len(vars_) == 1 else 'are'} {DISCARDED}")
        else:
            parts.append(f"the path from {shown} to the loss is cut by {cause}")
    every = len(none) == len(variable_names)
    head = "No trainable variable got a gradient" if every else "Some variables got no gradient"
    message = (
        f"{head}: {'; '.join(parts)}. Compute the loss from the model's output with "
        "differentiable TensorFlow ops inside the GradientTape."
    )
    return Finding(
        "none-gradient",
        message,
        step,
        tuple(variable_names[i] for i in none),
        Severity.ERROR if every else Severity.WARNING,
        details={"causes": {variable_names[i]: causes.get(i, "unknown") for i in none}},
    )


def _mutually_broadcast(a: tf.TensorShape, b: tf.TensorShape) -> bool:
    """True when each of two shapes is stretched along some axis by the other: (n,) vs (n, 1)."""
    if a.rank is None or b.rank is None or a.rank == 0 or b.rank == 0:
        return False
    rank = max(a.rank, b.rank)
    dims_a = [1] * (rank - a.rank) + list(a.as_list())
    dims_b = [1] * (rank - b.rank) + list(b.as_list())
    a_stretched = any(x == 1 and y != 1 for x, y in zip(dims_a, dims_b))
    b_stretched = any(y == 1 and x != 1 for x, y in zip(dims_a, dims_b))
    return a_stretched and b_stretched


def loss_broadcast(
    loss_fn: Callable[[Any, Any], Any], y_true: tf.TensorSpec, y_pred: tf.TensorSpec, step: int
) -> Finding | None:
    """Finds a loss that silently broadcasts `y_true` against `y_pred` (e.g. (32,) vs (32, 1)).

    Traces `loss_fn` alone and looks for an elementwise op whose two inputs stretch each other,
    the signature of comparing every label with every prediction. Keras loss objects align ranks
    first, so they are never flagged.
    """
    if y_true.shape == y_pred.shape:
        return None
    axis = _prediction_stretched(y_true.shape, y_pred.shape)
    if axis is not None:
        labels, outputs = y_true.shape[axis], y_pred.shape[axis]
        message = (
            f"y_true has shape {_shape(y_true.shape)} and y_pred {_shape(y_pred.shape)}: the "
            f"loss compares each of the model's {outputs} output(s) with {labels} labels "
            f"(broadcast along axis {axis}), so it cannot fit them; give the last layer "
            f"{labels} units, or pass labels of the output's shape."
        )
        details = {
            "y_true_shape": y_true.shape.as_list(),
            "y_pred_shape": y_pred.shape.as_list(),
            "axis": axis,
        }
        return Finding("loss-broadcast", message, step, details=details)
    # `loss_fn` is `losses.resolve`'s: AutoGraph has converted a user's function already.
    concrete = tf.function(loss_fn, autograph=False).get_concrete_function(y_true, y_pred)
    for op in concrete.graph.get_operations():
        inputs = [t for t in op.inputs if t.dtype.is_floating]
        if len(inputs) == 2 and _mutually_broadcast(inputs[0].shape, inputs[1].shape):
            shape = op.outputs[0].shape
            message = (
                f"y_true has shape {_shape(y_true.shape)} and y_pred {_shape(y_pred.shape)}: the "
                f"loss broadcasts them to {_shape(shape)}, comparing every label with every "
                "prediction, so the model cannot fit; reshape y_true to y_pred's shape "
                "(e.g. y[:, None]) or use a keras.losses object, which aligns them."
            )
            details = {
                "y_true_shape": y_true.shape.as_list(),
                "y_pred_shape": y_pred.shape.as_list(),
                "broadcast_shape": shape.as_list() if shape.rank is not None else None,
            }
            return Finding("loss-broadcast", message, step, details=details)
    return None


def _prediction_stretched(y_true: tf.TensorShape, y_pred: tf.TensorShape) -> int | None:
    """The axis where predictions of size 1 meet labels of a larger size, at equal ranks.

    (n, 1) predictions against (n, 3) labels: the output is too narrow for the labels. The
    other way round ((n, 1) class indices against (n, C) logits) is how sparse losses work.
    """
    if y_true.rank is None or y_true.rank != y_pred.rank or y_true.rank < 2:
        return None
    for axis in range(1, y_true.rank):
        labels, outputs = y_true[axis], y_pred[axis]
        if outputs == 1 and labels is not None and labels > 1:
            return axis
    return None


def _labels_against_predictions(a: tf.TensorShape, b: tf.TensorShape) -> bool:
    """True for shapes (n,) and (n, 1), in either order: labels against predictions."""
    if a.rank is None or b.rank is None or {a.rank, b.rank} != {1, 2}:
        return False
    flat, column = (a, b) if a.rank == 1 else (b, a)
    n, (m, one) = flat[0], column
    return one == 1 and (n is None or m is None or n == m) and n != 1


# Ops that apply softmax (or sigmoid) themselves to their `logits` input.
_WITH_LOGITS = {"SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"}
# Ops that pass a value through unchanged in kind (a probability stays one).
_PASSING = {"Identity", "Reshape", "Cast", "ExpandDims", "Squeeze", "Transpose", "Pack", "ConcatV2"}


def graph_double_softmax(loss: tf.Tensor, step: int) -> Finding | None:
    """`from-logits-mismatch`: a cross-entropy that applies softmax to a softmax's output.

    Read from a traced loss: a ``*SoftmaxCrossEntropyWithLogits`` op whose logits come from a
    ``Softmax`` (through reshapes or casts only). The predictions are squashed toward uniform
    and the loss cannot get near 0. Keras' own losses with ``from_logits=True`` on a model
    ending in its softmax take the logits instead, and are not flagged.
    """
    for op in _ancestors(loss):
        if op.type not in _WITH_LOGITS:
            continue
        source = op.inputs[0].op
        while source.type in _PASSING and source.inputs:
            source = source.inputs[0].op
        if source.type == "Softmax":
            message = (
                f"The loss applies softmax to the output of a softmax ({source.name} feeds "
                f"{op.type}): the predictions are squashed toward uniform and the loss cannot "
                "get near 0. Give the model a plain Dense output (logits) for a loss with "
                "logits, or use a loss on probabilities (from_logits=False)."
            )
            details = {"softmax": source.name, "loss_op": op.name}
            return Finding("from-logits-mismatch", message, step, details=details)
    return None


def graph_loss_broadcast(loss: tf.Tensor, step: int) -> Finding | None:
    """`loss-broadcast` from a traced loss: an elementwise op on (n,) and (n, 1) inputs.

    For code gradguard did not write (the guard, `gradguard run`), where only the loss tensor
    is seen. Only this exact pattern is reported: pairwise terms written on purpose
    (``x[:, None] - x[None, :]``) have two rank-2 inputs.
    """
    for op in _ancestors(loss):
        inputs = [t for t in op.inputs if t.dtype.is_floating]
        if len(inputs) != 2 or len(op.outputs) != 1:
            continue
        a, b = inputs[0].shape, inputs[1].shape
        if _labels_against_predictions(a, b):
            shape = op.outputs[0].shape
            flat, column = (a, b) if a.rank == 1 else (b, a)
            message = (
                f"An op in the loss ({op.type}) combines shapes {_shape(flat)} and "
                f"{_shape(column)} into {_shape(shape)}, comparing every label with every "
                "prediction, so the model cannot fit; reshape the labels to the predictions' "
                "shape (e.g. y[:, None]) or use a keras.losses object, which aligns them."
            )
            details = {"shapes": [flat.as_list(), column.as_list()], "op": op.name}
            return Finding("loss-broadcast", message, step, details=details)
    return None


def _shape(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "(?)"
    dims = ["None" if d is None else str(d) for d in shape.as_list()]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def no_trainable_variables(model: Any, keras_error: BaseException | None = None) -> ValueError:
    """The error for a model with nothing to train, with Keras' own error if it failed first."""
    cause = ""
    if keras_error is not None:
        first = str(keras_error).splitlines()[0] if str(keras_error) else ""
        cause = (
            ", so there is nothing to differentiate or apply (Keras failed with: "
            f"{first or type(keras_error).__name__})"
        )
    return ValueError(
        f"model {getattr(model, 'name', '')!r} has no trainable variables{cause}: every layer "
        "is frozen (trainable=False) or the model has no weights. Unfreeze the layers to train, "
        "e.g. model.layers[-1].trainable = True."
    )
