"""Saves twice through gradguard.checkpoint.Manager; the test SIGKILLs it during the second save.

Usage: python crash_save.py DIRECTORY NUM_FLOATS
The first save holds 1.0 everywhere, the second 2.0. "saving 2" is printed just before the second
save starts, so the test knows when to watch for its temporary files.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from gradguard.checkpoint import Manager  # noqa: E402

directory, size = sys.argv[1], int(sys.argv[2])
blob = tf.Variable(tf.fill([size], 1.0))
step = tf.Variable(1, dtype=tf.int64)
manager = Manager(directory, max_to_keep=3, blob=blob, step=step)
manager.save()
blob.assign(tf.fill([size], 2.0))
step.assign(2)
print("saving 2", flush=True)
manager.save()
print("saved 2", flush=True)
