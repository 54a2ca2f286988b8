"""BUG: minibatches sampled with NumPy inside a @tf.function step. NumPy runs once, when the
function is traced: the 64 indices it drew become a constant in the graph, and every step
trains on those same 64 of the 3000 examples (held-out accuracy about 0.44 against 0.74 with
tf.random.uniform). Source: a frequent tf.function question ("np.random inside tf.function
always returns the same value"; TensorFlow's tf.function guide, "Python side effects"); found
by hunt10.
A tool should say: the batch was drawn once, at trace time; the same examples every step."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, d, K = 4000, 20, 5
w = rng.normal(size=(d, K))
x = rng.normal(size=(n, d)).astype("float32")
y = (np.tanh(x @ w) + 0.3 * (x[:, :K] ** 2)).argmax(1).astype("int32")
x_tr, y_tr, x_te, y_te = tf.constant(x[:3000]), tf.constant(y[:3000]), x[3000:], y[3000:]

model = keras.Sequential(
    [keras.Input((d,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(K)]
)
opt = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step():
    idx = np.random.randint(0, 3000, size=64)  # BUG: drawn once, at trace time
    xb, yb = tf.gather(x_tr, idx), tf.gather(y_tr, idx)
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for _ in range(1500):
    train_step()
acc = (model.predict(x_te, verbose=0).argmax(1) == y_te).mean()
print("FINAL held-out accuracy", round(float(acc), 3))
