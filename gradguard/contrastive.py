"""A contrastive loss whose pair labels mean the opposite (`contrastive-labels-inverted`).

The contrastive loss pulls one group of pairs together (``d**2``) and pushes the other apart up
to a margin (``max(margin - d, 0)**2``), chosen by the pair label. Two conventions exist: the
paper's ``(1 - y) * d**2 + y * max(m - d, 0)**2`` (0 = similar, Hadsell et al.) and the Keras
example's, 1 = similar (keras#16935, fixed by keras-io#1050). A loss in one convention given
labels in the other pulls the pairs of different classes together and pushes each class apart:
the loss falls steadily and the embedding is the opposite of what was meant (hunt31 b06:
held-out 1-nearest-neighbour accuracy 0.32 against 0.96).

Read from a step's traced loss at each trace (`Forensics.traced_loss`): a term ``max(m - d,
0)`` (or its square) of a constant margin and a distance the model computes, and ``d**2`` or
``d`` itself, each weighed by the step's data (the pair labels). The distances of the pairs
each term takes are averaged in-graph over the first `STEPS` steps, while the model has barely
moved and similar pairs are the closer ones (a random embedding keeps distances roughly).
Found when the pairs pulled together start `FARTHER` times farther apart than those pushed
apart. Similar pairs about as close as the others at the start (hard data) stay silent.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from gradguard import diagnose, replicas
from gradguard.findings import Finding

__all__ = ["FARTHER", "STEPS", "ContrastivePairs"]

FARTHER = 1.2  # the pulled pairs' mean distance over the pushed pairs' at the start
STEPS = 20  # the first steps whose pairs are measured (the model has barely moved)
_ENOUGH = 32  # pairs in each group before judging


class ContrastivePairs:
    """The starting distances of the pairs a contrastive loss pulls and pushes, per step."""

    def __init__(self) -> None:
        # (step key) -> (pulled distance sum, pulled pairs, pushed sum, pushed pairs, steps).
        self._sums: dict[int, tf.Variable] = {}

    def watch(self, key: int, loss: Any) -> None:
        """In-graph, each trace of step `key`: sums its first steps' pairs by the term they take."""
        found = _terms(diagnose.ancestors(loss))
        if found is None:
            return
        distance, pulled, pushed = (tf.reshape(tf.cast(t, tf.float32), [-1]) for t in found)
        if key not in self._sums:
            self._sums[key] = replicas.zeros_state(5, "gradguard_contrastive_pairs")
        sums = self._sums[key].read_value()
        read = [tf.reduce_sum(pulled * distance), tf.reduce_sum(pulled)]
        read += [tf.reduce_sum(pushed * distance), tf.reduce_sum(pushed), tf.constant(1.0)]
        early = tf.cast(sums[4] < STEPS, tf.float32)
        self._sums[key].assign(sums + early * tf.stack(read))

    def findings(self, step: int) -> list[Finding]:
        """`contrastive-labels-inverted` when the pulled pairs started farther (a host read)."""
        found = []
        for state in self._sums.values():
            pulled_sum, pulled, pushed_sum, pushed, _ = (float(v) for v in state.numpy())
            if min(pulled, pushed) < _ENOUGH:
                continue
            near, far = pulled_sum / pulled, pushed_sum / pushed
            if not near > FARTHER * far or far <= 0:  # (pairs of one point each: no distances)
                continue
            message = (
                f"The contrastive loss pulls together the pairs whose label weighs d**2 and "
                f"pushes apart, up to its margin, those whose label weighs max(margin - d, 0); "
                f"but at the start of training the pairs it pulls were {near / far:.2g} times "
                f"farther apart ({near:.3g}) than those it pushes ({far:.3g}): it is pulling the "
                "dissimilar pairs together. The labels likely mean the opposite of the loss's "
                "convention: 1 = similar (the Keras example's) against 0 = similar (the paper's, "
                "(1 - y) * d**2 + y * max(m - d, 0)**2). Swap y and 1 - y in the loss, or the "
                "labels."
            )
            details = {"pulled_distance": near, "pushed_distance": far}
            found.append(Finding("contrastive-labels-inverted", message, step, details=details))
        return found


def _terms(ops: set[tf.Operation]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor] | None:
    """(the distance, the pulled pairs' weights, the pushed pairs' weights) of the loss."""
    weighted = [op for op in sorted(ops, key=lambda op: op.name) if op.type == "Mul"]
    for push in weighted:
        for weight, term in (push.inputs, push.inputs[::-1]):
            distance = _hinge_distance(term)
            if distance is None or not diagnose.is_data(weight):
                continue
            for pull in weighted:
                for other, near in (pull.inputs, pull.inputs[::-1]):
                    if (
                        pull is not push
                        and _is_distance(near, distance)
                        and diagnose.is_data(other)
                    ):
                        shapes = {str(t.shape) for t in (other, weight, distance)}
                        if len(shapes) == 1:  # (one weight and one distance a pair)
                            return distance, other, weight
    return None


def _hinge_distance(term: tf.Tensor) -> tf.Tensor | None:
    """The distance d of ``max(m - d, 0)`` (or its square), m a constant; else None."""
    op = diagnose.before_views(term).op
    if op.type == "Square":
        op = diagnose.before_views(op.inputs[0]).op
    difference = diagnose.hinge_argument(op)
    if difference is None:
        return None
    difference = diagnose.before_views(difference)
    if difference.op.type != "Sub" or tf.get_static_value(difference.op.inputs[0]) is None:
        return None
    distance = diagnose.before_views(difference.op.inputs[1])
    return distance if diagnose.reads_variables(distance) else None


def _is_distance(tensor: tf.Tensor, distance: tf.Tensor) -> bool:
    """Whether `tensor` is `distance` or its square."""
    tensor = diagnose.before_views(tensor)
    if tensor.op.type == "Square":
        tensor = diagnose.before_views(tensor.op.inputs[0])
    return tensor.name == distance.name
