"""Trace-time diagnosis: where the chain from a variable to the loss breaks.

It reads a traced `FuncGraph` (TensorFlow's record of the computation) rather than running
anything, so it costs one trace, once, and only when a problem was already seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.findings import Finding, Severity

__all__ = [
    "DISCARDED",
    "SOFTMAX_CROSS_ENTROPY",
    "ancestors",
    "chain_breaks",
    "descendants",
    "graph_breaks",
    "is_data",
    "model_breaks",
    "none_gradient_finding",
    "reads_variables",
    "scalar_constant",
    "shape_text",
    "tape_breaks",
    "unwatched_tensor_finding",
    "variable_placeholders",
]

# Ops that apply softmax themselves to their `logits` input: a cross-entropy in one op.
SOFTMAX_CROSS_ENTROPY = frozenset(
    {"SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"}
)
COMPARISONS = frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual"})
# Where a step's data enters its graph: a traced function's arguments (a variable's handle is a
# placeholder too: its dtype is resource), or fit's iterator.
DATA_SOURCES = frozenset(
    {"Placeholder", "IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue"}
)

READS = frozenset({"ReadVariableOp", "ResourceGather"})  # ops that read a variable's value
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
        return _compat.gradient_function(op) is None
    except LookupError:
        return True


def _describe(op: tf.Operation) -> str:
    if op.type == "Cast":
        return f"a cast to {op.outputs[0].dtype.name}"
    if op.type in COMPARISONS:
        return "a comparison (>, <, ==)"
    name = _FRIENDLY.get(op.type, f"{op.type}, which has no gradient")
    return f"{name} (op '{op.name}')"


def hinge_argument(op: tf.Operation) -> tf.Tensor | None:
    """What a hinge ``max(x, 0)`` takes: a ``Relu``'s input, or a ``Maximum``'s other operand.

    None for any other op, and for a ``Maximum`` with no constant 0 or two (``max(0, 0)``).
    """
    if op.type == "Relu":
        return op.inputs[0]
    if op.type != "Maximum":
        return None
    zeros = [scalar_constant(t) == 0 for t in op.inputs]
    return op.inputs[zeros.index(False)] if sum(zeros) == 1 else None


def scalar_constant(tensor: tf.Tensor) -> float | None:
    """The value of `tensor` when it is one number known when traced, else None."""
    value = tf.get_static_value(tensor)
    return float(value.item()) if value is not None and value.size == 1 else None


def ancestors(tensor: tf.Tensor) -> set[tf.Operation]:
    """The ops `tensor` is computed from (its own op included)."""
    return _reachable(tensor.op, lambda op: (t.op for t in op.inputs))


VIEWS = frozenset({"Identity", "Cast", "Reshape", "Squeeze", "ExpandDims"})  # values kept


def before_views(tensor: tf.Tensor, views: frozenset[str] = VIEWS) -> tf.Tensor:
    """`tensor` before the views and casts it went through (`VIEWS`, or the op types given)."""
    while tensor.op.type in views:
        tensor = tensor.op.inputs[0]
    return tensor


def reads_variables(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is computed from a variable (the model's output, not data)."""
    return any(op.type == "ReadVariableOp" for op in ancestors(tensor))


def is_data(tensor: tf.Tensor) -> bool:
    """Whether `tensor`'s values come from the step's inputs (labels, actions), not variables.

    Values only (`value_ancestors`): labels reshaped to the predictions' shape are data, zeros
    shaped like the labels are not. Constants alone are not data either: a ``tf.ones`` of
    labels made in the step is the same on every step.
    """
    made = value_ancestors(tensor)
    return not any(op.type in READS for op in made) and any(
        op.type in DATA_SOURCES and op.outputs[0].dtype != tf.resource for op in made
    )


