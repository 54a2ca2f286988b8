"""Reported symptom: a custom training loop "learns much slower than model.fit" with SGD. The
loop copies the custom-training guide's reduction, tf.reduce_sum(loss) * (1. / BATCH_SIZE), but
keeps a Keras loss object with its default reduction, which averages over the batch already:
the loss, and every gradient, is divided by the batch size twice (64 times too small).

Source: https://www.tensorflow.org/tutorials/distribute/custom_training (compute the loss:
        "reduction=NONE", then sum and divide by the global batch), hunt26 b05
expected: loss-averaged-twice
"""
import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(4)
rng = np.random.default_rng(4)
x = rng.normal(size=(2400, 10)).astype("float32")
y = np.maximum(x @ rng.normal(size=(10, 16)), 0) @ rng.normal(size=(16,))
y = ((y - y.mean()) / y.std()).astype("float32")[:, None]
BATCH_SIZE = 64

model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
optimizer = keras.optimizers.SGD(0.05)
loss_object = keras.losses.MeanSquaredError()  # meant: reduction="none"


def compute_loss(labels, predictions):
    per_example_loss = loss_object(labels, predictions)
    return tf.reduce_sum(per_example_loss) * (1.0 / BATCH_SIZE)


@tf.function
def train_step(inputs, labels):
    with tf.GradientTape() as tape:
        loss = compute_loss(labels, model(inputs, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


data = tf.data.Dataset.from_tensor_slices((x[:2000], y[:2000])).shuffle(2000, seed=0)
for _ in range(8):
    for inputs, labels in data.batch(BATCH_SIZE, drop_remainder=True):
        train_step(inputs, labels)
print("held-out MSE", float(np.mean((model(x[2000:]).numpy() - y[2000:]) ** 2)))
