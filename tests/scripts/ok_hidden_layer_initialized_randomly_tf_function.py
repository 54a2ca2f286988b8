"""Healthy twin of bug_hidden_layer_initialized_to_zeros_tf_function: the kernels start from
small random values, so every hidden unit gets its own gradient from the first step.
"""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
prototypes = rng.normal(size=(10, 64)).astype("float32")
y = rng.integers(0, 10, size=3000)
x = (prototypes[y] + rng.normal(size=(3000, 64))).astype("float32")

w1 = tf.Variable(tf.random.normal([64, 100], stddev=0.1))
b1 = tf.Variable(tf.zeros([100]))
w2 = tf.Variable(tf.random.normal([100, 10], stddev=0.1))
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