def reduces_all(op: tf.Operation) -> bool | None:
    """Whether a ``Mean``/``Sum`` reduces every axis (None when its axes are not known).

    ``tf.reduce_mean(y - y_pred)`` reduces them all; a mean over one axis (axis 0 may be time,
    or the features' moments) is a design.
    """
    axes, rank = tf.get_static_value(op.inputs[1]), op.inputs[0].shape.rank
    if axes is None or rank is None:
        return None
    return rank > 0 and {int(a) % rank for a in np.atleast_1d(axes)} == set(range(rank))


SHAPE_ONLY = frozenset({"Shape", "ShapeN", "Size", "Rank", "ZerosLike", "OnesLike"})  # (no values)


def value_ancestors(tensor: tf.Tensor) -> set[tf.Operation]:
    """The ops `tensor`'s values come from: not through `SHAPE_ONLY` ops (a reshape's shape)."""
    return _reachable(
        tensor.op, lambda op: [] if op.type in SHAPE_ONLY else (t.op for t in op.inputs)
    )


def descendants(tensor: tf.Tensor) -> set[tf.Operation]:
    """The ops computed from `tensor` (its own op included)."""
    return _reachable(tensor.op, lambda op: (c for t in op.outputs for c in t.consumers()))


def _reachable(
    start: tf.Operation, neighbours: Callable[[tf.Operation], Iterable[tf.Operation]]
) -> set[tf.Operation]:
    seen: set[tf.Operation] = set()
    stack = [start]
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(neighbours(op))
    return seen


def _handle(variable: Any) -> Any:
    value = getattr(variable, "value", variable)  # a Keras Variable wraps a tf.Variable
    return getattr(value, "handle", None)


def variable_placeholders(graph: Any, variables: Sequence[Any]) -> list[Any]:
    """Per variable, what stands for it inside `graph`: the placeholder capturing its handle.

    A variable the graph does not capture gets its own handle (or None): not of `graph`.
    """
    placeholders = {id(ext): internal for ext, internal in getattr(graph, "captures", ())}
    return [placeholders.get(id(handle), handle) for handle in map(_handle, variables)]


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
    on_path = ancestors(loss)
    causes: dict[int, str] = {}
    for index, placeholder in enumerate(variable_placeholders(graph, variables)):
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


def partly_none(
    loss: Any,
    variables: Sequence[Any],
    without: Sequence[Any],
    names: Callable[[list[Any]], list[str]],
    step: int,
) -> list[Finding]:
    """`none-gradient` for None gradients (`without`) given an optimizer, where a break is known.

    A variable that is simply not used by the loss (an output head trained elsewhere or not
    at all) is not reported: the optimizer skips it, and so does gradguard.
    """
    if loss is None or not tf.inside_function() or not hasattr(loss, "graph"):
        return []
    positions = [i for i, v in enumerate(variables) if any(v is w for w in without)]
    found = graph_breaks(loss, [variables[i] for i in positions])
    causes = {positions[j]: cause for j, cause in found.items()}
    cut = [i for i, cause in causes.items() if cause != NOT_USED]
    return [none_gradient_finding(names(list(variables)), cut, causes, step)] if cut else []


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


def shape_text(shape: tf.TensorShape) -> str:
    """A shape as users write it: ``(32, 1)``, ``(None,)``."""
    if shape.rank is None:
        return "(?)"
    dims = ["None" if d is None else str(d) for d in shape.as_list()]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def unwatched_tensor_finding(tensors: Sequence[Any], step: int) -> Finding:
    """`none-gradient` for tensors (not variables) whose gradient `tape.gradient` gave as None."""
    shapes = ", ".join(shape_text(tf.TensorShape(getattr(t, "shape", None))) for t in tensors[:3])
    message = (
        f"tape.gradient returned None for {len(tensors)} source(s) that are tensors, not "
        f"variables (shape {shapes}): a GradientTape records only variables and the tensors "
        "it is told to watch. A weight rebound to a tensor (W = W - lr * dW) is no longer a "
        "variable: update it in place (W.assign_sub(lr * dW)); for an input, call "
        "tape.watch(x) inside the tape."
    )
    return Finding("none-gradient", message, step, severity=Severity.WARNING)


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
