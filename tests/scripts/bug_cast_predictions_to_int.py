"""Counting regression: predictions are cast to int32 before the loss, so nothing trains."""

import numpy as np
import tensorflow as tf

np.random.seed(8)
tf.random.set_seed(8)

# Predict how many of 10 binary features are switched on.
x = (np.random.rand(1000, 10) > 0.5).astype(np.float32)
counts = x.sum(axis=1).astype(np.int32)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(32, activation="relu", input_shape=(10,)),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=0.001)
dataset = tf.data.Dataset.from_tensor_slices((x, counts)).shuffle(1000).batch(50)


@tf.function
def train_step(features, count):
    with tf.GradientTape() as tape:
        predicted = model(features, training=True)
        predicted_count = tf.cast(tf.squeeze(predicted, axis=-1), tf.int32)
        loss = tf.reduce_mean(tf.cast(tf.square(predicted_count - count), tf.float32))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


for epoch in range(3):
    for features, count in dataset:
        loss = train_step(features, count)
    print(f"Epoch {epoch + 1}: loss {loss:.3f}")
