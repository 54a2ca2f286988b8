"""Healthy twin: linear warmup from a learning rate of exactly 0 to 1e-2 over 50 steps, then cosine decay
over the remaining optimizer steps of the run; the first update is zero on purpose.

Sources: https://keras.io/api/optimizers/learning_rate_schedules/cosine_decay/ (warmup_target,
         warmup_steps), https://github.com/mindee/doctr/pull/374 (decay_steps = epochs * steps)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(9)
tf.random.set_seed(9)

EPOCHS = 10
x = np.random.rand(1600, 8, 8, 1).astype("float32")
y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("float32")
steps = EPOCHS * int(np.ceil(1600 / 64))

lr = tf.keras.optimizers.schedules.CosineDecay(
    initial_learning_rate=0.0, decay_steps=steps - 50, warmup_target=1e-2, warmup_steps=50, alpha=0.01
)
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
