"""Saves three times through gradguard.checkpoint.Manager, killing itself in the third save.

Usage: python kill_save.py DIRECTORY REFERENCE_DIR POINT

A small model and Adam are trained a few steps before each save (max_to_keep=2), and what each
save holds is written to REFERENCE_DIR/ckpt-<n>.npz first, so that the test can check a restore
bit for bit. POINT chooses where the third save dies, by SIGKILL, the way a machine or a job
scheduler kills a process: ``<operation>:<k>`` kills it just before the k-th call (from 1) of
the operation in that save, among ``write`` (TensorFlow writing the staged checkpoint),
``fsync``, ``replace`` (a rename), ``remove`` and ``rmtree``. ``count`` kills nothing and
prints, as JSON, how many calls of each operation the third save made.
"""

import json
import os
import shutil
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gradguard.checkpoint import Manager  # noqa: E402

directory, reference, point = sys.argv[1], sys.argv[2], sys.argv[3]
target, _, nth = point.partition(":")
calls = {"write": 0, "fsync": 0, "replace": 0, "remove": 0, "rmtree": 0}
armed = False


def watched(operation, original):
    def call(*args, **kwargs):
        if armed:
            calls[operation] += 1
            if operation == target and calls[operation] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    return call


os.fsync = watched("fsync", os.fsync)
os.replace = watched("replace", os.replace)
os.remove = watched("remove", os.remove)
shutil.rmtree = watched("rmtree", shutil.rmtree)

keras.utils.set_random_seed(5)
rng = np.random.default_rng(5)
x = rng.normal(size=(64, 8)).astype("float32")
y = rng.normal(size=(64, 1)).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(1e-2)
manager = Manager(directory, max_to_keep=2, model=model, optimizer=optimizer)
inner_write = manager._write
manager._write = watched("write", inner_write)

for number in (1, 2, 3):
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    arrays = [v.numpy() for v in [*model.weights, *optimizer.variables]]
    np.savez(os.path.join(reference, f"ckpt-{number}.npz"), *arrays)
    armed = number == 3
    manager.save()
    armed = False
print(json.dumps(calls), flush=True)
