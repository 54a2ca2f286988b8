"""Healthy fine-tuning: pretrain with model.fit, then unfreeze and fine-tune with Adam(1e-5)."""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(18)

x = np.random.randn(2000, 24).astype("float32")
w = np.random.randn(24, 1).astype("float32")
y_source = (x @ w > 0).astype("float32")
y_target = (x @ (w + 0.5 * np.random.randn(24, 1)) > 0).astype("float32")

base_model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(24,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(64, activation="relu"),
    ],
    name="base_model",
)
model = tf.keras.Sequential([base_model, tf.keras.layers.Dense(1, activation="sigmoid")])

# Stage 1: train on the source task.
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
model.fit(x, y_source, epochs=2, batch_size=64, verbose=0)

# Stage 2: fine-tune the whole model on the target task with a very small learning rate.
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-5)
bce = tf.keras.losses.BinaryCrossentropy()


@tf.function
def fine_tune_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = bce(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y_target)).shuffle(2000).batch(32)
for epoch in range(3):
    for xb, yb in ds:
        loss = fine_tune_step(xb, yb)
    print("fine-tune epoch", epoch, "loss", float(loss))
