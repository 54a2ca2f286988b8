"""Healthy twin of bug_lr_scheduler_compounds_every_epoch_fit: the schedule multiplies the
initial rate by 0.75 ** epoch, so the rate falls 56x in 15 epochs and the weights keep moving.
"""

import keras
import numpy as np

rng = np.random.default_rng(0)
keras.utils.set_random_seed(1)
x = rng.normal(size=(2000, 20)).astype("float32")
y = np.argmax(x @ rng.normal(size=(20, 4)) + 0.5 * rng.normal(size=(2000, 4)), axis=1)
model = keras.Sequential(
    [
        keras.Input((20,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(4),
    ]
)
model.compile(
    keras.optimizers.Adam(1e-3),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
decay = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 1e-3 * 0.75**epoch)
history = model.fit(x, y, epochs=15, batch_size=32, verbose=0, callbacks=[decay])
print(f"accuracy {history.history['accuracy'][-1]:.3f}, lr {float(model.optimizer.learning_rate):.2e}")
