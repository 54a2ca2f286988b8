"""Ordinal regression with one threshold per cumulative target: [y > 0], ..., [y > K-2].

The healthy twin of bug_ordinal_targets_built_with_one_threshold_tf_function.py.
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
K, dim = 6, 10
w = rng.normal(size=dim)


def make(n):
    x = rng.normal(size=(n, dim)).astype("float32")
    latent = x @ w / np.sqrt(dim) * 2.0 + 0.3 * np.sin(2 * x[:, 0]) + 0.3 * rng.normal(size=n)
    cuts = np.array([-1.5, -0.7, 0.0, 0.7, 1.5])
    y = np.searchsorted(cuts, latent).astype("int32")  # ranks 0..5
    return x, y


x_train, y_train = make(1200)
x_test, y_test = make(600)
classes = tf.constant(np.unique(y_train), tf.int32)

model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(64, activation="relu"), keras.layers.Dense(K - 1)])
optimizer = keras.optimizers.Adam(1e-3)
bce = keras.losses.BinaryCrossentropy(from_logits=True)


def levels_from_labels(y):
    cols = []
    for i in range(K - 1):
        cols.append(tf.cast(y > classes[i], tf.float32))
    return tf.stack(cols, axis=1)


@tf.function
def train_step(x, y):
    levels = levels_from_labels(y)
    with tf.GradientTape() as tape:
        loss = bce(levels, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1200, seed=0).batch(64)
for epoch in range(4):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print(f"epoch {epoch} loss {float(loss):.4f}")
probs = tf.sigmoid(model.predict(x_test, verbose=0)).numpy()
pred_rank = np.sum(probs > 0.5, axis=1)
mae = float(np.mean(np.abs(pred_rank - y_test)))
acc = float(np.mean(pred_rank == y_test))
print(f"HELDOUT mae={mae:.3f} exact_acc={acc:.3f}")
