"""Encoder + classifier in an eager loop, but only the classifier's variables are applied."""

import numpy as np
import tensorflow as tf

np.random.seed(0)
tf.random.set_seed(0)

num_classes = 4
x_train = np.random.randn(800, 20).astype("float32")
centers = np.random.randn(num_classes, 20).astype("float32") * 2
y_train = np.argmax(x_train @ centers.T, axis=1).astype("int64")

encoder = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(32, activation="relu"),
    ],
    name="encoder",
)
classifier = tf.keras.Sequential([tf.keras.layers.Dense(num_classes)], name="classifier")

loss_object = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = tf.keras.optimizers.Adam(1e-3)

ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(800).batch(32)

for epoch in range(5):
    for images, labels in ds:
        with tf.GradientTape() as tape:
            features = encoder(images, training=True)
            logits = classifier(features, training=True)
            loss = loss_object(labels, logits)
        variables = encoder.trainable_variables + classifier.trainable_variables
        gradients = tape.gradient(loss, variables)
        # Bug: only the classifier's half of the gradients reaches the optimizer.
        n_enc = len(encoder.trainable_variables)
        optimizer.apply_gradients(zip(gradients[n_enc:], classifier.trainable_variables))
    print("epoch", epoch, "loss", loss.numpy())
