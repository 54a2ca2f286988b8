"""HEALTHY TWIN of bug_gradient_accumulators_never_reset_tf_function.py: the accumulators are
set back to zero after each update. Otherwise identical. A tool should stay silent."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d, C = 4000, 10, 3
x = rng.normal(size=(n, d)).astype("float32")
y = (x[:, 0] ** 2 + x[:, 1] ** 2 > 1.4).astype("int64") + (x[:, 2] > 0.5).astype("int64")
x_train, y_train, x_test, y_test = x[:3000], y[:3000], x[3000:], y[3000:]

model = keras.Sequential(
    [
        keras.Input((d,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(C),
    ]
)
optimizer = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ACCUM = 4
accum = [tf.Variable(tf.zeros_like(v), trainable=False) for v in model.trainable_variables]


@tf.function
def accumulate(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True)) / ACCUM
    grads = tape.gradient(loss, model.trainable_variables)
    for a, g in zip(accum, grads):
        a.assign_add(g)
    return loss


@tf.function
def apply_accumulated():
    optimizer.apply_gradients(zip(accum, model.trainable_variables))


ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(3000, seed=0).batch(16)
for _ in range(6):
    for i, (xb, yb) in enumerate(ds):
        accumulate(xb, yb)
        if (i + 1) % ACCUM == 0:
            apply_accumulated()
            for a in accum:  # the next update sums the next micro-batches only
                a.assign(tf.zeros_like(a))
pred = np.argmax(model(x_test).numpy(), axis=1)
print("FINAL held-out accuracy", round(float((pred == y_test).mean()), 3))
