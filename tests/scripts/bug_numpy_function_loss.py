"""@tf.function step whose loss (an F1-style score) is computed by tf.numpy_function."""

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(4)
x = rng.normal(size=(640, 12)).astype(np.float32)
y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(np.float32).reshape(-1, 1)


def soft_f1_loss_np(y_true, y_prob):
    tp = np.sum(y_true * y_prob)
    fp = np.sum((1 - y_true) * y_prob)
    fn = np.sum(y_true * (1 - y_prob))
    return np.float32(1.0 - 2 * tp / (2 * tp + fp + fn + 1e-7))


model = tf.keras.Sequential(
    [
        tf.keras.Input((12,)),
        tf.keras.layers.Dense(24, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
optimizer = tf.keras.optimizers.RMSprop(1e-3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        prob = model(xb, training=True)
        loss = tf.numpy_function(soft_f1_loss_np, [yb, prob], tf.float32)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).repeat(5)
for xb, yb in ds:
    loss = train_step(xb, yb)
print("final loss", float(loss))
