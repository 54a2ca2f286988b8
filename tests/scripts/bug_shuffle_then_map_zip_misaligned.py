"""Reported symptom: inputs and labels are derived from one shuffled dataset by two map() calls and
zipped back; each side is reshuffled independently, the labels are random with respect to the
images, and the loss falls to ln(10) (chance for 10 classes) within the first epoch and stays there.

Sources: https://github.com/tensorflow/tensorflow/issues/41334 ("Shuffling then zip tf.data.Dataset":
         master.shuffle() -> warped = master.map(...) -> zip(master, warped): each branch iterates the
         shuffled dataset separately, so the pairs no longer match)
         https://github.com/tensorflow/tensorflow/issues/12851 ("Dataset Unzip": same effect when
         unzipping a shuffled dataset into inputs and labels and zipping them back)
expected: loss-not-decreasing
"""
import numpy as np
import tensorflow as tf

np.random.seed(11)
tf.random.set_seed(11)

N_CLASSES = 10
templates = np.random.rand(N_CLASSES, 12, 12).astype("float32")
labels = np.random.randint(0, N_CLASSES, size=4000).astype("int64")
images = (templates[labels] + 0.2 * np.random.randn(4000, 12, 12)).astype("float32")

master = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
master = master.shuffle(4000)
features = master.map(lambda ex: tf.expand_dims(ex["image"], -1))
targets = master.map(lambda ex: ex["label"])
train_ds = tf.data.Dataset.zip((features, targets)).batch(64)

model = tf.keras.Sequential([
    tf.keras.Input((12, 12, 1)),
    tf.keras.layers.Conv2D(8, 3, activation="relu"),
    tf.keras.layers.MaxPooling2D(),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(N_CLASSES),
])
model.compile(
    optimizer=tf.keras.optimizers.Adam(1e-3),
    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
hist = model.fit(train_ds, epochs=4, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]], "ln(10) =", round(float(np.log(10)), 4))
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
