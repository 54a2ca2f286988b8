"""BUG: class labels numbered 1..C (as read from a CSV) turned into one-hot targets with
`tf.one_hot(y, C)` inside an overridden `train_step`. `tf.one_hot` silently gives an all-zero
row for the out-of-range id C, so the last class never contributes to the loss (its examples'
cross-entropy is exactly 0 with zero gradient), label k trains output k, and output 0 is never a
target. The model never predicts the last class: accuracy is capped near (C-1)/C.
Source: the OneHot op documentation shows an out-of-range index (-1) giving an all-`off_value`
row (https://tensorflow.org/api_docs/cc/class/tensorflow/ops/one-hot); an index equal to depth
does the same (measured in exp_data_signals.py). 1-based labels are a frequent question (with a
sparse CE they raise on CPU; with tf.one_hot they do not); no single thread verified.
A tool should say: a quarter of the one-hot targets are all zeros (labels outside 0..C-1:
the largest label equals C); shift the labels to 0..C-1."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(3)
rng = np.random.default_rng(3)
C, D = 4, 10
centers = rng.normal(0, 2.0, (C, D))


def make(n):
    y = rng.integers(1, C + 1, n)  # classes 1..4, as in the CSV
    x = (centers[y - 1] + rng.normal(0, 1.0, (n, D))).astype("float32")
    return x, y.astype("int32")


x_train, y_train = make(2000)
x_test, y_test = make(800)


class Classifier(keras.Model):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ce = keras.losses.CategoricalCrossentropy(from_logits=True)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        x, y = data
        target = tf.one_hot(y, C)  # BUG: y is 1..C, so class C becomes an all-zero row
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = self.ce(target, logits)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


inp = keras.Input((D,))
h = keras.layers.Dense(32, activation="relu")(inp)
model = Classifier(inp, keras.layers.Dense(C)(h))
model.compile(optimizer=keras.optimizers.Adam(3e-3))
model.fit(x_train, y_train, batch_size=32, epochs=6, verbose=2)
pred = model.predict(x_test, verbose=0).argmax(-1)  # output k means class k
print("FINAL held-out accuracy", round(float((pred == y_test).mean()), 3), "(chance 0.25)")
