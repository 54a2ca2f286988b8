"""Resume from a .keras archive with model.load_weights() into a freshly compiled model.

Reconstructed from https://github.com/keras-team/keras/issues/20128 (Keras 3 prints "Skipping
variable loading for optimizer 'adam', because it has ... variables whereas the saved optimizer
has ... variables"). The archive holds the optimizer's state, but the rebuilt model's optimizer has
not been built yet, so Keras skips every saved optimizer value: Adam's moments and its iteration
count start from zero, and only a UserWarning says so.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(44)
x = np.random.randn(512, 16).astype("float32")
y = np.argmax(x[:, :4] + 0.1 * np.random.randn(512, 4), axis=1)


def build():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((16,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(4),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


path = os.path.join(tempfile.mkdtemp(), "model.keras")
model = build()
model.fit(x, y, epochs=3, batch_size=32, verbose=0)
model.save(path)

# The resume script: the same architecture, compiled, then the archive's weights.
model = build()
model.load_weights(path)
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
print("resumed at iteration", int(model.optimizer.iterations))
