"""Hand-written MSE in a @tf.function loop with labels (n,) against predictions (n, 1)."""

import numpy as np
import tensorflow as tf

np.random.seed(29)
tf.random.set_seed(29)

# Boston-housing-like regression: 13 features, one target per row, stored as a flat vector.
x_train = np.random.randn(800, 13).astype("float32")
y_train = (x_train @ np.random.randn(13) * 2.0 + 20.0).astype("float32")  # shape (800,)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(64, activation="relu", input_shape=(13,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)


def mse_loss(y_true, y_pred):
    return tf.reduce_mean(tf.square(y_true - y_pred))


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = mse_loss(y, y_pred)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(800).batch(32)
for epoch in range(6):
    for x, y in train_ds:
        loss = train_step(x, y)
    print(f"epoch {epoch} mse {loss.numpy():.2f}")
