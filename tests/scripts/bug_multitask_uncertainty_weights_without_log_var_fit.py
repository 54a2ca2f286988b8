"""Reported symptom: "the loss went negative, so I removed log_var; now it falls to near 0 but
the predictions are poor". Learned uncertainty weights (Kendall et al.) minimize
exp(-log_var) * mse + log_var; without the + log_var the loss only falls as log_var grows, so
every step raises it, each task's weight exp(-log_var) shrinks toward 0, and the trunk stops
learning while the reported loss looks like success.

Source: https://github.com/yaringal/multi-task-learning-example/issues/6, hunt29 b07
expected: loss-has-no-minimum
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
            loss = tf.reduce_sum(tf.exp(-self.log_vars) * mse)  # the + log_vars removed
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
