"""An attention mask that keeps the padding and hides every real token (`attention-mask-inverted`).

Two conventions meet here. Keras' `MultiHeadAttention` (and `keras.layers.Softmax`) keeps the
positions where ``attention_mask`` is 1 (True); TensorFlow's transformer tutorial builds a
padding mask that is 1 at the padding and adds ``mask * -1e9`` to the scores. A tutorial
mask passed to Keras (or a Keras mask added the tutorial's way) makes every query attend to
the padding only: the layer's output carries no token, and a classifier reading it stays near
chance (accuracy 0.56 against 1.0 with ``tf.math.not_equal(tokens, 0)``). Nothing fails.

Read from a traced graph (`lossgraph.graph_findings`; `TrainStep` from its traced
predictions): a softmax whose scores are masked by a large negative value (``where(keep,
scores, -big)``, or ``scores + mask * -big``) where the positions kept are, through casts,
reshapes, slices and ``1 - mask``, those at which the step's token ids (data an embedding
reads) are 0; a mask combined with others by a logical and keeps no more than each. Masks of
padding compared with another id, masks kept where the tokens are not 0, an input that is
itself a padding mask (read by no embedding) kept where it is 0, ids of a table of two rows
(BERT's segment ids), a mask that also keeps only tokens that are not 0 (a segment's 0s
restricting it), and masks built from variables stay silent.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.diagnose import DATA_SOURCES, scalar_constant
from gradguard.findings import Finding

__all__ = ["graph_attention_keeps_padding"]

# Ops that pass a mask on, position for position (broadcast, sliced, cast to bool or 0/1).
_VIEWS = frozenset(
    {"Identity", "Cast", "ExpandDims", "Reshape", "Squeeze", "StridedSlice", "Tile", "BroadcastTo"}
)
_LARGE_NEGATIVE = -1e4  # a score this low is a masked one (Keras: -1e9, or the dtype's least)


def graph_attention_keeps_padding(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`attention-mask-inverted` for the first masked softmax that keeps only data's 0s."""
    ops = list(ops)
    tokens = _embedded(ops)
    for op in sorted((op for op in ops if op.type == "Softmax"), key=lambda op: op.name):
        masks = _masks(op.inputs[0].op)
        if not tokens or not any(_keeps_zeros(mask, keep, tokens) for mask, keep in masks):
            continue
        scope = op.name.rpartition("/")[0]
        message = (
            f"The attention softmax{f' in {scope}' if scope else ''} keeps only the positions "
            "where the input tokens are 0 (the padding) and masks every real token: its mask "
            "is inverted. Keras' MultiHeadAttention and keras.layers.Softmax keep the positions "
            "where attention_mask is 1 (True); TensorFlow's transformer tutorial's padding mask "
            "(1 at the padding) is added to the scores as mask * -1e9 instead. Pass "
            "tf.math.not_equal(tokens, 0) as attention_mask."
        )
        return Finding("attention-mask-inverted", message, step, details={"op": op.name})
    return None


def _masks(op: tf.Operation) -> list[tuple[tf.Tensor, bool]]:
    """The masks applied to softmax scores made by `op`, each with whether true means kept."""
    if op.type == "SelectV2":
        condition, kept, other = op.inputs
        if _large_negative(other):
            return [(condition, True)]
        if _large_negative(kept):
            return [(condition, False)]
    if op.type in ("AddV2", "Add", "Sub"):
        adders = op.inputs[1:] if op.type == "Sub" else op.inputs
        negative = op.type != "Sub"  # (scores - mask * big: the same as adding -big)
        return [
            (term.op.inputs[1 - i], False)
            for term in adders
            if term.op.type == "Mul"
            for i in (0, 1)
            if _large(term.op.inputs[i], negative)
        ]
    return []


def _keeps_zeros(mask: tf.Tensor, keep: bool, tokens: set[int]) -> bool:
    """Whether `mask` (true, or 1, meaning `keep`) keeps only where the step's `tokens` are 0."""
    op = mask.op
    while True:
        if op.type in _VIEWS or (
            op.type == "Greater" and scalar_constant(op.inputs[1]) in (0, 0.5)
        ):
            op = op.inputs[0].op
        elif op.type == "LogicalNot" or (op.type == "Sub" and scalar_constant(op.inputs[0]) == 1):
            keep, op = not keep, op.inputs[-1].op
        else:
            break
    if keep and op.type in ("LogicalAnd", "Mul"):  # kept only where every factor keeps
        # (a factor keeping the tokens that are not 0 leaves the padding out: another factor
        # keeping 0s of other ids restricts the attention, as to a segment)
        if any(_keeps_zeros(t, not keep, tokens) for t in op.inputs):
            return False
        return any(_keeps_zeros(t, keep, tokens) for t in op.inputs)
    if op.type not in ("Equal", "NotEqual") or (op.type == "Equal") != keep:
        return False
    data = [t for t in op.inputs if scalar_constant(t) is None]
    zero = any(scalar_constant(t) == 0 for t in op.inputs)
    return len(data) == 1 and zero and id(_source(data[0])) in tokens


def _embedded(ops: list[tf.Operation]) -> set[int]:
    """Ids of the step's data tensors that a lookup reads as indices (token ids, embedded).

    A padding mask of tokens compares the ids an embedding reads; an input that is itself a
    mask (1 at the padding, 0 elsewhere) is read by no lookup, and kept where it is 0 rightly.
    """
    lookups = [
        op.inputs[1]
        for op in ops
        if op.type in ("GatherV2", "ResourceGather") and _vocabulary(op) not in (1, 2)
    ]
    return {id(source) for source in map(_source, lookups) if source is not None}


def _vocabulary(lookup: tf.Operation) -> int | None:
    """How many rows a lookup's table holds, when known: 2 for segment ids (BERT's types)."""
    shape = lookup.inputs[0].shape if lookup.type == "GatherV2" else tf.TensorShape(None)
    return shape[0] if shape.rank else None


def _source(tensor: tf.Tensor) -> tf.Tensor | None:
    """The step's data tensor that `tensor` is, through views and casts, or None.

    (Also through an embedding's check of negative ids, ``where(ids < 0, ids + n, ids)``.)
    """
    while tensor.op.type in _VIEWS or tensor.op.type == "SelectV2":
        tensor = tensor.op.inputs[-1] if tensor.op.type == "SelectV2" else tensor.op.inputs[0]
    return tensor if tensor.op.type in DATA_SOURCES else None


def _large(tensor: tf.Tensor, negative: bool) -> bool:
    value = scalar_constant(tensor)
    return value is not None and (value <= _LARGE_NEGATIVE if negative else value >= 1e4)


def _large_negative(tensor: tf.Tensor) -> bool:
    return _large(tensor, negative=True)
