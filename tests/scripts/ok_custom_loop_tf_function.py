"""Healthy custom loop with a @tf.function train step and a validation pass (TF guide style)."""

import numpy as np
import tensorflow as tf

np.random.seed(42)
tf.random.set_seed(42)

num_classes = 4
x = np.random.randn(1200, 16).astype("float32")
proj = np.random.randn(16, num_classes).astype("float32")
y = np.argmax(x @ proj, axis=1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(16,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dropout(0.1),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(num_classes),
    ]
)
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
train_acc_metric = tf.keras.metrics.SparseCategoricalAccuracy()
val_acc_metric = tf.keras.metrics.SparseCategoricalAccuracy()

train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1000).batch(32)
val_dataset = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(64)


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss_value = loss_fn(y, logits)
    grads = tape.gradient(loss_value, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    train_acc_metric.update_state(y, logits)
    return loss_value


@tf.function
def test_step(x, y):
    val_logits = model(x, training=False)
    val_acc_metric.update_state(y, val_logits)


for epoch in range(6):
    for x_batch_train, y_batch_train in train_dataset:
        loss_value = train_step(x_batch_train, y_batch_train)
    for x_batch_val, y_batch_val in val_dataset:
        test_step(x_batch_val, y_batch_val)
    print(
        f"epoch {epoch}: loss {float(loss_value):.4f} "
        f"train acc {float(train_acc_metric.result()):.3f} "
        f"val acc {float(val_acc_metric.result()):.3f}"
    )
    train_acc_metric.reset_state()
    val_acc_metric.reset_state()
