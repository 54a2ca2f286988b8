"""Hand-written cross-entropy with tf.math.log(y_pred) and no epsilon: log(0) gives NaN."""

import numpy as np
import tensorflow as tf

np.random.seed(23)
tf.random.set_seed(23)

num_classes = 10
x_train = np.random.rand(2000, 64).astype("float32") * 255.0  # forgot to divide by 255
y_train = np.random.randint(0, num_classes, size=2000)
y_onehot = tf.one_hot(y_train, num_classes)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(num_classes, activation="softmax"),
    ]
)
optimizer = tf.keras.optimizers.Adam(1e-3)


def cross_entropy(y_true, y_pred):
    return -tf.reduce_mean(tf.reduce_sum(y_true * tf.math.log(y_pred), axis=1))


train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_onehot)).batch(100)

for epoch in range(3):
    for xb, yb in train_ds:
        with tf.GradientTape() as tape:
            loss = cross_entropy(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    print("epoch", epoch, "loss", loss.numpy())
