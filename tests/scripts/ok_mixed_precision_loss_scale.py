"""Healthy mixed-precision loop with LossScaleOptimizer: early overflowing steps are skipped."""

import numpy as np
import tensorflow as tf

np.random.seed(15)
tf.random.set_seed(15)
tf.keras.mixed_precision.set_global_policy("mixed_float16")

x = np.random.randn(1024, 16).astype("float32")
y = (x @ np.random.randn(16, 1) * 5.0).astype("float32")  # large targets: scaled grads overflow

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(16,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(1),
        tf.keras.layers.Activation("linear", dtype="float32"),
    ]
)
optimizer = tf.keras.mixed_precision.LossScaleOptimizer(tf.keras.optimizers.Adam(1e-3))
loss_fn = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        predictions = model(xb, training=True)
        loss = loss_fn(yb, predictions)
        scaled_loss = optimizer.scale_loss(loss)
    scaled_gradients = tape.gradient(scaled_loss, model.trainable_variables)
    # Keras 3: apply_gradients unscales, and skips the step if any gradient overflowed.
    optimizer.apply_gradients(zip(scaled_gradients, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(32)
for epoch in range(5):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss), "scale", float(optimizer.dynamic_scale))
