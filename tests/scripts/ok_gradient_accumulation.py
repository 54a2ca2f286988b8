"""Healthy gradient accumulation: gradients summed over 4 micro-batches, applied every 4 steps."""

import numpy as np
import tensorflow as tf

np.random.seed(3)
tf.random.set_seed(3)

x = np.random.randn(1024, 10).astype("float32")
y = (x @ np.random.randn(10, 1) + np.sin(x[:, :1])).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(10,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.MeanSquaredError()

accum_steps = 4
accum_grads = [tf.Variable(tf.zeros_like(v), trainable=False) for v in model.trainable_variables]


@tf.function
def accumulate(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True)) / accum_steps
    grads = tape.gradient(loss, model.trainable_variables)
    for acc, g in zip(accum_grads, grads):
        acc.assign_add(g)
    return loss


@tf.function
def apply_accumulated():
    optimizer.apply_gradients(
        [(acc.read_value(), v) for acc, v in zip(accum_grads, model.trainable_variables)]
    )
    for acc in accum_grads:
        acc.assign(tf.zeros_like(acc))


ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(16)
for epoch in range(4):
    total = 0.0
    for step, (xb, yb) in enumerate(ds):
        total += float(accumulate(xb, yb))
        if (step + 1) % accum_steps == 0:
            apply_accumulated()
    print("epoch", epoch, "loss", total / (step + 1) * accum_steps)
