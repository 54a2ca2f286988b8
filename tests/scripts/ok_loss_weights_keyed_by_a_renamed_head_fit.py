"""The twin of bug_loss_weights_keyed_by_a_renamed_head_fit: loss_weights keyed by the output
names, as the losses are; Keras matches them by name and the price head trains (test MSE far
below its variance).
"""

import keras
import numpy as np

keras.utils.set_random_seed(7)
rng = np.random.default_rng(7)
x = rng.normal(size=(2000, 12)).astype("float32")
price = (2 * x[:, :1] + np.sin(2 * x[:, 1:2]) + x[:, 2:3] * x[:, 3:4]).astype("float32")
dept = np.argmax(x[:, 4:7], axis=1).astype("int32")

inputs = keras.Input((12,))
hidden = keras.layers.Dense(64, activation="relu")(inputs)
heads = {"price": keras.layers.Dense(1, name="price")(hidden), "dept": keras.layers.Dense(3, name="dept")(hidden)}
model = keras.Model(inputs, heads)
model.compile(
    "adam",
    loss={"price": "mse", "dept": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
    loss_weights={"price": 1.0, "dept": 0.0},
)
model.fit(x[:1600], {"price": price[:1600], "dept": dept[:1600]}, batch_size=32, epochs=4, verbose=0)
predicted = model.predict(x[1600:], verbose=0)["price"]
print("price head test MSE:", round(float(np.mean((predicted - price[1600:]) ** 2)), 3), "variance:", round(float(np.var(price[1600:])), 3))
