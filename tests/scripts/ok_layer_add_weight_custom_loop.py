"""Healthy twin: the same polynomial head, its coefficients created with add_weight, trained by a
tf.function custom loop; every coefficient moves and the loss falls.

Sources: https://github.com/keras-team/keras/issues/16797 (the fix the reporter notes: "If instead of
         tf.Variable you use self.add_weight, it works in every case")
         https://github.com/tensorflow/tensorflow/issues/38211
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(1)
tf.random.set_seed(1)


class PolyHead(tf.keras.layers.Layer):
    def __init__(self, degree, **kwargs):
        super().__init__(**kwargs)
        self.degree = degree

    def build(self, input_shape):
        self.c0 = self.add_weight(name="c0", shape=(), initializer=tf.keras.initializers.Constant(0.1))
        self.coefs = [
            self.add_weight(name=f"c{i + 1}", shape=(), initializer=tf.keras.initializers.Constant(0.1))
            for i in range(self.degree)
        ]

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
print("coefficients (initialised to 0.1):", [round(float(c.numpy()), 4) for c in [model.head.c0, *model.head.coefs]])
