"""Healthy linear regression by hand: w.assign_sub(lr * grad) on tf.Variables, no optimizer."""

import numpy as np
import tensorflow as tf

TRUE_W, TRUE_B = 3.0, 2.0
NUM_EXAMPLES = 201

x = tf.linspace(-2.0, 2.0, NUM_EXAMPLES)
noise = tf.constant(np.random.default_rng(0).normal(size=NUM_EXAMPLES).astype(np.float32))
y = x * TRUE_W + TRUE_B + noise


class MyModel(tf.Module):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.w = tf.Variable(5.0)
        self.b = tf.Variable(0.0)

    def __call__(self, x):
        return self.w * x + self.b


def loss(target_y, predicted_y):
    return tf.reduce_mean(tf.square(target_y - predicted_y))


def train(model, x, y, learning_rate):
    with tf.GradientTape() as t:
        current_loss = loss(y, model(x))
    dw, db = t.gradient(current_loss, [model.w, model.b])
    model.w.assign_sub(learning_rate * dw)
    model.b.assign_sub(learning_rate * db)


model = MyModel()
for epoch in range(60):
    train(model, x, y, learning_rate=0.1)
    if epoch % 10 == 0:
        print(f"Epoch {epoch:2d}: W={model.w.numpy():1.2f} b={model.b.numpy():1.2f}")
print("final loss", float(loss(y, model(x))))
