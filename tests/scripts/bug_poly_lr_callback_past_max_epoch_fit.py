"""Reported symptom: a poly learning-rate policy lr = base * (1 - epoch/max_epochs)^0.9, clamped at
max_epochs, driven by a Keras LearningRateScheduler callback; fit() is asked for more epochs than
max_epochs, so from that epoch on the learning rate is 0 and the remaining epochs do nothing.

Source: https://github.com/likyoo/open-cd/issues/93 ("学习率衰减为0": "every time the epoch reaches
        101 the learning rate decays to 0" -- a poly schedule written for max_epochs=100 while the
        run trains longer)
expected: weights-unchanged
"""
import numpy as np
import tensorflow as tf

np.random.seed(10)
tf.random.set_seed(10)

BASE_LR = 0.01
MAX_EPOCHS = 6   # the config's "max_epochs"
TRAIN_EPOCHS = 16  # what the run actually asks fit() for


def poly_lr(epoch, lr):
    progress = min(epoch, MAX_EPOCHS) / MAX_EPOCHS
    return BASE_LR * (1.0 - progress) ** 0.9


# a tiny "change detection" problem: is pixel block A brighter than block B
x = np.random.rand(1200, 16).astype("float32")
y = (x[:, :8].sum(axis=1) > x[:, 8:].sum(axis=1) + 0.2).astype("float32")

model = tf.keras.Sequential([
    tf.keras.Input((16,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=tf.keras.optimizers.SGD(BASE_LR, momentum=0.9), loss="binary_crossentropy")
hist = model.fit(
    x, y, epochs=TRAIN_EPOCHS, batch_size=32, verbose=0,
    callbacks=[tf.keras.callbacks.LearningRateScheduler(poly_lr)],
)
print("lr per epoch:", [round(v, 5) for v in hist.history["learning_rate"]])
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
