"""BUG: attention pooling over time in a subclassed model (its own train_step). The scores
have shape (batch, T, 1) and the softmax is taken over the last axis, of size 1: every weight is
exactly 1, the pooling is a plain sum, and the scoring layers get no gradient (held-out accuracy
about 0.56 against 0.99 with the softmax over the time steps). Source: a frequent attention-
pooling mistake (Keras 3 warns for keras.ops.softmax over a size-1 axis; tf.nn.softmax does
not); found by hunt10.
A tool should say: the softmax runs over an axis of size 1, so its weights are all 1."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, T, F = 3000, 16, 4
x = rng.normal(size=(n, T, F)).astype("float32")
x[:, :, 0] = 0.0
pos = rng.integers(0, T, size=n)
x[np.arange(n), pos, 0] = 1.0  # marker: the one step that matters
y = (x[np.arange(n), pos, 1] > 0).astype("int32")
x_tr, y_tr, x_te, y_te = x[:2400], y[:2400], x[2400:], y[2400:]


class AttnPoolNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.values = keras.layers.Dense(16)
        self.hidden = keras.layers.Dense(16, activation="tanh")
        self.score = keras.layers.Dense(1)
        self.head = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(2)

    def call(self, x, training=False):
        scores = self.score(self.hidden(x))  # (batch, T, 1)
        weights = tf.nn.softmax(scores, axis=-1)  # BUG: over the size-1 axis
        pooled = tf.reduce_sum(weights * self.values(x), axis=1)
        return self.out(self.head(pooled))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


model = AttnPoolNet()
model.build((None, T, F))
model.compile(
    optimizer=keras.optimizers.Adam(3e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
model.fit(x_tr, y_tr, epochs=10, batch_size=32, verbose=0)
acc = (model.predict(x_te, verbose=0).argmax(1) == y_te).mean()
print("FINAL held-out accuracy", round(float(acc), 3))
