"""Healthy short model.fit run with a cosine schedule whose linear warmup starts at lr 0."""

import numpy as np
import tensorflow as tf

tf.keras.utils.set_random_seed(20)

x = np.random.randn(640, 8).astype("float32")
y = (x[:, :2].sum(axis=1) > 0).astype("float32")

schedule = tf.keras.optimizers.schedules.CosineDecay(
    initial_learning_rate=0.0, decay_steps=60, warmup_target=3e-3, warmup_steps=20
)
model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(8,)),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer=tf.keras.optimizers.Adam(schedule), loss="binary_crossentropy")
history = model.fit(x, y, batch_size=32, epochs=4, verbose=2)
