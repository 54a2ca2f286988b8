"""Healthy twin of bug_model_called_without_training_true_batchnorm_tf_function: the step
calls model(x, training=True), so BatchNormalization normalizes with the batch's statistics
and updates its moving ones, and dropout drops.
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
x = (rng.normal(size=(2048, 20)) * 5 + 3).astype("float32")
y = np.argmax((x - 3) @ rng.normal(size=(20, 4)) + rng.normal(size=(2048, 4)), axis=1)
model = keras.Sequential(
    [
        keras.Input((20,)),
        keras.layers.Dense(64),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(4),
    ]
)
optimizer = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048, seed=0).batch(32)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for _ in range(3):
    for xb, yb in dataset:
        loss = train_step(xb, yb)
print(f"loss {float(loss):.3f}")
