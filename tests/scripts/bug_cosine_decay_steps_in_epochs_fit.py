"""Reported symptom: CosineDecay(decay_steps=EPOCHS) with the default alpha=0 passed to compile(); Keras
evaluates the schedule at every batch, so the learning rate is exactly 0 after EPOCHS batches, i.e.
inside the first epoch; the loss falls for a few batches and then fit() runs epoch after epoch with
frozen weights.

Sources: https://github.com/tensorflow/tensorflow/issues/52529 ("How to decrease the learning rate
         every 10 epochs": the schedule's step is the optimizer step (batch), not the epoch)
         https://github.com/mindee/doctr/pull/374 ("fix: step count in LR scheduler": CosineDecay
         decay_steps must be epochs * len(train_loader))
expected: weights-unchanged
"""
import numpy as np
import tensorflow as tf

np.random.seed(9)
tf.random.set_seed(9)

EPOCHS = 10
x = np.random.rand(1600, 8, 8, 1).astype("float32")
y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("float32")

lr = tf.keras.optimizers.schedules.CosineDecay(initial_learning_rate=1e-2, decay_steps=EPOCHS)
model = tf.keras.Sequential([
    tf.keras.Input((8, 8, 1)),
    tf.keras.layers.Conv2D(8, 3, activation="relu"),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(16, activation="relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=lr), loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]])
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
print("lr at end:", float(lr(model.optimizer.iterations)), "iterations:", int(model.optimizer.iterations))
