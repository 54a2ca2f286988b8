"""A distillation's soft targets from a model the same update trains (`softtargets`).

Found from the traced graph (`teacher-trained`): Keras' KL divergence and a hand-written soft
cross-entropy between a teacher and a student, both trained. Silent: only the student trained;
the teacher's probabilities under `tf.stop_gradient`; mutual learning, where each model also
learns from the labels; a gate weighting its experts' cross-entropies; an entropy bonus.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import lossgraph

FEATURES, CLASSES, T = 6, 4, 3.0


def _models():
    keras.utils.set_random_seed(0)

    def net():
        return keras.Sequential(
            [keras.Input((FEATURES,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(CLASSES)]
        )

    return net(), net()


_KL = keras.losses.KLDivergence()


def _keras_kl(teacher, student, x, y):
    return _KL(tf.nn.softmax(teacher(x) / T), tf.nn.softmax(student(x) / T)) * T**2


def _soft_cross_entropy(teacher, student, x, y):
    targets = tf.nn.softmax(teacher(x) / T)
    return -tf.reduce_mean(tf.reduce_sum(targets * tf.nn.log_softmax(student(x) / T), -1))


def _stopped(teacher, student, x, y):
    return _keras_kl(lambda v: tf.stop_gradient(teacher(v)), student, x, y)


def _mutual_learning(teacher, student, x, y):
    """Each model learns from the labels and from the other's probabilities."""
    labels = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(y, teacher(x))
        + tf.nn.sparse_softmax_cross_entropy_with_logits(y, student(x))
    )
    return labels + _keras_kl(teacher, student, x, y)


def _gated_experts(teacher, student, x, y):
    """A gate (the first model) weighting two experts' cross-entropies (the second's heads)."""
    gate = tf.nn.softmax(teacher(x)[:, :2])
    logits = student(x)
    experts = tf.stack(
        [
            tf.nn.sparse_softmax_cross_entropy_with_logits(y % 2, logits[:, :2]),
            tf.nn.sparse_softmax_cross_entropy_with_logits(y % 2, logits[:, 2:]),
        ],
        axis=1,
    )
    return tf.reduce_mean(tf.reduce_sum(gate * experts, -1))


def _entropy_bonus(teacher, student, x, y):
    p = tf.nn.softmax(student(x))
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(y, student(x))
    return tf.reduce_mean(cross_entropy + 0.1 * tf.reduce_sum(p * tf.math.log(p + 1e-7), -1))


@pytest.mark.parametrize(
    "loss_of, trains, found",
    [
        (_keras_kl, "both", True),
        (_soft_cross_entropy, "both", True),
        (_keras_kl, "student", False),
        (_stopped, "both", False),
        (_mutual_learning, "both", False),
        (_gated_experts, "both", False),
        (_entropy_bonus, "both", False),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else str(v),
)
def test_a_teacher_trained_by_its_own_distillation_is_found(loss_of, trains, found):
    teacher, student = _models()
    variables = student.trainable_variables
    if trains == "both":
        variables = teacher.trainable_variables + variables
    read = []

    @tf.function
    def trace(x, y):
        loss = loss_of(teacher, student, x, y)
        read.extend(lossgraph.graph_findings(loss, 0, variables))
        return loss

    trace.get_concrete_function(tf.TensorSpec([None, FEATURES]), tf.TensorSpec([None], tf.int32))
    codes = [f.code for f in read]
    assert ("teacher-trained" in codes) == found, codes
    if found:
        (finding,) = (f for f in read if f.code == "teacher-trained")
        assert finding.details["teacher"] == sorted(v.path for v in teacher.trainable_variables)


class _Distiller(keras.Model):
    def __init__(self, teacher, student, student_only):
        super().__init__()
        self.teacher, self.student, self.student_only = teacher, student, student_only

    def call(self, x):
        return self.student(x)

    def train_step(self, data):
        x, _ = data
        with tf.GradientTape() as tape:
            loss = _keras_kl(self.teacher, self.student, x, None)
        trained = (
            self.student.trainable_variables if self.student_only else self.trainable_variables
        )
        self.optimizer.apply_gradients(zip(tape.gradient(loss, trained), trained))
        return {"loss": loss}


@pytest.mark.parametrize("student_only", [False, True], ids=["self-variables", "student-only"])
def test_a_distiller_training_its_teacher_is_found_under_fit(student_only):
    distiller = _Distiller(*_models(), student_only)
    distiller.compile(keras.optimizers.Adam(1e-3))
    guard = gradguard.GuardCallback()
    x = np.random.default_rng(0).normal(size=(64, FEATURES)).astype("float32")
    distiller.fit(x, np.zeros(64), batch_size=32, epochs=1, verbose=0, callbacks=[guard])
    found = [f for f in guard.report().findings if f.code == "teacher-trained"]
    assert bool(found) != student_only, guard.report()
    if found:
        assert "self.student.trainable_variables" in found[0].message
