"""Twin of bug_persistent_tape_reused_for_k_updates_tf_function: four updates per batch, each
from a tape that records the loss anew at the weights the update before made.
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(1)
rng = np.random.default_rng(1)
w_true = rng.normal(size=(16, 32)).astype("float32") / 4
v_true = rng.normal(size=(32, 1)).astype("float32") / 4


def make(n):
    x = rng.normal(size=(n, 16)).astype("float32")
    return x, (np.tanh(x @ w_true) @ v_true + 0.05 * rng.normal(size=(n, 1))).astype("float32")


(x_tr, y_tr), (x_te, y_te) = make(1024), make(1000)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(0.02, momentum=0.9)


@tf.function
def train_on_batch(x, y):
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(1024, seed=1).batch(128)
for _ in range(15):
    for x, y in ds:
        train_on_batch(x, y)
print("FINAL held-out MSE", float(np.mean((model.predict(x_te, verbose=0) - y_te) ** 2)))
