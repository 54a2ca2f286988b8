"""Healthy twin of bug_triplet_distances_summed_over_the_batch_tf_function.py: one distance
per triplet (axis=-1), the hinge taken per triplet.

expected: silent
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
prototypes = rng.normal(size=(8, 6)).astype("float32")


def make(n):
    y = rng.integers(0, 8, size=n)
    signal = prototypes[y] + rng.normal(0, 0.5, size=(n, 6))
    return np.concatenate([signal, rng.normal(0, 2.0, size=(n, 24))], 1).astype("float32"), y


x, y = make(3000)
x_test, y_test = make(600)
by_class = [np.flatnonzero(y == c) for c in range(8)]
positive = np.array([rng.choice(by_class[c]) for c in y])
negative = np.array([rng.choice(by_class[(c + rng.integers(1, 8)) % 8]) for c in y])
model = keras.Sequential(
    [keras.Input((30,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(8)]
)
optimizer = keras.optimizers.Adam(1e-2)


def triplet_loss(anchor, positive, negative, alpha=0.2):
    pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
    neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
    return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))


@tf.function
def train_step(a, p, n):
    with tf.GradientTape() as tape:
        embed = [tf.math.l2_normalize(model(t, training=True), axis=-1) for t in (a, p, n)]
        loss = triplet_loss(*embed)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for _ in range(4):
    order = rng.permutation(len(x))
    for batch in np.array_split(order, len(x) // 64):
        train_step(x[batch], x[positive[batch]], x[negative[batch]])
train_embed, test_embed = model(x).numpy(), model(x_test).numpy()
nearest = np.argmax(test_embed @ train_embed.T / np.linalg.norm(train_embed, axis=1), axis=1)
print(f"1-NN accuracy {np.mean(y[nearest] == y_test):.3f}")
