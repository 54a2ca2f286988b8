"""Stage 2 fine-tunes at 1e-5 after stage 1 at 1e-3, but the restore puts 1e-3 back.

Reconstructed from https://github.com/tensorflow/tensorflow/issues/33842 ("Optimizer state gets
automatically restored when loading weights from checkpoint and doesnt change when you compile
the model"). The learning rate of a Keras 3 optimizer is a variable, saved in the checkpoint:
tf.train.Checkpoint(...).restore() silently overwrites the 1e-5 the new optimizer was built with,
and the whole fine-tuning stage runs at the pre-training rate.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(42)
x = np.random.randn(512, 12).astype("float32")
w = np.random.randn(12, 1).astype("float32")
y_source = (x @ w > 0).astype("float32")
y_target = (x @ (w + 0.3 * np.random.randn(12, 1)) > 0).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input((12,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
bce = tf.keras.losses.BinaryCrossentropy()


def make_step(optimizer):
    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = bce(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def train(step, labels, epochs):
    data = tf.data.Dataset.from_tensor_slices((x, labels)).batch(32)
    for _ in range(epochs):
        for xb, yb in data:
            loss = step(xb, yb)
    return float(loss)


# Stage 1: pre-train at 1e-3 and checkpoint.
optimizer = tf.keras.optimizers.Adam(1e-3)
print("stage 1 loss", train(make_step(optimizer), y_source, 3))
path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
    os.path.join(tempfile.mkdtemp(), "stage1")
)

# Stage 2: resume from the checkpoint and fine-tune gently.
optimizer = tf.keras.optimizers.Adam(1e-5)
tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
print("stage 2 loss", train(make_step(optimizer), y_target, 2))
print("fine-tuned at learning rate", float(optimizer.learning_rate))
