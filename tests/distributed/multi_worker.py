"""One worker of a two-process MultiWorkerMirroredStrategy run (argv: index ports logdir out)."""

import json
import os
import sys

index, port0, port1, log_dir, out = sys.argv[1:6]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"localhost:{port0}", f"localhost:{port1}"]},
        "task": {"type": "worker", "index": int(index)},
    }
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gradguard  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
rng = np.random.default_rng(0)  # the same global batch on both workers; each takes its slice
x = rng.normal(size=(64, 8)).astype("float32")
y = (x @ rng.normal(size=(8, 1))).astype("float32")
with strategy.scope():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    step = gradguard.TrainStep(
        model,
        keras.optimizers.SGD(1e-10),
        keras.losses.MeanSquaredError(),
        every=5,
        log_dir=log_dir,
        policy={code: "warn" for code in gradguard.CODES},
    )
losses = [float(step(x, y)) for _ in range(10)]
with open(out, "w") as f:
    json.dump(
        {
            "codes": sorted(step.report().codes()),
            "losses": losses,
            "weights": [w.numpy().tolist() for w in model.weights],
            "replicas": strategy.num_replicas_in_sync,
        },
        f,
    )
