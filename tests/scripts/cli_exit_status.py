"""CLI contract: records sys.argv to argv[1], trains a few steps without applying, exits argv[2].

First it configures TensorFlow's runtime, as scripts do before anything runs (GPU memory growth,
logical devices, threads), which TensorFlow refuses once the runtime has started.
"""

import json
import sys

import numpy as np
import tensorflow as tf

tf.config.threading.set_inter_op_parallelism_threads(2)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

out_path, status = sys.argv[1], int(sys.argv[2])
with open(out_path, "w") as f:
    configured = {"inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
    configured["logical_cpus"] = len(tf.config.list_logical_devices("CPU"))
    json.dump({"argv": sys.argv, "name": __name__, **configured}, f)

model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
x = np.ones((8, 3), "float32")
for _ in range(5):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - 1.0))
    grads = tape.gradient(loss, model.trainable_variables)  # never applied

sys.exit(status)
