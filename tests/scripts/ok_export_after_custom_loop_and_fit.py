"""Train with a custom loop and with fit, then checkpoint, export and reload everything.

The end of most training scripts: a tf.train.Checkpoint of the model and its optimizer, read
back into fresh objects with assert_consumed() (every saved value has a home, nothing extra was
saved), a SavedModel of the Keras model for serving, and a .keras archive loaded and trained on.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(3)
x = np.random.randn(256, 12).astype("float32")
y = (x[:, :3].sum(axis=1, keepdims=True) > 0).astype("float32")


def build():
    return tf.keras.Sequential(
        [
            tf.keras.Input((12,)),
            tf.keras.layers.Dense(24, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )


model = build()
optimizer = tf.keras.optimizers.Adam(1e-2)
loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)
dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256, seed=0).batch(32)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(3):
    for xb, yb in dataset:
        loss = train_step(xb, yb)
    print(f"epoch {epoch}: loss {float(loss):.4f}")

out = tempfile.mkdtemp()
path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(os.path.join(out, "ckpt"))
fresh_model, fresh_optimizer = build(), tf.keras.optimizers.Adam(1e-2)
fresh_optimizer.build(fresh_model.trainable_variables)
status = tf.train.Checkpoint(model=fresh_model, optimizer=fresh_optimizer).restore(path)
status.assert_consumed()
assert int(fresh_optimizer.iterations) == int(optimizer.iterations) == 24

model.export(os.path.join(out, "exported"))
served = tf.saved_model.load(os.path.join(out, "exported"))
np.testing.assert_allclose(served.serve(x[:4]), model(x[:4]), rtol=1e-5)
tf.saved_model.save(model, os.path.join(out, "saved"))
assert tf.saved_model.load(os.path.join(out, "saved")).signatures

model.compile(optimizer=optimizer, loss=loss_fn, metrics=["accuracy"])
model.fit(x, y, batch_size=32, epochs=2, verbose=0)
model.save(os.path.join(out, "model.keras"))
again = tf.keras.models.load_model(os.path.join(out, "model.keras"))
history = again.fit(x, y, batch_size=32, epochs=2, verbose=0)
print("accuracy after reload:", round(history.history["accuracy"][-1], 3))
