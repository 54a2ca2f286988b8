"""A hinge taken of a total over the whole batch, not of each example (`hinge-on-batch-total`).

A margin loss (triplet, contrastive, ranking) is ``max(d_pos - d_neg + margin, 0)`` per example.
With the distances reduced over every axis (``tf.reduce_sum(tf.square(a - p))`` without
``axis=-1``), the batch included, the hinge is taken once, of the batch's totals: as soon as the
totals meet the margin, the loss and every gradient are exactly 0 while most examples still
violate it (hunt18, the FaceNet assignment's triplet loss: loss and gradients 0 on 353 of 378
steps, 1-NN accuracy 0.20 against 0.55 per triplet). Nothing fails; the loss looks converged.

Read from a traced loss (`lossgraph.graph_findings`): a ``Maximum`` with 0 (or a ``Relu``) of a
scalar that compares, through sums, differences and constant factors, two sums or means over
every axis of tensors of the batch computed from variables (the model's outputs). A hinge per
example, a hinge of one batch average against a constant (a budget), of ratios of totals (a
precision, a gap between groups' means), of one example's vectors (rank 1), and a clamp at a
floor other than 0 (a KL's free bits) are silent.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.diagnose import hinge_argument, reads_variables, reduces_all
from gradguard.findings import Finding

__all__ = ["graph_hinge_on_batch_total"]

# Between the hinge and the totals: their sums and differences, the margin; constant factors.
_ARITHMETIC = frozenset({"AddV2", "Add", "Sub", "Neg", "Identity", "Cast"})
_SCALING = frozenset({"Mul", "RealDiv"})


def _batch_totals(tensor: tf.Tensor) -> list[tf.Operation]:
    """The reductions over whole batch tensors that scalar `tensor` is made of."""
    stack, seen, found = [tensor], set[tf.Operation](), []
    while stack:
        op = stack.pop().op
        if op in seen or len(seen) > 32:
            continue
        seen.add(op)
        if op.type in ("Sum", "Mean"):
            values = op.inputs[0]
            if _batched(values) and reduces_all(op) and reads_variables(values):
                found.append(op)
        elif op.type in _ARITHMETIC:
            stack += [t for t in op.inputs if t.dtype.is_floating and t.shape.rank == 0]
        elif op.type in _SCALING and tf.get_static_value(op.inputs[1]) is not None:
            stack.append(op.inputs[0])  # (a ratio of totals is a rate: precision, a group's mean)
    return sorted(found, key=lambda op: op.name)


def _batched(values: tf.Tensor) -> bool:
    """Whether `values` are per-example features: a leading axis of more than one, and more.

    One example's vector (rank 1: TransE on one triple) is summed whole by rights.
    """
    rank = values.shape.rank
    return bool(rank and rank >= 2) and (values.shape[0] is None or values.shape[0] > 1)


def graph_hinge_on_batch_total(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`hinge-on-batch-total` for the first hinge of 0 taken of a whole batch's total."""
    for op in sorted(ops, key=lambda op: op.name):
        argument = hinge_argument(op)
        totals = (
            _batch_totals(argument) if argument is not None and argument.shape.rank == 0 else []
        )
        if len(totals) < 2:  # (one total against a constant: a budget on a batch average)
            continue
        message = (
            f"The hinge max(., 0) at {op.name} is taken of scalars summed over the whole batch "
            f"({totals[0].type} over every axis at {totals[0].name}), so the margin is met by the "
            "batch's total, not by each example: once the total meets it, the loss and every "
            "gradient are exactly 0 while many examples still violate the margin. Reduce over "
            "the feature axis only (tf.reduce_sum(tf.square(a - p), axis=-1)), take the hinge "
            "per example, then average."
        )
        return Finding("hinge-on-batch-total", message, step, details={"op": op.name})
    return None
