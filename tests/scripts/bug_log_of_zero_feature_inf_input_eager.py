"""Reported symptom: count features are log-transformed with np.log (not np.log1p); the rows with a zero
count become -inf, the first batch that contains one turns the loss and the first layer's weights
into NaN, and every later step prints nan.
Eager GradientTape loop over numpy batches.

Sources: https://github.com/ratschlab/DeepSpot/issues/9 ("Train loss: nan" -- maintainer: "It looks
         like you have nans in your input ... likely from empty cells/spots")
         https://github.com/krishnaik06/Stock-Price-Prediction-using-Keras-and-Recurrent-Neural-Networ/issues/2
         ("NAN in during Epoch in Loss" on another data file)
expected: non-finite
"""
import numpy as np
import tensorflow as tf

np.random.seed(18)
tf.random.set_seed(18)

counts = np.random.poisson(lam=3.0, size=(2000, 8)).astype("float32")  # some cells are 0
x = np.log(counts)  # -inf where the count is 0
y = (np.log1p(counts).sum(axis=1, keepdims=True) / 8.0).astype("float32")
print("non-finite input cells:", int((~np.isfinite(x)).sum()))

model = tf.keras.Sequential([
    tf.keras.Input((8,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(1),
])
optimizer = tf.keras.optimizers.SGD(learning_rate=0.01)
mse = tf.keras.losses.MeanSquaredError()

for epoch in range(3):
    losses = []
    for i in range(0, len(x), 50):
        xb, yb = x[i:i + 50], y[i:i + 50]
        with tf.GradientTape() as tape:
            loss = mse(yb, model(xb))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    print(f"epoch {epoch}: mean loss {np.mean(losses)}")
