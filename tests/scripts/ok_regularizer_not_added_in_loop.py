"""OK twin of bug_regularizer_not_added_in_loop.py: the loss adds model.losses, the L1
penalty of the first layer."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
D, K = 400, 8
w_true = np.zeros(D, np.float32)
w_true[:K] = rng.normal(0, 1, K)


def make(n):
    x = rng.normal(0, 1, (n, D)).astype(np.float32)
    return x, (x @ w_true + 0.3 * rng.normal(0, 1, n) > 0).astype(np.int32)


x_tr, y_tr = make(120)
x_te, y_te = make(1000)
model = keras.Sequential([
    keras.Input((D,)),
    keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L1(3e-3)),
    keras.layers.Dense(2),
])
opt = keras.optimizers.Adam(3e-3)
ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ds = tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(120, seed=0).batch(24)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = ce(yb, model(xb, training=True)) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))


for _ in range(60):
    for xb, yb in ds:
        train_step(xb, yb)
acc = np.mean(np.argmax(model.predict(x_te, verbose=0), 1) == y_te)
print("held-out accuracy:", acc)
