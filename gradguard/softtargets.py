"""A distillation's soft targets from a model the same update trains (`teacher-trained`).

Distillation matches a student's probabilities to a teacher's: ``KL(p_teacher || p_student)``
or ``-sum(p_teacher * log p_student)``. The gradient is meant for the student alone. A
`keras.Model` that holds both tracks both, so a `train_step` that differentiates with respect
to ``self.trainable_variables`` trains the teacher too, toward the student: the two agree on
whatever is easiest, the teacher's knowledge is washed out, and the distillation loss falls
nicely (haitongli/knowledge-distillation-pytorch#25, lightly-ai/lightly-train#434; hunt30 b04:
student accuracy 0.37 against 0.79 with only the student trained).

Read from a traced loss (`lossgraph.graph_findings`), once per trace: a product of one model's
softmax probabilities (the soft targets) with another model's probabilities or log-probabilities
of the same shape, where the first model's variables are trained by this update, reached without
`tf.stop_gradient`, and read by no other part of the loss. Silent: only the student trained;
the targets under `tf.stop_gradient`; mutual learning, where each model also learns from labels;
a mixture's gate weighting its experts' cross-entropies (the labels' likelihood, not a
distribution); an entropy (one model's ``p * log p``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from gradguard.findings import Finding, listing
from gradguard.losssign import back_to
from gradguard.trainedreads import trained_names, trained_reads

__all__ = ["graph_teacher_trained"]

# Between a softmax and the product that reads it: Keras' clipping, casts, a ratio's log.
_TO_PROBABILITIES = {"Identity", "Cast", "ClipByValue", "Minimum", "Maximum", "Reshape"}
_TO_LOG = _TO_PROBABILITIES | {"Log", "RealDiv", "DivNoNan", "Sub", "LogSoftmax", "Softmax"}


def graph_teacher_trained(
    loss: tf.Tensor,
    ops: set[tf.Operation],
    is_output: Callable[[tf.Operation], bool],
    variables: Sequence[Any],
    step: int,
) -> Finding | None:
    """`teacher-trained` for the first product whose soft targets the update trains."""
    names = trained_names(loss.graph, variables)
    for product in sorted((op for op in ops if op.type == "Mul"), key=lambda op: op.name):
        for targets, other in (product.inputs, product.inputs[::-1]):
            softmax = _back_to_softmax(targets, _TO_PROBABILITIES)
            if softmax is None or not _from_trained(softmax, is_output):
                continue
            student = _back_to_softmax(other, _TO_LOG, besides=softmax)
            if student is None or student.outputs[0].shape != softmax.outputs[0].shape:
                continue
            teacher = trained_reads(softmax.outputs[0], names)
            teacher -= trained_reads(student.outputs[0], names)
            if teacher and not teacher & trained_reads(loss, names, avoid=[softmax]):
                return _finding(product, sorted(names[p] for p in teacher), step)
    return None


def _back_to_softmax(
    tensor: tf.Tensor, through: set[str], besides: tf.Operation | None = None
) -> tf.Operation | None:
    """The softmax `tensor` is made from, back through a few ops of `through`."""
    return back_to(
        tensor,
        lambda op: op.type in ("Softmax", "LogSoftmax") and op is not besides,
        lambda op: op.type in through,
    )


def _from_trained(softmax: tf.Operation, is_output: Callable[[tf.Operation], bool]) -> bool:
    """Whether the softmax reads a trained layer's output (a bias, a temperature between)."""
    op = softmax.inputs[0].op
    for _ in range(4):
        if is_output(op):
            return True
        if op.type not in ("BiasAdd", "AddV2", "Add", "RealDiv", "Mul", "Identity", "Cast"):
            return False
        op = op.inputs[0].op
    return False


def _finding(product: tf.Operation, teacher: list[str], step: int) -> Finding:
    message = (
        f"The soft targets of {product.name} are the probabilities of a model this update trains "
        f"({listing(teacher)}), and no other part of the loss trains it: the distillation loss "
        "pulls the teacher toward the student as much as the student toward the teacher, and the "
        "teacher's knowledge is washed out while the loss falls. Differentiate with respect to "
        "the student's variables only (tape.gradient(loss, self.student.trainable_variables), "
        "not self.trainable_variables), or hold the targets with tf.stop_gradient."
    )
    details = {"term": product.name, "teacher": teacher}
    return Finding("teacher-trained", message, step, details=details)
