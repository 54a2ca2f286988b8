"""A 10-layer MLP with sigmoid activations everywhere: the first layers' gradients vanish."""

import numpy as np
import tensorflow as tf

np.random.seed(17)
tf.random.set_seed(17)

x = np.random.randn(1024, 20).astype("float32")
y = (np.sum(x[:, :5], axis=1) > 0).astype("float32").reshape(-1, 1)

layers = [tf.keras.Input(shape=(20,))]
for _ in range(10):
    layers.append(tf.keras.layers.Dense(32, activation="sigmoid"))
layers.append(tf.keras.layers.Dense(1, activation="sigmoid"))
model = tf.keras.Sequential(layers)

optimizer = tf.keras.optimizers.SGD(learning_rate=0.1)
loss_fn = tf.keras.losses.BinaryCrossentropy()

dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(64)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(8):
    for xb, yb in dataset:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))
