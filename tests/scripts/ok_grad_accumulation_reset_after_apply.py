"""Healthy twin: gradient accumulation over 4 micro-batches in a tf.function custom loop; the optimizer
is applied every 4th batch only (on purpose) and the loss falls.

Source: https://github.com/tensorflow/addons/pull/2525 (healthy twin: accumulate, apply the
        accumulated gradient, *then* reset the accumulators)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(24)
tf.random.set_seed(24)

ACCUM_STEPS = 4
x = np.random.randn(4096, 20).astype("float32")
y = (x @ np.random.randn(20, 1) + 0.1 * np.random.randn(4096, 1)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4096, seed=24).batch(16)

model = tf.keras.Sequential([
    tf.keras.Input((20,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(1),
])
optimizer = tf.keras.optimizers.Adam(1e-3)
mse = tf.keras.losses.MeanSquaredError()
accum = [tf.Variable(tf.zeros_like(v), trainable=False) for v in model.trainable_variables]


@tf.function
def accumulate(xb, yb):
    with tf.GradientTape() as tape:
        loss = mse(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    for a, g in zip(accum, grads):
        a.assign_add(g / ACCUM_STEPS)
    return loss


@tf.function
def apply_accumulated():
    optimizer.apply_gradients(zip([a.read_value() for a in accum], model.trainable_variables))
    for a in accum:
        a.assign(tf.zeros_like(a))


for epoch in range(3):
    losses = []
    for step, (xb, yb) in enumerate(ds):
        losses.append(float(accumulate(xb, yb)))
        if (step + 1) % ACCUM_STEPS == 0:
            apply_accumulated()
    print(f"epoch {epoch}: mean loss {np.mean(losses):.4f}  optimizer steps {int(optimizer.iterations)}")
