"""Reported symptom: "the loss jumps every time my job is restarted". The custom loop saves the
model and its epoch counter, but not the optimizer: each resume goes on with the trained model
while a new Adam starts from step 0, its decaying learning-rate schedule back at its peak.

Source: https://www.tensorflow.org/guide/checkpoint (Checkpoint(step=..., optimizer=...,
        net=...), CheckpointManager), hunt27 b03
expected: checkpoint-missing-variables
"""
import tempfile

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 10)).astype("float32")
y = np.tanh(x @ rng.normal(size=(10, 1))).astype("float32")
directory = tempfile.mkdtemp()


def job(last_epoch):
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=60, decay_rate=0.5)
    optimizer = keras.optimizers.Adam(schedule)
    epoch = tf.Variable(0)
    checkpoint = tf.train.Checkpoint(model=model, epoch=epoch)  # BUG: optimizer not saved
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    checkpoint.restore(manager.latest_checkpoint)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    while int(epoch) < last_epoch:
        for xb, yb in tf.data.Dataset.from_tensor_slices((x, y)).batch(32):
            loss = step(xb, yb)
        epoch.assign_add(1)
        manager.save()
    print(f"epoch {int(epoch)} loss {float(loss):.4f}")


keras.utils.set_random_seed(0)
job(3)  # first run
job(4)  # restarted
