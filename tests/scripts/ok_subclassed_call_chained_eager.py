"""Healthy twin: the same subclassed model in an eager GradientTape loop, layers chained; all learn.

Source: https://github.com/tensorflow/tensorflow/issues/36880 (healthy twin: the maintainer's fix,
        each layer fed the previous layer's output)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(5)
tf.random.set_seed(5)


class Net(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.linear1 = tf.keras.layers.Dense(32, activation="relu")
        self.linear2 = tf.keras.layers.Dense(32, activation="relu")
        self.linear3 = tf.keras.layers.Dense(32, activation="relu")
        self.linear4 = tf.keras.layers.Dense(1)

    def call(self, x):
        output = self.linear1(x)
        output = self.linear2(output)
        output = self.linear3(output)
        output = self.linear4(output)
        return output


x = np.random.uniform(-2, 2, size=(1024, 5)).astype("float32")
y = (np.sin(x[:, :1]) * x[:, 1:2] + np.abs(x[:, 2:3])).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024, seed=5).batch(32)

model = Net()
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
loss_object = tf.keras.losses.MeanSquaredError()

for epoch in range(5):
    total = 0.0
    n = 0
    for xb, yb in ds:
        with tf.GradientTape() as tape:
            pred = model(xb)
            loss = loss_object(yb, pred)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        total += float(loss)
        n += 1
    print(f"epoch {epoch} mean loss {total / n:.4f}")
