"""Healthy twin: the checkpoint guide's idiom on a first run. There is no checkpoint yet, so
latest_checkpoint is None and checkpoint.restore(None) restores nothing, on purpose; the loop
then trains from scratch and saves as it goes.

Source: https://www.tensorflow.org/guide/checkpoint ("Initializing from scratch.")
expected: silent
"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(2500, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
optimizer = keras.optimizers.Adam(1e-3)
checkpoint = tf.train.Checkpoint(step=tf.Variable(0), model=model, optimizer=optimizer)
manager = tf.train.CheckpointManager(checkpoint, os.path.join(tempfile.mkdtemp(), "tf_ckpts"), 3)
checkpoint.restore(manager.latest_checkpoint)
print("Restored from", manager.latest_checkpoint or "nothing: initializing from scratch.")


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for xb, yb in tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2500, seed=0).repeat(3).batch(32):
    loss = train_step(xb, yb)
    checkpoint.step.assign_add(1)
    if int(checkpoint.step) % 100 == 0:
        manager.save()
print(f"loss {float(loss):.4f}")
