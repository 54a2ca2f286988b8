"""Reported symptom: a regression target column read from a CSV has a few missing values (NaN); fit()
prints loss: nan from the first epoch and the weights become NaN: the NaN comes from the labels, not
from the model.

Sources: https://github.com/Nixtla/neuralforecast/issues/186 ("silent bug, training with NaNs values":
         "The loss becomes nan during training but it is hard to notice that the problem is in the
         data")
         https://github.com/keras-team/keras/issues/6447 (comment: "found NaN values [in my data],
         after fixing my data it worked properly")
expected: non-finite
"""
import numpy as np
import tensorflow as tf

np.random.seed(17)
tf.random.set_seed(17)

n = 1500
features = np.random.randn(n, 6).astype("float32")
target = (features @ np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype="float32") + 0.1 * np.random.randn(n)).astype("float32")
# "missing" cells in the target column, as pandas reads an empty CSV field
missing = np.random.choice(n, size=12, replace=False)
target[missing] = np.nan

model = tf.keras.Sequential([
    tf.keras.Input((6,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(1),
])
model.compile(optimizer="adam", loss="mse", metrics=["mae"])
hist = model.fit(features, target, epochs=3, batch_size=32, verbose=0)
print("loss per epoch:", hist.history["loss"])
print("any NaN weight:", any(np.isnan(w.numpy()).any() for w in model.trainable_weights))
