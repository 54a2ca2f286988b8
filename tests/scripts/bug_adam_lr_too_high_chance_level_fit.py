"""Reported symptom: a ReLU classifier compiled with Adam(learning_rate=0.1): the first updates throw the
hidden units into the dead zone, after the first epoch the loss sits at ln(10) (the loss of predicting
the class prior) and accuracy at ~10 %, unchanged for every later epoch.

Source: https://github.com/keras-team/keras/issues/2711 ("Loss not changing when training"; the
        comment that fixed it for many: "Lower the learning rate (0.1 converges too fast and already
        after the first epoch, there is no change anymore)")
        https://github.com/keras-team/keras/issues/3752 ("is there a bug with 'relu'?": with relu "the
        loss and accuracy does't change", with tanh it trains)
expected: loss-not-decreasing (at chance level), dead-units
"""
import numpy as np
import tensorflow as tf

np.random.seed(15)
# Seeds Keras 3's initializers too (tf.random.set_seed does not): the run is the same every time.
tf.keras.utils.set_random_seed(15)

N_CLASSES = 10
templates = np.random.rand(N_CLASSES, 64).astype("float32")
y = np.random.randint(0, N_CLASSES, size=3000)
# raw 8-bit pixel values, as loaded from the image files (not divided by 255)
x = (255 * np.clip(templates[y] + 0.25 * np.random.randn(3000, 64), 0, 1)).astype("float32")

model = tf.keras.Sequential([
    tf.keras.Input((64,)),
    tf.keras.layers.Dense(128, activation="relu"),
    tf.keras.layers.Dense(64, activation="relu"),
    tf.keras.layers.Dense(N_CLASSES, activation="softmax"),
])
model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.1),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
hist = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]], "ln(10) =", round(float(np.log(10)), 4))
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
