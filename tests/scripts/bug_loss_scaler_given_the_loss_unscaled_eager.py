"""Reported symptom: a mixed-precision loop with LossScaleOptimizer "doesn't improve", run
eagerly (no tf.function, "easier to debug"). Keras 3's LossScaleOptimizer divides every
gradient by its loss scale (2**15 at first); the loop takes the gradient of the loss itself,
never of optimizer.scale_loss(loss), so every SGD update is 32768 times too small.

Source: https://github.com/keras-team/keras/issues/19244, keras#19479 (hunt18, hunt26 b13)
expected: update-too-small (naming the loss scale)
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
keras.mixed_precision.set_global_policy("mixed_float16")
rng = np.random.default_rng(0)
prototypes = rng.normal(size=(10, 32)).astype("float32")
y = rng.integers(0, 10, size=3000)
x = (prototypes[y] + rng.normal(size=(3000, 32))).astype("float32")
model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
        keras.layers.Activation("linear", dtype="float32"),
    ]
)
optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05, momentum=0.9))
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)  # meant: optimizer.scale_loss(loss)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


data = tf.data.Dataset.from_tensor_slices((x[:2500], y[:2500])).shuffle(2500, seed=0).batch(64)
for _ in range(3):
    for xb, yb in data:
        train_step(xb, yb)
accuracy = np.mean(np.argmax(model(x[2500:]).numpy(), axis=1) == y[2500:])
print(f"held-out accuracy {accuracy:.3f}")
