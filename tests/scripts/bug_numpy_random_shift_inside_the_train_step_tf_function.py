"""Bug: a random-shift augmentation drawn with np.random inside a tf.function training step.

NumPy runs only while the function is traced: the shift is a constant of the graph, every batch
is shifted the same way, and the model never sees signals at other offsets (held-out accuracy on
shifted signals 0.35 against 0.97 with tf.random.uniform, in the report's setting).

Source: https://github.com/tensorflow/tensorflow/issues/36715,
        https://github.com/tensorflow/tensorflow/pull/24610 (hunt33 b08)
expected: random-frozen-at-trace
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
templates = rng.normal(size=(4, 16)).astype("float32") * 1.5
labels = rng.integers(0, 4, size=512)
x = rng.normal(size=(512, 64)).astype("float32") * 0.5
x[:, :16] += templates[labels]
data = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(512, seed=0).batch(64)

model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, "relu"), keras.layers.Dense(4)])
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = keras.optimizers.Adam(1e-3)


@tf.function
def train_step(x, y):
    x = tf.roll(x, shift=np.random.randint(0, 24), axis=1)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(3):
    losses = [float(train_step(xb, yb)) for xb, yb in data]
    print(f"epoch {epoch} loss {np.mean(losses):.4f}")
