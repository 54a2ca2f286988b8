"""HEALTHY TWIN of bug_numpy_batch_drawn_in_tf_function.py: the indices drawn with
tf.random.uniform, anew on every step. Otherwise identical. A tool should stay silent."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d, K = 4000, 20, 5
w = rng.normal(size=(d, K))
x = rng.normal(size=(n, d)).astype("float32")
y = (np.tanh(x @ w) + 0.3 * (x[:, :K] ** 2)).argmax(1).astype("int32")
x_tr, y_tr, x_te, y_te = tf.constant(x[:3000]), tf.constant(y[:3000]), x[3000:], y[3000:]

model = keras.Sequential(
    [keras.Input((d,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(K)]
)
opt = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step():
    idx = tf.random.uniform([64], 0, 3000, dtype=tf.int32)
    xb, yb = tf.gather(x_tr, idx), tf.gather(y_tr, idx)
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for _ in range(1500):
    train_step()
acc = (model.predict(x_te, verbose=0).argmax(1) == y_te).mean()
print("FINAL held-out accuracy", round(float(acc), 3))
