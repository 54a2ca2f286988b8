"""Hand-written linear decay with decay_steps given in epochs: the learning rate turns negative."""

import numpy as np
import tensorflow as tf

np.random.seed(31)
tf.random.set_seed(31)


class LinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, initial_lr, decay_steps):
        self.initial_lr = initial_lr
        self.decay_steps = decay_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        return self.initial_lr * (1.0 - step / self.decay_steps)


EPOCHS = 10
x = np.random.randn(640, 10).astype("float32")
y = (x @ np.random.randn(10, 1) + 0.1 * np.random.randn(640, 1)).astype("float32")

model = tf.keras.Sequential(
    [tf.keras.Input((10,)), tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(1)]
)
# Bug: decay_steps should be EPOCHS * steps_per_epoch.
optimizer = tf.keras.optimizers.Adam(learning_rate=LinearDecay(1e-2, decay_steps=EPOCHS))
loss_fn = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(640).batch(32)
for epoch in range(EPOCHS):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))
