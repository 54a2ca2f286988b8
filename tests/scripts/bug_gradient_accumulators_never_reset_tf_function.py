"""BUG: gradient accumulation over 4 micro-batches in a hand-written loop whose accumulators are
never set back to zero after an update. Each update applies the sum of every gradient since the
start: the applied gradient grows with every update (norm 0.8 at the first, 20 by the 100th),
and the model learns far less (held-out accuracy about 0.64 against 0.80 with the reset).
Source: the classic accumulation mistake (PyTorch's forgotten zero_grad(); TensorFlow versions
in "gradient accumulation with custom training loop" answers that reset with assign); found by
hunt8. A tool should say: the accumulators are never reset."""
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
            apply_accumulated()  # BUG: the accumulators are never set back to zero
pred = np.argmax(model(x_test).numpy(), axis=1)
print("FINAL held-out accuracy", round(float((pred == y_test).mean()), 3))
