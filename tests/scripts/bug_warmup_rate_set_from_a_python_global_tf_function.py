"""A linear warm-up computed in Python and set inside the @tf.function step: frozen at trace.

The step does `optimizer.learning_rate = current_lr`, `current_lr` a Python global the loop
moves. Python runs once, at trace: every call assigns the first step's rate, 1/32 of the one
meant (TensorFlow's tf.function guide, "Python global variables are only read at trace time").
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n_classes, dim = 5, 12
W1 = rng.normal(size=(dim, 24))
W2 = rng.normal(size=(24, n_classes))


def make(n):
    x = rng.normal(size=(n, dim)).astype("float32")
    y = np.argmax(np.tanh(x @ W1) @ W2, axis=1)
    return x, y


x_train, y_train = make(1024)
x_test, y_test = make(500)
model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(128, activation="relu"),
                          keras.layers.Dense(128, activation="relu"), keras.layers.Dense(n_classes)])
optimizer = keras.optimizers.Adam(1e-2)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
BASE_LR, WARMUP = 1e-2, 32
current_lr = 0.0


@tf.function
def train_step(x, y):
    optimizer.learning_rate = current_lr
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1024, seed=0).batch(64)
step = 0
for epoch in range(4):
    for xb, yb in ds:
        current_lr = BASE_LR * min(1.0, (step + 1) / WARMUP)
        loss = train_step(xb, yb)
        step += 1
    print(f"epoch {epoch} loss {float(loss):.4f} lr_in_optimizer {float(optimizer.learning_rate):.2e}")
acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
print(f"HELDOUT acc={acc:.3f}")
