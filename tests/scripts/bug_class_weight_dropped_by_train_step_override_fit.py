"""Bug: fit(class_weight=...) on a model whose train_step override never passes the weights on.

fit turns the class weights into per-example weights, handed to train_step as data[2]; this
override takes x and y only, so the rare class weighs no more than the common one and the
classifier keeps predicting the common class.

Source: https://github.com/tensorflow/tensorflow/issues/43902,
        https://github.com/keras-team/keras/issues/15119 (hunt33 b07)
expected: sample-weights-ignored
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
y = (rng.random(6000) < 0.06).astype("float32")
x = rng.normal(size=(6000, 10)).astype("float32")
x[:, :3] += y[:, None] * 1.2
x_train, y_train, x_test, y_test = x[:4500], y[:4500], x[4500:], y[4500:]


class WeightedModel(keras.Model):
    def train_step(self, data):
        x, y = data[0], data[1]
        sample_weight = None
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred, sample_weight=sample_weight)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


inputs = keras.Input((10,))
hidden = keras.layers.Dense(32, activation="relu")(inputs)
model = WeightedModel(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
model.loss_fn = keras.losses.BinaryCrossentropy()
model.compile(optimizer=keras.optimizers.Adam(1e-3))
negatives, positives = np.bincount(y_train.astype(int))
class_weight = {0: len(y_train) / (2 * negatives), 1: len(y_train) / (2 * positives)}
model.fit(x_train, y_train[:, None], batch_size=64, epochs=6, class_weight=class_weight, verbose=0)

predicted = model.predict(x_test, verbose=0)[:, 0] > 0.5
recall = [np.mean(predicted[y_test == 1]), np.mean(~predicted[y_test == 0])]
print(f"held-out balanced accuracy {np.mean(recall):.3f} (positives found {recall[0]:.2f})")
