"""model.fit with a custom train_step that only applies gradients to the output layer."""

import numpy as np
import tensorflow as tf

np.random.seed(11)
tf.random.set_seed(11)


class Regressor(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden1 = tf.keras.layers.Dense(32, activation="relu")
        self.hidden2 = tf.keras.layers.Dense(32, activation="relu")
        self.out = tf.keras.layers.Dense(1)

    def call(self, inputs, training=False):
        return self.out(self.hidden2(self.hidden1(inputs)))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        # Bug: zips the full gradient list with the last layer's variables only.
        self.optimizer.apply_gradients(zip(grads[-2:], self.out.trainable_variables))
        return {"loss": loss}


x = np.random.uniform(-1, 1, size=(1024, 4)).astype("float32")
y = np.sin(2 * x[:, :1]) + x[:, 1:2] ** 2

model = Regressor()
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
model.fit(x, y, batch_size=32, epochs=4, verbose=2)
