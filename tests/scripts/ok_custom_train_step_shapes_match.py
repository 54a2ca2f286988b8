"""Healthy twin of the bug reported in the source below: the same training, done right.

Source: https://github.com/keras-team/keras/issues/16836 (healthy twin: labels reshaped to (n, 1) so
        y and y_pred have the same shape in the hand-written train_step)
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(22)
tf.random.set_seed(22)


class CustomModel(keras.Model):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = tf.reduce_mean(tf.square(y - y_pred))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


inputs = keras.Input(shape=(8,))
h = keras.layers.Dense(32, activation="relu")(inputs)
outputs = keras.layers.Dense(1)(h)
model = CustomModel(inputs, outputs)
model.loss_tracker = keras.metrics.Mean(name="loss")
model.compile(optimizer=keras.optimizers.Adam(3e-3))

x = np.random.randn(2048, 8).astype("float32")
y = (x[:, 0] * 3.0 - x[:, 1] * x[:, 2] + 1.0).astype("float32").reshape(-1, 1)
hist = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
print("y variance:", round(float(y.var()), 3))
print("loss per epoch:", [round(v, 3) for v in hist.history["loss"]])
