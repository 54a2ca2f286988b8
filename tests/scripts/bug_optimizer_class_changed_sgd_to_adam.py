"""Resume a run checkpointed with SGD (momentum 0.9) into Adam: TensorFlow says nothing.

Reconstructed from the resume discussion in https://github.com/keras-team/keras/issues/2378
("Not able to resume training after loading model + weights", where users go on training a
restored model with a different optimizer). The optimizer was switched between the save and the
resume. tf.train.Checkpoint pairs optimizer variables by position: one momentum slot lands in
Adam's first moment, the rest of SGD's state is dropped, SGD's learning rate (1e-2) replaces
Adam's 1e-3, and no warning is printed.
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

# The resume script was edited in between: Adam now.
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
print("resumed run loss", train(optimizer, 2))
