"""Reported symptom: the loss stops improving after a few epochs although the learning rate
"decays gently". The LearningRateScheduler's function is given the current rate and multiplies
it by decay ** epoch, so the decays compound: 1e-3 becomes about 1e-9 by the tenth epoch (1e-16
by the fifteenth) and the weights stop moving partway through training.

Source: a pattern of user reports: keras.callbacks.LearningRateScheduler
        passes ``(epoch, lr)`` with lr the rate now, not the initial one.
expected: update-too-small (or weights-unchanged), naming the rate brought down during training
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
decay = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.75**epoch)
history = model.fit(x, y, epochs=15, batch_size=32, verbose=0, callbacks=[decay])
print(f"accuracy {history.history['accuracy'][-1]:.3f}, lr {float(model.optimizer.learning_rate):.2e}")
