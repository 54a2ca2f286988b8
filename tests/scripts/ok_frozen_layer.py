"""Healthy transfer learning: a pretrained feature extractor frozen with trainable=False."""

import numpy as np
import tensorflow as tf

np.random.seed(4)
tf.random.set_seed(4)

x = np.random.randn(1000, 20).astype("float32")
y_a = (x[:, :10].sum(axis=1) > 0).astype("float32")
y_b = (x[:, 10:].sum(axis=1) > 0).astype("float32")

base = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(20,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(32, activation="relu"),
    ],
    name="base",
)
# "Pretrain" the base on task A with model.fit.
pretrain = tf.keras.Sequential([base, tf.keras.layers.Dense(1, activation="sigmoid")])
pretrain.compile(optimizer="adam", loss="binary_crossentropy")
pretrain.fit(x, y_a, epochs=2, batch_size=64, verbose=0)

# New task: freeze the base, train a new head in a custom loop.
base.trainable = False
inputs = tf.keras.Input(shape=(20,))
features = base(inputs, training=False)
outputs = tf.keras.layers.Dense(1)(features)
model = tf.keras.Model(inputs, outputs)

optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, y_b[:, None])).shuffle(1000).batch(32)
for epoch in range(5):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print("epoch", epoch, "loss", float(loss))
