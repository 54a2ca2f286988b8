"""Healthy twin of bug_keras_accuracy_metric_on_probabilities_fit: metrics=["accuracy"], which
compile turns into the categorical accuracy one-hot labels call for, so EarlyStopping keeps the
best epoch.
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
prototypes = rng.normal(size=(8, 32))
classes = rng.integers(0, 8, size=2400)
x = (prototypes[classes] + rng.normal(0, 1.6, size=(2400, 32))).astype("float32")
y = keras.utils.to_categorical(classes, 8)
model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(8, activation="softmax"),
    ]
)
metric = "accuracy"
model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy", metrics=[metric])
stop = keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=3, restore_best_weights=True)
model.fit(x[:2000], y[:2000], validation_data=(x[2000:], y[2000:]), batch_size=64, epochs=8, callbacks=[stop], verbose=0)
predicted = model.predict(x[2000:], verbose=0).argmax(1)
print(f"held-out accuracy {np.mean(predicted == classes[2000:]):.3f}")
