"""House-price regression on unscaled features with SGD: the gradients blow up."""

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(42)
n = 1000
sqft = rng.uniform(500, 3500, n)
bedrooms = rng.integers(1, 6, n)
age = rng.uniform(0, 80, n)
features = np.stack([sqft, bedrooms, age], axis=1).astype(np.float32)
price = (150 * sqft + 10000 * bedrooms - 500 * age + rng.normal(0, 20000, n)) / 1000.0
price = price.astype(np.float32).reshape(-1, 1)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(32, activation="relu", input_shape=(3,)),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.SGD(learning_rate=1e-4)
mse = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = mse(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((features, price)).shuffle(n).batch(32)
for epoch in range(3):
    for x, y in ds:
        loss = train_step(x, y)
    print("epoch", epoch, "mse", float(loss))
