"""Reported symptom: a subclassed model whose call() feeds the *input* x to every layer instead of the
previous output; an eager GradientTape loop prints Keras' "Gradients do not exist for variables
[linear1/kernel, ...]" warning, the first three layers never change and the model is only as good as
a single linear layer.
The bug: a layer skipped by a wiring mistake: partially disconnected variables in an eager loop.

Source: https://github.com/tensorflow/tensorflow/issues/36880 ("No gradients for bias and kernels in
        Dense layer"; maintainer answer: "Your model's call method returns the output of layer4(x),
        meaning that the first three layers have no effect on the predictions")
expected: none-gradient
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
        output = self.linear2(x)
        output = self.linear3(x)
        output = self.linear4(x)
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
print("linear1 kernel gradient is None:", gradients[0] is None)
