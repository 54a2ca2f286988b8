"""A loss term that subtracts or divides out its own copy (`term-cancels-itself`).

PPO's ratio ``exp(log_p - log_p_old)`` needs the log-probabilities of the policy that sampled
the actions; computed again from the current actor inside the tape (``log_p_old =
log_prob(actor(states), actions)``), it is ``exp(log_p - log_p)``: exactly 1, whose gradient is
exactly 0, so the clipped surrogate teaches the policy nothing while the critic and the entropy
bonus still train and the loss looks alive (tensorforce#312, trl#2769; hunt29 b06: greedy
accuracy 0.13 against 1.00 with the stored log-probabilities). A KL divergence to an "old"
policy recomputed the same way, or a consistency loss between two identical forward passes,
is the same mistake: always 0.

Read from a traced loss's graph (`lossgraph.graph_findings`): a difference or a quotient whose
two sides read variables and are computed alike, op for op, from the same inputs, variables and
constants (two calls of one model on one batch). A random op (dropout, noise) makes each side
its own, and so does `tf.stop_gradient` on one side: the right way to hold one fixed.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.diagnose import reads_variables
from gradguard.findings import Finding

__all__ = ["StructuralKeys", "graph_term_cancels_itself"]

_CANCELLING = {"Sub": "0", "RealDiv": "1", "Div": "1", "DivNoNan": "1"}
_WRITES = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}


def graph_term_cancels_itself(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`term-cancels-itself` for the first difference or quotient among `ops` of two copies."""
    candidates = sorted((op for op in ops if op.type in _CANCELLING), key=lambda op: op.name)
    candidates = [op for op in candidates if op.inputs[0] is not op.inputs[1]]
    if not candidates:
        return None
    keys = StructuralKeys(candidates[0].graph)
    for op in candidates:
        left, right = op.inputs[0], op.inputs[1]
        floating = op.outputs[0].dtype.is_floating
        if floating and keys.of(left) == keys.of(right) and reads_variables(left):
            return _finding(op, step)
    return None


class StructuralKeys:
    """Equal keys for tensors computed alike, op for op, from the same sources (interned)."""

    def __init__(self, graph: tf.Graph) -> None:
        # Variables the step writes (a seed generator's state, advanced by each dropout draw):
        # two reads of one may differ, and are each their own.
        self._written = {
            op.inputs[0].op for op in graph.get_operations() if op.type in _WRITES and op.inputs
        }
        self._interned: dict[tuple[object, ...], int] = {}
        self._keys: dict[object, int] = {}  # (by `tensor.ref()`)

    def of(self, tensor: tf.Tensor) -> int:
        stack = [tensor]
        while stack:  # (iterative: a deep model's graph would exceed Python's recursion)
            top = stack[-1]
            if top.ref() in self._keys:
                stack.pop()
                continue
            pending = [t for t in top.op.inputs if t.ref() not in self._keys]
            if pending and not self._source(top.op):
                stack.extend(pending)
                continue
            stack.pop()
            described = self._describe(top)
            self._keys[top.ref()] = self._interned.setdefault(described, len(self._interned))
        return self._keys[tensor.ref()]

    def _describe(self, tensor: tf.Tensor) -> tuple[object, ...]:
        op = tensor.op
        if self._source(op):
            return ("source", id(op), tensor.value_index)  # (itself: equal only to itself)
        attrs = tuple(
            (name, value.SerializeToString())
            for name, value in sorted(op.node_def.attr.items())
            if not name.startswith("_")
        )
        inputs = tuple(self._keys[t.ref()] for t in op.inputs)
        return (op.type, attrs, tensor.value_index, inputs)

    def _source(self, op: tf.Operation) -> bool:
        """An op no copy equals but itself: an input, a stateful op (a random draw), a stop.

        A read of a variable the step does not write equals another read of it; constants are
        keyed by their value (serialized in their attributes).
        """
        if op.type == "ReadVariableOp":
            return op.inputs[0].op in self._written
        if op.type == "Const":
            return False
        return not op.inputs or op.op_def.is_stateful or op.type == "StopGradient"


def _finding(op: tf.Operation, step: int) -> Finding:
    value = _CANCELLING[op.type]
    kind = "difference" if value == "0" else "quotient"
    message = (
        f"{op.name} ({op.type}) is the {kind} of two copies of one computation: the same ops on "
        f"the same inputs and variables, so it is always {value} and its gradient is always 0; "
        "the loss term built on it teaches the model nothing (PPO's ratio with the 'old' "
        "log-probabilities recomputed from the current policy inside the tape: "
        "exp(log_p - log_p) = 1). Use the values stored when the data was made (the "
        "log-probabilities of the rollout), or hold one side fixed with tf.stop_gradient."
    )
    return Finding("term-cancels-itself", message, step, details={"op": op.name})
