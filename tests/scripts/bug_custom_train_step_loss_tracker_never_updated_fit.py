"""A custom train_step returns a loss tracker it never updates: fit logs 0.0, EarlyStopping stops.

Reconstructed from keras-team/keras reports ("custom train_step: loss shows 0.0000 and
EarlyStopping stops after patience epochs"): Keras 3's pattern of a keras.metrics.Mean loss
tracker, returned by train_step but never given update_state(loss). fit logs 0.0 at every
epoch, EarlyStopping(monitor="loss") sees no improvement and stops the run early.
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d, k = 2000, 20, 4
centers = rng.normal(size=(k, d)) * 0.6
y_all = rng.integers(0, k, n)
X = (centers[y_all] + rng.normal(size=(n, d))).astype("float32")
x_tr, y_tr, x_te, y_te = X[:1200], y_all[:1200], X[1200:], y_all[1200:]


class Classifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.h = keras.layers.Dense(32, activation="relu")
        self.o = keras.layers.Dense(k)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.acc = keras.metrics.SparseCategoricalAccuracy(name="acc")

    def call(self, x, training=False):
        return self.o(self.h(x))

    @property
    def metrics(self):
        return [self.loss_tracker, self.acc]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = self.loss_fn(y, logits)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.acc.update_state(y, logits)
        return {"loss": self.loss_tracker.result(), "acc": self.acc.result()}


model = Classifier()
model.compile(optimizer=keras.optimizers.SGD(0.01))
stop = keras.callbacks.EarlyStopping(monitor="loss", patience=3, min_delta=1e-4)
hist = model.fit(x_tr, y_tr, batch_size=64, epochs=20, callbacks=[stop], verbose=0)
print("epochs run", len(hist.history["loss"]), "last logged loss", hist.history["loss"][-1])
acc = float(np.mean(np.argmax(model.predict(x_te, verbose=0), -1) == y_te))
print(f"METRIC {acc:.4f}")
