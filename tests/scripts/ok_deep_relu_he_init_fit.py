"""Healthy twin: the same 8-hidden-layer network with ReLU and He initialisation, SGD; the loss falls.

Sources: https://github.com/SilasMarvin/dnns-from-scratch-in-zig/pull/7 ("Use He weight initialization
         ... this will allow you to go up to like 30 layers of depth"),
         https://github.com/microsoft/CNTK/issues/476 (healthy twin)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(32)
tf.random.set_seed(32)

N_CLASSES = 4
centers = np.random.randn(N_CLASSES, 20).astype("float32")
y = np.random.randint(0, N_CLASSES, size=2000)
x = (centers[y] + 0.7 * np.random.randn(2000, 20)).astype("float32")

model = tf.keras.Sequential([tf.keras.Input((20,))])
for _ in range(8):
    model.add(tf.keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal"))
model.add(tf.keras.layers.Dense(N_CLASSES, activation="softmax"))
model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
hist = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]], "ln(4) =", round(float(np.log(4)), 4))
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
