"""model.fit with a learning-rate warmup written upside down: it starts 300x too high.

The first Adam steps (learning rate 0.3, then 0.15, ...) push most ReLU units of the hidden
layers negative for every input. Dead units get no gradient, so they never recover: the loss
stalls far above what the same network reaches with the warmup the right way round.
"""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(2)

# Non-negative features (scaled measurements), a linear target with a little noise.
x_train = np.random.rand(2048, 12).astype("float32")
true_w = np.random.randn(12, 1).astype("float32")
y_train = (x_train @ true_w + 0.05 * np.random.randn(2048, 1)).astype("float32")


class Warmup(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Meant to ramp up to base_rate over `steps` steps."""

    def __init__(self, base_rate, steps):
        self.base_rate = base_rate
        self.steps = steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        # Bug: steps / (step + 1) instead of (step + 1) / steps.
        return self.base_rate * tf.maximum(self.steps / (step + 1.0), 1.0)


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
