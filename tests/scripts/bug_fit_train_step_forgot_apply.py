"""model.fit with a custom train_step override that forgets to apply the gradients."""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(3)


class CustomModel(keras.Model):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        # Update weights -- forgotten: self.optimizer.apply_gradients(zip(gradients, ...))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        logs = {m.name: m.result() for m in self.metrics}
        logs["grad_norm"] = tf.linalg.global_norm(gradients)
        return logs


inputs = keras.Input(shape=(32,))
hidden = keras.layers.Dense(32, activation="relu")(inputs)
outputs = keras.layers.Dense(1)(hidden)
model = CustomModel(inputs, outputs)
model.compile(optimizer="adam", loss="mse", metrics=["mae"])

x = np.random.random((1000, 32)).astype("float32")
y = np.random.random((1000, 1)).astype("float32")
model.fit(x, y, epochs=3, batch_size=32, verbose=2)
