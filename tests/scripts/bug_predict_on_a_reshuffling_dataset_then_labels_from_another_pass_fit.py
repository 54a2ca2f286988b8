"""Validation accuracy from predict on a shuffled data set, labels from another pass.

From tensorflow/tensorflow#57636 and many like it ("the confusion matrix is random though
val_accuracy is 0.9"): the validation set is shuffled (image_dataset_from_directory does it by
default), predictions come from model.predict(val_ds) and labels from a second pass over
val_ds, which the shuffle draws in another order. The hand-made accuracy is at chance.
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 8)).astype("float32")
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
train_ds = tf.data.Dataset.from_tensor_slices((x[:1000], y[:1000])).shuffle(1000).batch(32)
val_ds = tf.data.Dataset.from_tensor_slices((x[1000:], y[1000:])).shuffle(200).batch(32)

model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train_ds, epochs=5, verbose=0)
print("evaluate accuracy:", model.evaluate(val_ds, verbose=0)[1])

y_pred = np.argmax(model.predict(val_ds, verbose=0), axis=1)
y_true = np.concatenate([labels.numpy() for _, labels in val_ds])
print("confusion matrix:\n", tf.math.confusion_matrix(y_true, y_pred).numpy())
print("hand-made accuracy:", np.mean(y_true == y_pred))
