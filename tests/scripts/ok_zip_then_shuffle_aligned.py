"""Healthy twin: the same image classifier, pairs kept together, shuffled as pairs; loss drops well below
ln(10).

Sources: https://github.com/tensorflow/tensorflow/issues/41334 (healthy twin: the answer there --
         build the (input, label) pair in one map over the shuffled dataset)
         https://www.tensorflow.org/guide/data (shuffle the zipped (features, labels) dataset)
expected: silent
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
train_ds = master.map(lambda ex: (tf.expand_dims(ex["image"], -1), ex["label"])).batch(64)

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
