"""Symptom: the distilled student stays at chance; its loss is 0.0 from the first epoch. The
Distiller's train_step softens the student's logits twice instead of the teacher's and the
student's, so the KL divergence compares the student with itself: always 0, whatever the weights.

(Trial 39's distillation bug. The teacher was trained by its own optimizer earlier in the same
process: one optimizer after the other, not a GAN's players. The healthy twin, which compares
the student with the teacher: ok_distillation_fit.py.)
expected: loss-not-decreasing
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(39)


class Distiller(keras.Model):
    def __init__(self, student, teacher, temperature=3.0):
        super().__init__()
        self.student, self.teacher, self.temperature = student, teacher, temperature
        self.kl = keras.losses.KLDivergence()

    def call(self, x):
        return self.student(x)

    def train_step(self, data):
        x, _ = data
        teacher_logits = self.teacher(x, training=False)  # computed, then never used
        t = self.temperature
        with tf.GradientTape() as tape:
            student_logits = self.student(x, training=True)
            soft = tf.nn.softmax(student_logits / t, axis=1)
            loss = self.kl(soft, tf.nn.softmax(student_logits / t, axis=1)) * t**2
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        return {"loss": loss, "teacher_mean": tf.reduce_mean(teacher_logits)}


x = np.random.randn(1024, 16).astype("float32")
y = np.argmax(x[:, :4], axis=1)
teacher = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
)
teacher.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
teacher.fit(x, y, epochs=2, batch_size=32, verbose=0)
student = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)]
)
distiller = Distiller(student, teacher)
distiller.compile(optimizer=keras.optimizers.Adam())
distiller.fit(x, y, epochs=4, batch_size=32, verbose=2)
