"""Healthy twin: the same loop, its loss told that the model's plain Dense output is logits
(SparseCategoricalCrossentropy(from_logits=True)), as in TensorFlow's custom training
walkthrough.

expected: silent
"""

import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 20)).astype("float32")
y = np.argmax(x @ rng.normal(size=(20, 5)), axis=1).astype("int32")
dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2000, seed=0).batch(32)

model = keras.Sequential(
    [keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(5)]
)
optimizer = keras.optimizers.Adam(1e-3)
loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(features, labels):
    with tf.GradientTape() as tape:
        loss = loss_object(labels, model(features, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(4):
    for features, labels in dataset:
        loss = train_step(features, labels)
    accuracy = np.mean(np.argmax(model(x), axis=1) == y)
    print(f"epoch {epoch}: loss {float(loss):.3f}, accuracy {accuracy:.3f}")
