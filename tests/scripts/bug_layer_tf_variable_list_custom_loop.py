"""Reported symptom: a custom Layer builds its parameters as plain tf.Variable objects (one attribute and
a list filled with append) and multiplies the input by them in call(); the variables are missing from
model.trainable_variables and keep their initial values while the rest of the model trains.
Under Keras 3 no tf.Variable attribute of a Layer is tracked at all. The custom loop differentiates
model.trainable_variables, so the polynomial coefficients are read in the forward pass (inside the
tape) but never differentiated nor handed to the optimizer.

Sources: https://github.com/tensorflow/tensorflow/issues/38211 ("Missing Trainable Variables and Variables")
         https://github.com/keras-team/keras/issues/16797 ("Unpredictable behaviour of tracked variables
         in subclassing layers and models": "untracked variables are not trained")
expected: variable-not-trained
"""
import numpy as np
import tensorflow as tf

np.random.seed(1)
tf.random.set_seed(1)


class PolyHead(tf.keras.layers.Layer):
    """y = c0 + c1*h + c2*h^2 + ... applied elementwise and summed."""

    def __init__(self, degree, **kwargs):
        super().__init__(**kwargs)
        self.degree = degree
        self.buildFoo(degree)

    def buildFoo(self, degree):
        self.c0 = tf.Variable(0.1, name="c0")
        self.coefs = []
        for it in range(degree):
            self.coefs.append(tf.Variable(0.1, name="c" + str(it + 1)))

    def call(self, h):
        out = self.c0
        power = tf.ones_like(h)
        for c in self.coefs:
            power = power * h
            out = out + c * power
        return tf.reduce_sum(out, axis=-1, keepdims=True)


class FooModel(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = tf.keras.layers.Dense(8, activation="tanh")
        self.head = PolyHead(3)

    def call(self, x):
        return self.head(self.hidden(x))


x = np.random.uniform(-1, 1, size=(2048, 4)).astype("float32")
y = (np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:2] ** 2 - x[:, 2:3] * x[:, 3:4]).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048, seed=1).batch(64)

model = FooModel()
optimizer = tf.keras.optimizers.Adam(1e-2)
loss_fn = tf.keras.losses.MeanSquaredError()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        pred = model(xb, training=True)
        loss = loss_fn(yb, pred)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(6):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print(f"epoch {epoch} loss {float(loss):.4f}")
print("trainable variables:", [v.name for v in model.trainable_variables])
print("coefficients (initialised to 0.1):", [round(float(c.numpy()), 4) for c in [model.head.c0, *model.head.coefs]])
