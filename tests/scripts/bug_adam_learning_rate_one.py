"""Adam with learning_rate=1.0 in a custom loop: every step rewrites the weights."""

import numpy as np
import tensorflow as tf

np.random.seed(13)
tf.random.set_seed(13)

(x_train, y_train) = (
    np.random.rand(1200, 28).astype("float32"),
    np.random.randint(0, 5, size=1200),
)
x_train[np.arange(1200), y_train] += 1.0  # make the classes learnable

model = tf.keras.Sequential(
    [
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(5),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=1.0)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
acc = tf.keras.metrics.SparseCategoricalAccuracy()

train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1200).batch(32)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    acc.update_state(y, logits)
    return loss


for epoch in range(4):
    acc.reset_state()
    for x, y in train_dataset:
        loss = train_step(x, y)
    print(f"epoch {epoch} loss {float(loss):.3f} acc {float(acc.result()):.3f}")
