"""Linear regression by hand: the gradients come back for [w, b] and are zipped with [b, w].

Both are scalars, so apply_gradients cannot tell: w moves by b's gradient and b by w's, and the
fit diverges. (Stack Overflow: "linear regression with GradientTape diverges".)
"""

import numpy as np
import tensorflow as tf

np.random.seed(6)
x_train = np.linspace(-1, 1, 256).astype("float32")
y_train = (3.0 * x_train + 2.0 + 0.1 * np.random.randn(256)).astype("float32")
w = tf.Variable(0.5, name="w")
b = tf.Variable(0.0, name="b")
optimizer = tf.keras.optimizers.SGD(learning_rate=0.05)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(y - (w * x + b)))
    grads = tape.gradient(loss, [w, b])
    optimizer.apply_gradients(zip(grads, [b, w]))  # the bug: not the order asked for
    return loss


dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(256, seed=6).batch(32)
for _ in range(12):
    for x, y in dataset:
        loss = train_step(x, y)
print("w", float(w), "b", float(b), "loss", float(loss))
