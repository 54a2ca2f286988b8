"""Validation accuracy from predict on an unshuffled data set, labels from another pass.

The healthy twin of bug_predict_on_a_reshuffling_dataset_then_labels_from_another_pass_fit.py.
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 8)).astype("float32")
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
train_ds = tf.data.Dataset.from_tensor_slices((x[:1000], y[:1000])).shuffle(1000).batch(32)
val_ds = tf.data.Dataset.from_tensor_slices((x[1000:], y[1000:])).batch(32)  # (not shuffled: every pass in one order)

model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train_ds, epochs=5, verbose=0)
print("evaluate accuracy:", model.evaluate(val_ds, verbose=0)[1])

y_pred = np.argmax(model.predict(val_ds, verbose=0), axis=1)
y_true = np.concatenate([labels.numpy() for _, labels in val_ds])
print("confusion matrix:\n", tf.math.confusion_matrix(y_true, y_pred).numpy())
print("hand-made accuracy:", np.mean(y_true == y_pred))
