"""model.fit with a learning-rate warmup written the right way round.

The same network and data as bug_dead_relu_warmup_inverted_fit.py: its ReLU units stay alive
and the loss keeps falling.
"""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(2)

# Non-negative features (scaled measurements), a linear target with a little noise.
x_train = np.random.rand(2048, 12).astype("float32")
true_w = np.random.randn(12, 1).astype("float32")
y_train = (x_train @ true_w + 0.05 * np.random.randn(2048, 1)).astype("float32")


class Warmup(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Ramps up to base_rate over `steps` steps."""

    def __init__(self, base_rate, steps):
        self.base_rate = base_rate
        self.steps = steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        return self.base_rate * tf.minimum((step + 1.0) / self.steps, 1.0)


model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(12,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
model.compile(optimizer=tf.keras.optimizers.Adam(Warmup(1e-3, 300)), loss="mse")
model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=2)
