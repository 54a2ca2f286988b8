"""Resume a run checkpointed with SGD (momentum 0.9) into the same SGD: a true resume.

Healthy twin of bug_optimizer_class_changed_sgd_to_adam.py (the resume discussion in
https://github.com/keras-team/keras/issues/2378): the resumed run builds the optimizer it was
saved with, so the momentum, learning rate and iteration count carry over as they were.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(43)
x = np.random.randn(512, 8).astype("float32")
y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2]).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input((8,)),
        tf.keras.layers.Dense(32, activation="tanh"),
        tf.keras.layers.Dense(1),
    ]
)


def train(optimizer, epochs):
    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(epochs):
        for xb, yb in tf.data.Dataset.from_tensor_slices((x, y)).batch(32):
            loss = step(xb, yb)
    return float(loss)


optimizer = tf.keras.optimizers.SGD(learning_rate=1e-2, momentum=0.9)
print("first run loss", train(optimizer, 3))
path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
    os.path.join(tempfile.mkdtemp(), "ckpt")
)

# The resume script builds the same optimizer again.
optimizer = tf.keras.optimizers.SGD(learning_rate=1e-2, momentum=0.9)
tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
print("resumed run loss", train(optimizer, 2))
