"""HEALTHY TWIN of bug_hinge_loss_labels_zero_one_tf_function.py: the 0/1 labels are mapped to -1/+1
inside the hand-written hinge, so both classes enter the loss. Otherwise identical.
A tool should stay silent.
"""
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
        loss = tf.reduce_mean(tf.maximum(0.0, 1.0 - (2.0 * y - 1.0) * f))  # FIX: y -> -1/+1
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
