"""CLI contract: records sys.argv to argv[1], trains a few steps without applying, exits argv[2]."""

import json
import sys

import numpy as np
import tensorflow as tf

out_path, status = sys.argv[1], int(sys.argv[2])
with open(out_path, "w") as f:
    json.dump({"argv": sys.argv, "name": __name__}, f)

model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
x = np.ones((8, 3), "float32")
for _ in range(5):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - 1.0))
    grads = tape.gradient(loss, model.trainable_variables)  # never applied

sys.exit(status)
