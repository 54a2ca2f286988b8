"""Reported symptom: a subclassed keras.Model overrides train_step and computes
tf.reduce_mean(tf.square(y - y_pred)) itself; the labels are a flat vector, the model output is
(batch, 1); the loss is averaged over every (i, j) pair, the model learns only the mean of y and the
loss stays at the target's variance, while the same model with compile(loss="mse") fits.

Source: https://github.com/keras-team/keras/issues/16836 ("Loss is significantly worse when calculated
        manually in train_step compared to passed into model.compile"; the reduction: y_true of shape
        (80,) against y_pred of shape (80, 1) -- mean_squared_error broadcasts them to (80, 80))
expected: loss-broadcast
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
y = (x[:, 0] * 3.0 - x[:, 1] * x[:, 2] + 1.0).astype("float32")  # shape (2048,)
hist = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
print("y variance:", round(float(y.var()), 3))
print("loss per epoch:", [round(v, 3) for v in hist.history["loss"]])
pred = model.predict(x[:512], verbose=0)[:, 0]
print("true MSE on 512 samples:", round(float(np.mean((pred - y[:512]) ** 2)), 3))
