"""A variable or log-scale the loss falls with for ever: no minimum (`loss-has-no-minimum`).

Learned uncertainty weights (Kendall et al.) minimize ``exp(-s) * task_loss + s``: the first
term falls as ``s`` grows, the second rises, and they meet at the task's noise level. Without
the ``+ s`` ("the loss went negative, so I removed it": yaringal/multi-task-learning-example#6)
every step raises ``s``, every task's weight ``exp(-s)`` falls toward 0, and the network stops
learning while the reported loss falls to near 0, which looks like success (hunt29 b07:
held-out R^2 0.50 and 0.73 against 0.99 and 0.95). A loss weight trained as ``w * task_loss``
with nothing holding it is the same mistake: ``w`` runs to minus infinity.

A log-scale ``s`` the model computes meets the same fate when it scales values by ``exp(s)``
and is also added to the loss with the sign that rewards shrinking it: as ``exp(s)`` goes to 0
the scaled values stay finite and the added term falls for ever. That is a flow's
log-determinant with the wrong sign, ``-log N(z) + sum(s)`` for ``z = x * exp(s) + t``
(ikostrikov/pytorch-flows#16; hunt30 b03: held-out NLL 13.8 nats against 1.85), or a
Gaussian's log-variance subtracted (`_log_scale_unbounded`).

Read from a traced loss (`lossgraph.graph_findings`), once per trace: a variable this update
trains whose every read reaches the loss through ops that move strictly with it (sums, means,
exp, log, a minus) and products with factors that are positive (an error squared, a
cross-entropy), all in one direction (`lossdirection.to_loss`, strict). Silent: the ``+ s``
term (a path the other way); a variable read by a layer (a product with the inputs, a
softmax); a factor of unknown sign (SAC's temperature times the entropy's error) or one that
is 0 by design (a Lagrange multiplier times its constraint's ReLU, still once it holds); a
variable with a Keras constraint, which bounds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from gradguard.diagnose import READS, reads_variables, variable_placeholders
from gradguard.findings import Finding
from gradguard.lossdirection import UNKNOWN, constant_sign, to_loss

__all__ = ["graph_loss_has_no_minimum"]


def graph_loss_has_no_minimum(
    loss: tf.Tensor, ops: set[tf.Operation], variables: Sequence[Any], step: int
) -> Finding | None:
    """`loss-has-no-minimum` for the first of `variables` the loss falls with for ever."""
    placeholders = variable_placeholders(loss.graph, list(variables))
    for variable, placeholder in zip(variables, placeholders):
        if getattr(placeholder, "graph", None) is not loss.graph:
            continue
        if getattr(variable, "constraint", None) is not None:
            continue  # (bounded by it after every update)
        reads = [op for op in placeholder.consumers() if op.type in READS and op in ops]
        start = (1, False, False)  # (the direction of the variable itself)
        directions = {
            path[0]
            for read in reads
            for path in to_loss(read.outputs[0], start, loss, ops, _no_labels, strict=True)
        }
        if len(directions) == 1 and UNKNOWN not in directions:
            return _finding(variable, directions.pop(), step)
    return _log_scale_unbounded(loss, ops, step)


def _log_scale_unbounded(loss: tf.Tensor, ops: set[tf.Operation], step: int) -> Finding | None:
    """A log-scale ``s`` the model computes, whose log-determinant term has the wrong sign.

    ``s`` scales values by ``exp(k * s)`` (a flow's ``x * exp(s)``, a Gaussian's error over
    ``exp(log_var)``) and is also added to the loss directly, with direction ``c``. As
    ``exp(k * s)`` goes to 0 the scaled paths stay finite (no log or division after them), so
    when ``c`` has the sign of ``k`` the direct term falls without limit: the log-determinant
    (or the log-variance) enters with the wrong sign.
    """
    scales: dict[Any, tuple[tf.Tensor, set[int], set[tf.Operation]]] = {}
    for exp in sorted((op for op in ops if op.type == "Exp"), key=lambda op: op.name):
        base, sign, entry = _exponent(exp, ops)
        _, effects, entries = scales.setdefault(base.ref(), (base, set(), set()))
        entries.add(entry)
        for consumer in (c for c in exp.outputs[0].consumers() if c in ops):
            effects.add(_effect(consumer, exp.outputs[0], sign, ops))
    for base, effects, entries in scales.values():
        if len(effects) != 1 or UNKNOWN in effects or not reads_variables(base):
            continue
        avoid = frozenset(entries)
        paths = to_loss(base, (1, False, False), loss, ops, _no_labels, strict=True, avoid=avoid)
        (effect,) = effects
        if {path[0] for path in paths} == {effect}:
            return _log_scale_finding(base, effect, step)
    return None


_DIVISIONS = ("RealDiv", "DivNoNan", "Div")
# Ops that may be unbounded where their input goes to 0: after them a scale's paths are not
# known to stay finite.
_UNSAFE = {"Log", "Reciprocal", "Rsqrt", "Xlogy", "Xlog1py", "Lgamma", "Digamma", "Pow"}


def _exponent(exp: tf.Operation, ops: set[tf.Operation]) -> tuple[tf.Tensor, int, tf.Operation]:
    """(s, the sign of k, the op that starts the path) of ``exp(k * s)``.

    A minus or a constant factor is peeled off while only this exponential reads it.
    """
    tensor, sign, entry = exp.inputs[0], 1, exp
    while sum(c in ops for c in tensor.consumers()) == 1:
        op = tensor.op
        if op.type == "Neg":
            factor, rest = -1, op.inputs[0]
        elif op.type == "Mul" and constant_sign(op.inputs[0]) != UNKNOWN:
            factor, rest = constant_sign(op.inputs[0]), op.inputs[1]
        elif op.type == "Mul" and constant_sign(op.inputs[1]) != UNKNOWN:
            factor, rest = constant_sign(op.inputs[1]), op.inputs[0]
        else:
            break
        sign, entry, tensor = sign * factor, op, rest
    return tensor, sign, entry


def _effect(consumer: tf.Operation, scaled: tf.Tensor, sign: int, ops: set[tf.Operation]) -> int:
    """The sign of k in the ``exp(k * s)`` that `consumer` makes of `scaled` (``exp(sign * s)``).

    Dividing by it, or its reciprocal, turns k; `UNKNOWN` where what follows may not stay finite
    as the scale goes to 0.
    """
    places = [i for i, t in enumerate(consumer.inputs) if t is scaled]
    turns = consumer.type == "Reciprocal" or (consumer.type in _DIVISIONS and places == [1])
    if (_unsafe(consumer, places) and not turns) or not all(
        _finite_near_zero(t, ops) for t in consumer.outputs
    ):
        return UNKNOWN
    return -sign if turns else sign


def _unsafe(op: tf.Operation, places: list[int]) -> bool:
    """Whether `op` may be unbounded where its inputs at `places` go to 0."""
    if op.type == "Pow":  # (a positive constant power, ``z ** 2``, stays finite)
        return 1 in places or constant_sign(op.inputs[1]) != 1
    return op.type in _UNSAFE or (op.type in _DIVISIONS and 1 in places)


def _finite_near_zero(tensor: tf.Tensor, ops: set[tf.Operation]) -> bool:
    """Whether every op between `tensor` and the loss stays finite as `tensor` goes to 0."""
    stack, seen = [tensor], set()
    while stack:
        value = stack.pop()
        for consumer in value.consumers():
            if consumer not in ops or consumer in seen:
                continue
            seen.add(consumer)
            places = [i for i, t in enumerate(consumer.inputs) if t is value]
            if _unsafe(consumer, places):
                return False
            stack += consumer.outputs
    return True


def _log_scale_finding(scale: tf.Tensor, effect: int, step: int) -> Finding:
    way, k = ("shrinks", "") if effect == 1 else ("grows", "-")
    message = (
        f"The loss falls without limit as the log-scale s made by {scale.op.name} {way}: s "
        f"scales values by exp({k}s) and is also added to the loss with the sign that rewards "
        f"this, so as exp({k}s) goes to 0 the scaled terms stay finite while the added one "
        "falls for ever; the model drives s as far as it can go (to its bound, or without end) "
        "instead of fitting the data. The log-determinant (or log-variance) term has the wrong "
        "sign: a flow's negative log-likelihood is -log N(z) - sum(s) for z = x * exp(s); a "
        "Gaussian's is 0.5 * e**2 * exp(-s) + 0.5 * s for s = log(variance)."
    )
    details = {"scale": scale.op.name, "direction": way}
    return Finding("loss-has-no-minimum", message, step, details=details)


def _no_labels(tensor: tf.Tensor) -> bool:
    return False  # (a strict walk takes no labels)


def _finding(variable: Any, direction: int, step: int) -> Finding:
    name = getattr(variable, "path", None) or variable.name
    way, to = ("grows", "up") if direction == -1 else ("shrinks", "down")
    message = (
        f"The loss falls without limit as {name} {way}: it reaches the loss only through sums, "
        f"exp or log and positive factors (an error squared), each lowering the loss as it "
        f"{way}, so the loss has no minimum in it. The optimizer drives it {to} for ever, and "
        "whatever it weights toward 0, while the loss falls and "
        "looks like success (learned uncertainty weights exp(-s) * loss without their + s "
        "term, or a loss weight trained as w * loss). Add the term that bounds it "
        "(exp(-s) * loss + s), give it a constraint, or do not train it."
    )
    details = {"variable": name, "direction": way}
    return Finding("loss-has-no-minimum", message, step, variables=(name,), details=details)
