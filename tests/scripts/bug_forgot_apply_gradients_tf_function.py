"""A @tf.function train step that returns the gradients and loss but never applies them."""

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(7)
features = rng.normal(size=(1024, 10)).astype(np.float32)
coef = rng.normal(size=(10, 1)).astype(np.float32)
targets = features @ coef + 0.05 * rng.normal(size=(1024, 1)).astype(np.float32)

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(10,)),
        tf.keras.layers.Dense(32, activation="tanh"),
        tf.keras.layers.Dense(1),
    ]
)
opt = tf.keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
mse = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(inputs, labels):
    with tf.GradientTape() as tape:
        preds = model(inputs, training=True)
        loss = mse(labels, preds)
    grads = tape.gradient(loss, model.trainable_variables)
    return loss, grads


dataset = tf.data.Dataset.from_tensor_slices((features, targets)).batch(32).repeat(5)
for i, (xb, yb) in enumerate(dataset):
    loss, grads = train_step(xb, yb)
    if i % 40 == 0:
        print(f"step {i}: loss={loss.numpy():.4f}")
