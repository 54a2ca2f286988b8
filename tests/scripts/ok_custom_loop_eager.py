"""A plain healthy eager custom training loop on a small regression MLP."""

import numpy as np
import tensorflow as tf

np.random.seed(0)
tf.random.set_seed(0)

x_train = np.random.randn(512, 8).astype("float32")
true_w = np.random.randn(8, 1).astype("float32")
y_train = (x_train @ true_w + 0.1 * np.random.randn(512, 1)).astype("float32")

dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(512).batch(32)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Input(shape=(8,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
loss_fn = tf.keras.losses.MeanSquaredError()
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)

for epoch in range(8):
    epoch_loss = tf.keras.metrics.Mean()
    for x_batch, y_batch in dataset:
        with tf.GradientTape() as tape:
            predictions = model(x_batch, training=True)
            loss = loss_fn(y_batch, predictions)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        epoch_loss.update_state(loss)
    print(f"epoch {epoch}: loss {epoch_loss.result():.4f}")
