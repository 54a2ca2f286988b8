"""Stage 2 restores the pre-trained model, then compiles it to fine-tune at 1e-5: it trains at 1e-3.

Reconstructed from https://github.com/tensorflow/tensorflow/issues/33842 (the optimizer state a
checkpoint restore brings back overrides the one given to compile), in the order the TF
checkpoint guide teaches: build, restore(manager.latest_checkpoint), then compile and fit. The
checkpoint of a compiled model holds its optimizer; TensorFlow restores it into the optimizer
compile attaches later (deferred), learning rate included, so the 1e-5 asked for is gone.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(3)
x = np.random.randn(512, 12).astype("float32")
w = np.random.randn(12, 1).astype("float32")
y_source = (x @ w > 0).astype("float32")
y_target = (x @ (w + 0.3 * np.random.randn(12, 1)) > 0).astype("float32")


def build():
    return keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )


loss = keras.losses.BinaryCrossentropy(from_logits=True)
directory = os.path.join(tempfile.mkdtemp(), "pretrain")

# Stage 1: pre-train at 1e-3 and keep checkpoints.
model = build()
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
model.fit(x, y_source, batch_size=32, epochs=2, verbose=0)
tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory, max_to_keep=1).save()

# Stage 2: a fresh model restored from the latest checkpoint, fine-tuned gently.
model = build()
manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory, max_to_keep=1)
manager.checkpoint.restore(manager.latest_checkpoint)
model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss)
history = model.fit(x, y_target, batch_size=32, epochs=2, verbose=0)
print("stage 2 loss", history.history["loss"][-1])
print("fine-tuned at learning rate", float(model.optimizer.learning_rate))
