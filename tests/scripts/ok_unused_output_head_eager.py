"""Healthy eager loop on a two-output model whose second output is not part of the loss yet."""

import numpy as np
import tensorflow as tf

np.random.seed(14)
tf.random.set_seed(14)


class TwoHeads(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.body = tf.keras.layers.Dense(24, activation="relu")
        self.classify = tf.keras.layers.Dense(2)
        self.regress = tf.keras.layers.Dense(1)

    def call(self, x):
        h = self.body(x)
        return self.classify(h), self.regress(h)


model = TwoHeads()
x = np.random.randn(512, 6).astype("float32")
labels = (x[:, 0] > 0).astype("int32")

optimizer = tf.keras.optimizers.SGD(learning_rate=0.05)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

for epoch in range(6):
    for start in range(0, 512, 32):
        xb, yb = x[start : start + 32], labels[start : start + 32]
        with tf.GradientTape() as tape:
            logits, _ = model(xb)
            loss = loss_fn(yb, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        # Keras skips (and warns about) variables without a gradient: the regression head.
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    print("epoch", epoch, "loss", float(loss))
