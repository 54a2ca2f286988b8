"""A learned log-variance weight is in tape.gradient's list but zip() drops it from the update."""

import numpy as np
import tensorflow as tf

np.random.seed(5)
tf.random.set_seed(5)

x = np.random.randn(512, 6).astype("float32")
y = (x[:, :1] * 2.0 - x[:, 1:2] + 0.3 * np.random.randn(512, 1)).astype("float32")

model = tf.keras.Sequential(
    [tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(1)]
)
# Learned homoscedastic uncertainty (Kendall et al.): loss = exp(-s) * mse + s
log_var = tf.Variable(0.0, name="log_var")
optimizer = tf.keras.optimizers.Adam(learning_rate=3e-3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        pred = model(xb, training=True)
        mse = tf.reduce_mean(tf.square(yb - pred))
        loss = tf.exp(-log_var) * mse + log_var
    grads = tape.gradient(loss, model.trainable_variables + [log_var])
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512).batch(32)
for epoch in range(10):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print(f"epoch {epoch} loss {float(loss):.3f} log_var {float(log_var.numpy()):.3f}")
