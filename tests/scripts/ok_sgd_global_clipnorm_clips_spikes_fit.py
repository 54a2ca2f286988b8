"""The healthy twin of bug_sgd_global_clipnorm_far_below_gradients_fit.py: SGD with
global_clipnorm=1.0, about the gradients' own norm, so it cuts spikes only and the model learns
(validation accuracy 0.10 -> 0.25 in three epochs).
"""
import keras
import numpy as np

rng = np.random.default_rng(1)
x = rng.normal(size=(4000, 32)).astype("float32")
w = rng.normal(size=(32, 10)).astype("float32")
y = np.argmax(x @ w + rng.normal(size=(4000, 10)), axis=1)

model = keras.Sequential(
    [keras.Input((32,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)]
)
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=0.01, global_clipnorm=1.0),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x, y, batch_size=64, epochs=3, validation_split=0.1, verbose=2)
