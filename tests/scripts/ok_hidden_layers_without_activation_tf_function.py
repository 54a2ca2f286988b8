"""Healthy twin of bug_hidden_layers_without_activation_tf_function.py: the hidden Dense layers
have activation="relu", so the network can fit the curved target.

expected: silent
"""
import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(31)
x = rng.uniform(-2, 2, size=(4000, 6)).astype("float32")
y = np.sin(2 * x[:, :1]) * x[:, 1:2] + np.abs(x[:, 2:3]) + 0.05 * rng.normal(size=(4000, 1))
y = y.astype("float32")
x_train, y_train, x_test, y_test = x[:3200], y[:3200], x[3200:], y[3200:]

keras.utils.set_random_seed(31)
activation = "relu"  # the fix
model = keras.Sequential(
    [
        keras.Input((6,)),
        keras.layers.Dense(64, activation=activation),
        keras.layers.Dense(64, activation=activation),
        keras.layers.Dense(1),
    ]
)
optimizer = keras.optimizers.Adam(2e-3)
loss_fn = keras.losses.MeanSquaredError()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(3200, seed=0).batch(32)
for epoch in range(6):
    for xb, yb in dataset:
        loss = train_step(xb, yb)
    print(f"epoch {epoch}: loss {float(loss):.4f}")
pred = model(x_test).numpy()
print(f"test R^2 {1 - np.mean((pred - y_test) ** 2) / np.var(y_test):.3f}")
