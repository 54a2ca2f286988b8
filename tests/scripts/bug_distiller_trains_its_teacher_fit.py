"""Reported symptom: "distillation loss falls nicely, but the student is poor and the teacher got
worse". The Distiller holds teacher and student, so self.trainable_variables includes the
teacher's weights: differentiating the KL with respect to all of them pulls the teacher toward
the (initially random) student, and the teacher's knowledge is washed out (held-out accuracy:
teacher 0.64 and student 0.55, against 0.77 and 0.70 with only the student trained).

Source: https://github.com/haitongli/knowledge-distillation-pytorch/issues/25,
        https://github.com/lightly-ai/lightly-train/pull/434, hunt30 b04
expected: teacher-trained
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
CLASSES, DIM = 8, 20
centers = rng.normal(size=(CLASSES, 4)) * 2.0
projection = rng.normal(size=(4, DIM))


def make(n):
    y = rng.integers(0, CLASSES, size=n)
    z = centers[y] + rng.normal(size=(n, 4))
    return (np.tanh(z @ projection / 2.0) + 0.1 * rng.normal(size=(n, DIM))).astype("float32"), y


x_labelled, y_labelled = make(1500)
x_transfer, _ = make(2048)
x_test, y_test = make(1000)

teacher = keras.Sequential(
    [keras.Input((DIM,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(CLASSES)],
    name="teacher",
)
teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
teacher.fit(x_labelled, y_labelled, batch_size=64, epochs=5, verbose=0)
student = keras.Sequential(
    [keras.Input((DIM,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(CLASSES)],
    name="student",
)


class Distiller(keras.Model):
    def __init__(self, student, teacher, temperature=4.0):
        super().__init__()
        self.student, self.teacher, self.temperature = student, teacher, temperature
        self.kl = keras.losses.KLDivergence()
        self.tracker = keras.metrics.Mean(name="distill_loss")

    def call(self, x):
        return self.student(x)

    def train_step(self, x):
        t = self.temperature
        with tf.GradientTape() as tape:
            targets = tf.nn.softmax(self.teacher(x, training=False) / t)
            loss = self.kl(targets, tf.nn.softmax(self.student(x, training=True) / t)) * t**2
        trained = self.trainable_variables  # the teacher's weights too
        self.optimizer.apply_gradients(zip(tape.gradient(loss, trained), trained))
        self.tracker.update_state(loss)
        return {"distill_loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


distiller = Distiller(student, teacher)
distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
distiller.fit(x_transfer, batch_size=64, epochs=4, verbose=0)
for name, model in (("teacher", teacher), ("student", student)):
    accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test)
    print(f"{name} held-out accuracy: {accuracy:.3f}")
