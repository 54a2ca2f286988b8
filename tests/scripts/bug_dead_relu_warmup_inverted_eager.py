"""An eager loop whose learning-rate warmup is upside down: it starts 300x too high.

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
loss_fn = tf.keras.losses.MeanSquaredError()
optimizer = tf.keras.optimizers.Adam(Warmup(1e-3, 300))
dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(2048).batch(32)

for epoch in range(3):
    epoch_loss = tf.keras.metrics.Mean()
    for x_batch, y_batch in dataset:
        with tf.GradientTape() as tape:
            loss = loss_fn(y_batch, model(x_batch, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        epoch_loss.update_state(loss)
    print(f"epoch {epoch}: loss {epoch_loss.result():.4f}")
