"""Trading-direction model trained on -mean(sign(pred) * return): tf.sign's gradient is zero."""

import numpy as np
import tensorflow as tf

np.random.seed(19)
tf.random.set_seed(19)

# Lagged returns as features, next-day return as the target.
returns = np.random.randn(3000).astype("float32") * 0.01
returns[1:] += 0.3 * returns[:-1]
window = 10
X = np.stack([returns[i : i + window] for i in range(len(returns) - window)])
future = returns[window:].reshape(-1, 1)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(32, activation="relu", input_shape=(window,)),
        tf.keras.layers.Dense(1, activation="tanh"),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)


def profit_loss(future_return, prediction):
    position = tf.sign(prediction)  # long (+1) or short (-1)
    return -tf.reduce_mean(position * future_return)


ds = tf.data.Dataset.from_tensor_slices((X, future)).batch(128)


@tf.function
def train_step(x, r):
    with tf.GradientTape() as tape:
        loss = profit_loss(r, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(5):
    for x, r in ds:
        loss = train_step(x, r)
    print("epoch", epoch, "loss", float(loss))
