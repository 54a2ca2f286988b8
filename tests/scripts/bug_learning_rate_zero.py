"""Warmup schedule using integer division: step // warmup_steps is 0, so the learning rate is 0."""

import numpy as np
import tensorflow as tf

np.random.seed(0)
tf.random.set_seed(0)


class WarmupSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak_lr, warmup_steps):
        self.peak_lr = peak_lr
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        warmup = tf.cast(step // self.warmup_steps, tf.float32)  # meant step / warmup_steps
        return self.peak_lr * tf.minimum(1.0, warmup)


x = np.random.randn(2048, 16).astype("float32")
y = (np.sin(x[:, :1]) + 0.1 * x[:, 1:2]).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input((16,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=WarmupSchedule(1e-3, warmup_steps=1000))
loss_fn = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048).batch(64).repeat(7)
for step, (xb, yb) in enumerate(ds):
    loss = train_step(xb, yb)
    if step % 50 == 0:
        print(step, float(loss))
