"""BUG: a batch-major (batch, time, features) input turned time-major with tf.reshape instead of
tf.transpose, to step a recurrent cell through time by hand. The reshape only regroups the
elements in memory order: "time step" t of "example" b now holds pieces of other examples and
other time steps. Nothing fails; the model learns far less than it could.
Source: a common question ("tf.reshape vs tf.transpose", e.g. https://stackoverflow.com/q/47177986);
TensorFlow's time-major RNN APIs (tf.compat.v1.nn.dynamic_rnn(time_major=True)) ask for it.
A tool should say: the reshape reorders axes; a transpose was meant."""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(5)
rng = np.random.default_rng(5)
T, F = 12, 4


def make(n):
    x = rng.normal(0, 1, (n, T, F)).astype("float32")
    y = (x[:, : T // 2, 0].sum(1) > x[:, T // 2 :, 0].sum(1)).astype("int32")  # early vs late
    return x, y


x_train, y_train = make(4000)
x_test, y_test = make(1000)
cell = keras.layers.SimpleRNNCell(32)
head = keras.layers.Dense(2)
cell.build((None, F))
head.build((None, 32))
variables = cell.trainable_variables + head.trainable_variables
opt = keras.optimizers.Adam(3e-3)


def logits(x):
    steps = tf.reshape(x, [T, -1, F])  # BUG: a transpose was meant: tf.transpose(x, [1, 0, 2])
    h = tf.zeros([tf.shape(x)[0], 32])
    for t in range(T):
        h, _ = cell(steps[t], [h])
    return head(h)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, logits(x), from_logits=True)
        )
    grads = tape.gradient(loss, variables)
    opt.apply_gradients(zip(grads, variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(4000, seed=0).batch(64)
for epoch in range(4):
    for xb, yb in ds:
        loss = train_step(xb, yb)
    print(f"epoch {epoch}: loss {float(loss):.4f}")
accuracy = np.mean(np.argmax(logits(x_test).numpy(), 1) == y_test)
print("FINAL held-out accuracy", round(float(accuracy), 3))
