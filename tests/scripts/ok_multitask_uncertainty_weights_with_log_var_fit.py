"""Healthy twin of bug_multitask_uncertainty_weights_without_log_var_fit.py: Kendall et al.'s
weighting whole, exp(-log_var) * mse + log_var. Each log_var settles at its task's noise level
and the loss may go negative, which is expected.

expected: (none)
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)
n, d = 1200, 10
x = rng.normal(size=(n, d)).astype("float32")
w_a, w_b = rng.normal(size=(d,)), rng.normal(size=(d,))
y_a = (8.0 * np.tanh(x @ w_a / 2) + rng.normal(scale=0.5, size=n)).astype("float32")
y_b = (3.0 * np.sin(x @ w_b / 2) + rng.normal(scale=0.3, size=n)).astype("float32")


class MultiTask(keras.Model):
    def __init__(self):
        super().__init__()
        self.trunk = keras.layers.Dense(64, activation="relu")
        self.head_a = keras.layers.Dense(1)
        self.head_b = keras.layers.Dense(1)
        self.log_vars = self.add_weight(shape=(2,), initializer="zeros", name="log_vars")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, inputs):
        h = self.trunk(inputs)
        return self.head_a(h)[:, 0], self.head_b(h)[:, 0]

    def train_step(self, data):
        x, (ya, yb) = data
        with tf.GradientTape() as tape:
            pa, pb = self(x, training=True)
            mse = tf.stack([tf.reduce_mean(tf.square(ya - pa)), tf.reduce_mean(tf.square(yb - pb))])
            loss = tf.reduce_sum(tf.exp(-self.log_vars) * mse + self.log_vars)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


model = MultiTask()
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9))
history = model.fit(x, (y_a, y_b), batch_size=64, epochs=4, verbose=0).history["loss"]
print(f"loss: first epoch {history[0]:.3f}, last {history[-1]:.3f}")
print("log_vars:", model.log_vars.numpy())
