"""Columns the loss reads that are copies of one computation (`repeated-columns`).

Ordinal regression with K ranks trains K-1 sigmoid outputs on the targets ``[y > 0], ...,
[y > K-2]``, built in a loop. With the loop's index left out (``y > classes[1]`` in every pass,
Ordinal_Classifier#3; hunt30 b09), every column is the same: each output learns the same split,
the predicted rank is 0 or K-1, and the cross-entropy falls as if all were well (held-out rank
error 1.0 against 0.4). The same slip stacks K identical heads, scales or views.

Read from a traced loss's graph (`lossgraph.graph_findings`): a floating `tf.stack` or
`tf.concat` on the loss's way whose every piece was computed anew, alike op for op from the same
inputs and constants (`selfcancel.StructuralKeys`), from the step's data or variables. A tensor
repeated on purpose is repeated as itself (``tf.stack([y] * k)``, `tf.tile`, `tf.repeat`), not
computed again; random pieces (two augmented views, dropout) are each their own draw; integer
index pairs (``tf.stack([i, i], 1)`` for a diagonal) are not values the loss compares.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.diagnose import READS, value_ancestors
from gradguard.findings import Finding
from gradguard.selfcancel import StructuralKeys

__all__ = ["graph_repeated_columns"]

# Ops whose output depends only on their input's shape: zeros of y's shape are not y's data.
_DATA = frozenset({"Placeholder", *READS})  # (the step's inputs, its variables' reads)


def graph_repeated_columns(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`repeated-columns` for the first stack or concatenation among `ops` of computed copies."""
    joins = sorted((op for op in ops if op.type in ("Pack", "ConcatV2")), key=lambda op: op.name)
    joins = [op for op in joins if op.outputs[0].dtype.is_floating]
    keys = None
    for op in joins:
        pieces = list(op.inputs[:-1] if op.type == "ConcatV2" else op.inputs)
        if len(pieces) < 2 or len({piece.ref() for piece in pieces}) < len(pieces):
            continue  # (one tensor repeated as itself is meant)
        keys = keys or StructuralKeys(op.graph)
        if len({keys.of(piece) for piece in pieces}) == 1 and _carries_data(pieces[0]):
            return _finding(op, pieces, step)
    return None


def _carries_data(tensor: tf.Tensor) -> bool:
    """Whether `tensor`'s value comes from the step's inputs or variables, not constants only."""
    return any(op.type in _DATA for op in value_ancestors(tensor))


def _expression(tensor: tf.Tensor, depth: int = 3) -> str:
    """`tensor` as ops applied to ops (``Cast(Greater(y, StridedSlice(classes, ...)))``)."""
    op = tensor.op
    if op.type == "Placeholder":
        return op.name
    if op.type == "Const":
        value = tf.get_static_value(tensor)
        return str(value.tolist()) if value is not None and value.size == 1 else "const"
    if not op.inputs or depth == 0:
        return f"{op.type}(...)" if op.inputs else op.type
    return f"{op.type}({', '.join(_expression(t, depth - 1) for t in op.inputs)})"


def _finding(op: tf.Operation, pieces: list[tf.Tensor], step: int) -> Finding:
    how = "stacks" if op.type == "Pack" else "concatenates"
    message = (
        f"{op.name} ({op.type}) {how} {len(pieces)} copies of one computation, "
        f"{_expression(pieces[0])}: each is computed anew by the same ops from the same inputs "
        "and constants, so every piece of it is the same and the loss asks the same thing "
        f"{len(pieces)} times (ordinal targets [y > k] all built with one threshold: a loop that "
        "makes one column per index without using its index). Build each piece from its own "
        "index or parameter; to repeat one tensor on purpose, repeat it as itself "
        "(tf.stack([y] * k), tf.tile, tf.repeat)."
    )
    details = {"op": op.name, "copies": len(pieces), "piece": pieces[0].op.name}
    return Finding("repeated-columns", message, step, details=details)
