"""Healthy accumulation inside one @tf.function step: tf.cond applies every 4th micro-batch."""

import numpy as np
import tensorflow as tf

np.random.seed(25)
tf.random.set_seed(25)

x = np.random.randn(1280, 8).astype("float32")
y = (np.tanh(x[:, :2].sum(axis=1, keepdims=True)) + 0.05 * np.random.randn(1280, 1)).astype(
    "float32"
)

model = tf.keras.Sequential(
    [tf.keras.Input((8,)), tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(1)]
)
optimizer = tf.keras.optimizers.SGD(learning_rate=0.05)
loss_fn = tf.keras.losses.MeanSquaredError()

ACCUM = 4
step_counter = tf.Variable(0, trainable=False)
grad_buffers = [tf.Variable(tf.zeros_like(w), trainable=False) for w in model.trainable_weights]


def apply_and_reset():
    optimizer.apply_gradients(zip([b / ACCUM for b in grad_buffers], model.trainable_weights))
    for b in grad_buffers:
        b.assign(tf.zeros_like(b))
    return tf.constant(True)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    for b, g in zip(grad_buffers, grads):
        b.assign_add(g)
    step_counter.assign_add(1)
    tf.cond(step_counter % ACCUM == 0, apply_and_reset, lambda: tf.constant(False))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1280).batch(16)
for epoch in range(3):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))
