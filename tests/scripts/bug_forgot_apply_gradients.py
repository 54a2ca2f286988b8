"""Eager custom loop that computes gradients but never calls optimizer.apply_gradients."""

import numpy as np
import tensorflow as tf

np.random.seed(1)
tf.random.set_seed(1)

# Two-class toy problem: is the point inside the unit circle?
x = np.random.uniform(-1.5, 1.5, size=(600, 2)).astype("float32")
y = (np.sum(x**2, axis=1) < 1.0).astype("float32").reshape(-1, 1)

train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(600, seed=1).batch(64)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(16, activation="relu", input_shape=(2,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=0.01)
bce = tf.keras.losses.BinaryCrossentropy()
train_acc = tf.keras.metrics.BinaryAccuracy()

for epoch in range(6):
    train_acc.reset_state()
    for xb, yb in train_ds:
        with tf.GradientTape() as tape:
            probs = model(xb, training=True)
            loss = bce(yb, probs)
        grads = tape.gradient(loss, model.trainable_weights)
        # TODO: update the weights
        train_acc.update_state(yb, probs)
    print("epoch", epoch, "loss", float(loss), "acc", float(train_acc.result()))
