"""A @tf.function train step with a learning-rate warmup written the right way round.

The same network and data as bug_dead_relu_warmup_inverted_tf_function.py: its ReLU units stay
alive and the loss keeps falling.
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
loss_fn = tf.keras.losses.MeanSquaredError()
optimizer = tf.keras.optimizers.Adam(Warmup(1e-3, 300))
dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(2048).batch(32)


@tf.function
def train_step(x_batch, y_batch):
    with tf.GradientTape() as tape:
        loss = loss_fn(y_batch, model(x_batch, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(3):
    epoch_loss = tf.keras.metrics.Mean()
    for x_batch, y_batch in dataset:
        epoch_loss.update_state(train_step(x_batch, y_batch))
    print(f"epoch {epoch}: loss {epoch_loss.result():.4f}")
