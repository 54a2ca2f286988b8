"""Reported symptom: a two-layer network written with raw variables (the softmax tutorial's
tf.zeros initialization, extended by a hidden layer) learns far slower than expected and ends
well short of a linear model's accuracy. Every hidden unit starts at zero and gets the same
gradient, so the layer learns as one unit; rounding parts the units only after hundreds of
steps (their spread doubling every 10 or so from 1e-8).

Source: https://github.com/tensorflow/tensorflow/issues/3916 (hunt17)
expected: units-identical
"""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
prototypes = rng.normal(size=(10, 64)).astype("float32")
y = rng.integers(0, 10, size=3000)
x = (prototypes[y] + rng.normal(size=(3000, 64))).astype("float32")

w1 = tf.Variable(tf.zeros([64, 100]))  # meant: tf.random.normal([64, 100], stddev=0.1)
b1 = tf.Variable(tf.zeros([100]))
w2 = tf.Variable(tf.zeros([100, 10]))
b2 = tf.Variable(tf.zeros([10]))
params = [w1, b1, w2, b2]
optimizer = tf.keras.optimizers.SGD(0.5)


def forward(x):
    return tf.matmul(tf.nn.sigmoid(tf.matmul(x, w1) + b1), w2) + b2


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = forward(x)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        )
    optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
    return loss


data = tf.data.Dataset.from_tensor_slices((x, y.astype("int32"))).shuffle(3000, seed=0).batch(100)
for _ in range(10):
    for xb, yb in data:
        loss = train_step(xb, yb)
print(f"loss {float(loss):.3f}")
