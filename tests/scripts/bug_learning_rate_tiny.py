"""Custom loop with SGD(learning_rate=1e-10): the weights barely move."""

import numpy as np
import tensorflow as tf

np.random.seed(9)
tf.random.set_seed(9)

X = np.random.randn(1600, 8).astype(np.float32)
W = np.random.randn(8, 1).astype(np.float32)
Y = X @ W + 0.5

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(32, activation="relu", input_shape=(8,)),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.SGD(learning_rate=1e-10)
loss_fn = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        pred = model(x, training=True)
        loss = loss_fn(y, pred)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


dataset = tf.data.Dataset.from_tensor_slices((X, Y)).shuffle(1600).batch(32).repeat(4)
for x, y in dataset:
    loss = train_step(x, y)
print("final loss", loss.numpy())
