"""Reported symptom: a deep stack of sigmoid layers trained with plain SGD: the gradient reaching the first
layers is orders of magnitude smaller than at the top, the loss sits at ln(C) for the whole run.
Keras version: 8 sigmoid hidden layers, SGD, model.fit.

Source: https://github.com/microsoft/CNTK/issues/476 ("Training invalidation when add the number of
        layers": a DNN with sigmoid hidden layers trains with 6 layers, and with 7 "the training stucked
        at the beginning. The training error don't descend at all")
        see also https://github.com/SilasMarvin/dnns-from-scratch-in-zig/pull/7 ("you will see vanishing
        gradients at only 5 layers")
expected: vanishing-gradient, loss-not-decreasing
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
    model.add(tf.keras.layers.Dense(64, activation="sigmoid"))
model.add(tf.keras.layers.Dense(N_CLASSES, activation="softmax"))
model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
hist = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
print("loss per epoch:", [round(v, 4) for v in hist.history["loss"]], "ln(4) =", round(float(np.log(4)), 4))
print("accuracy per epoch:", [round(v, 3) for v in hist.history["accuracy"]])
