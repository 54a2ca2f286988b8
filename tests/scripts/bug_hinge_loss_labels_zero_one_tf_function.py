"""BUG: a hand-written hinge loss `mean(max(0, 1 - y * f(x)))` fed labels in {0, 1} instead of
{-1, +1}. For every y = 0 example the term is the constant 1 (zero gradient): the negatives
never enter the loss, and the model only learns to push f >= 1 on the positives, which it does
most easily by raising its output everywhere. The loss falls from 1 to a floor of (share of
negatives) and stays there; accuracy drops to about the positive rate.
Source: Keras' `Hinge` documentation: "y_true values are expected to be -1 or 1. If binary (0
or 1) labels are provided we will convert them" (https://tensorflow.org/api_docs/python/tf/keras/losses/Hinge);
a hand-written hinge does no such conversion. I did not find one specific report thread.
A tool should say: the loss counts only the examples of one label (the y = 0 examples add a
constant with zero gradient) -- binary labels must be mapped to -1/+1 for a hinge."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(4)
rng = np.random.default_rng(4)


def make(n):
    x = rng.normal(0, 1, (n, 2)).astype("float32")
    y = (np.linalg.norm(x, axis=1) < 1.18).astype("float32")  # inside the circle: class 1 (~50%)
    return x, y[:, None]


x_train, y_train = make(3000)
x_test, y_test = make(1000)
model = keras.Sequential(
    [
        keras.Input((2,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1),  # raw score f(x); predict class 1 when f > 0
    ]
)
opt = keras.optimizers.Adam(3e-3)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        f = model(x, training=True)
        loss = tf.reduce_mean(tf.maximum(0.0, 1.0 - y * f))  # BUG: y in {0, 1}
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(3000, seed=0).batch(64)
for epoch in range(8):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print(f"epoch {epoch}: loss {float(loss):.4f}")
pred = (model(x_test).numpy() > 0).astype("float32")
print("FINAL held-out accuracy", round(float((pred == y_test).mean()), 3), f"(positive rate {y_test.mean():.2f})")
