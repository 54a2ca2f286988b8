"""Classifier whose loss compares argmax(logits) with the labels: argmax has no gradient."""

import numpy as np
import tensorflow as tf

np.random.seed(3)
tf.random.set_seed(3)

n_classes = 3
x_train = np.concatenate(
    [np.random.randn(200, 2) + np.array(c) * 3 for c in [(0, 0), (1, 1), (0, 2)]]
).astype("float32")
y_train = np.repeat(np.arange(n_classes), 200).astype("int64")

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(n_classes),
    ]
)
optimizer = tf.keras.optimizers.SGD(learning_rate=0.1)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        predicted_class = tf.argmax(logits, axis=1)
        loss = tf.reduce_mean(tf.cast(tf.not_equal(predicted_class, y), tf.float32))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(600).batch(32)
for epoch in range(4):
    for x, y in train_ds:
        error_rate = train_step(x, y)
    print("epoch", epoch, "error rate", error_rate.numpy())
