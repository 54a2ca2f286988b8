"""A contrastive loss whose positive is each row's own similarity (`labels-uninformative`).

SimCLR's NT-Xent loss, written by hand, concatenates the two views of a batch, ``z`` (2n rows),
takes their similarity matrix ``z @ z.T / temperature`` and a cross-entropy over its rows: row i
must pick its other view, ``(i + n) mod 2n``, with the diagonal (each row's similarity to
itself) masked out. With ``labels = tf.range(2n)`` and no mask, each row's "positive" is its own
similarity: the largest in the row (1 / temperature for unit vectors), whatever the encoder
does. The loss falls to about 0 by spreading the rows apart, the views are never paired, and
the encoder learns no invariance (a k-nearest-neighbour probe on its embeddings: 0.26 against
0.98 with the pairs). Nothing fails.

Read from a traced loss (`lossgraph.graph_findings`): a softmax cross-entropy whose labels are
``tf.range`` (or its one-hot), over logits that are one tensor's product with itself
(``matmul(z, z, transpose_b=True)``), scaled or reshaped only. Silent: a masked diagonal
(``sim - 1e9 * eye``), two towers' similarities (CLIP: ``matmul(images, texts.T)``, whose
diagonal holds the pairs), labels read from the data (supervised contrastive).
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.diagnose import SOFTMAX_CROSS_ENTROPY
from gradguard.findings import Finding

__all__ = ["graph_self_positive"]

# Ops that keep each label an index (or its one-hot) as `tf.range` made it.
_LABEL_PASSING = {"Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "OneHot"}
# Between the similarity matrix and the cross-entropy: casts, reshapes, a temperature.
_LOGIT_PASSING = {"Identity", "Cast", "Reshape", "Squeeze", "ExpandDims", "RealDiv", "Mul"}
_PRODUCTS = {"MatMul", "BatchMatMulV2", "BatchMatMulV3"}


def graph_self_positive(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`labels-uninformative` for a cross-entropy of ``range`` labels over a self-similarity."""
    for op in ops:
        if op.type not in SOFTMAX_CROSS_ENTROPY or not _diagonal(op.inputs[1]):
            continue
        product = _self_product(op.inputs[0])
        if product is None:
            continue
        message = (
            "The loss is a cross-entropy over a similarity matrix of one tensor with itself "
            f"({product.name}) whose labels are tf.range: each row's positive is its own "
            "similarity, on the diagonal and the largest in its row whatever the model does, "
            "not its other view's. The loss falls to about 0 without pairing the views, and "
            "the encoder learns no invariance. Mask the diagonal (sim - 1e9 * tf.eye(2 * n)) "
            "and give each row its pair: labels = tf.concat([tf.range(n, 2 * n), "
            "tf.range(0, n)], 0)."
        )
        return Finding("labels-uninformative", message, step, details={"product": product.name})
    return None


def _diagonal(labels: tf.Tensor) -> bool:
    """Whether `labels` are ``tf.range(0, n)`` (or its one-hot): each row's own index."""
    op = labels.op
    while op.type in _LABEL_PASSING and op.inputs:
        op = op.inputs[0].op
    if op.type != "Range":
        return False
    start, delta = (tf.get_static_value(op.inputs[i]) for i in (0, 2))
    return start is not None and delta is not None and int(start) == 0 and int(delta) == 1


def _self_product(logits: tf.Tensor) -> tf.Operation | None:
    """The product ``z @ z.T`` that `logits` are (through `_LOGIT_PASSING` ops), or None."""
    op = logits.op
    for _ in range(8):
        if op.type in _PRODUCTS:
            a, b = op.inputs[0], op.inputs[1]
            transposed = any(
                op.get_attr(name)
                for name in ("transpose_a", "transpose_b", "adj_x", "adj_y")
                if name in op.node_def.attr
            )
            return op if a is b and transposed else None
        if op.type not in _LOGIT_PASSING or not op.inputs:
            return None
        if op.type in ("RealDiv", "Mul"):  # (the other operand a temperature: a scalar)
            scales = [t for t in op.inputs[1:] if t.shape.rank == 0]
            if op.type == "Mul" and not scales and op.inputs[0].shape.rank == 0:
                op = op.inputs[1].op
                continue
            if not scales:
                return None
        op = op.inputs[0].op
    return None
