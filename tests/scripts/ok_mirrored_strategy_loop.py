"""Healthy custom loop under tf.distribute.MirroredStrategy (the distributed-training tutorial)."""

import numpy as np
import tensorflow as tf

tf.random.set_seed(28)
np.random.seed(28)

strategy = tf.distribute.MirroredStrategy()
GLOBAL_BATCH_SIZE = 32

x = np.random.randn(960, 6).astype("float32")
y = (x[:, :1] - x[:, 1:2] > 0).astype("int64").ravel()
dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(960).batch(GLOBAL_BATCH_SIZE)
dist_dataset = strategy.experimental_distribute_dataset(dataset)

with strategy.scope():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6,)),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(2),
        ]
    )
    optimizer = tf.keras.optimizers.Adam(1e-3)
    loss_object = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )


def compute_loss(labels, predictions):
    per_example_loss = loss_object(labels, predictions)
    return tf.nn.compute_average_loss(per_example_loss, global_batch_size=GLOBAL_BATCH_SIZE)


def train_step(inputs):
    features, labels = inputs
    with tf.GradientTape() as tape:
        predictions = model(features, training=True)
        loss = compute_loss(labels, predictions)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


@tf.function
def distributed_train_step(dataset_inputs):
    per_replica_losses = strategy.run(train_step, args=(dataset_inputs,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_losses, axis=None)


for epoch in range(5):
    total_loss, num_batches = 0.0, 0
    for batch in dist_dataset:
        total_loss += distributed_train_step(batch)
        num_batches += 1
    print("epoch", epoch, "loss", float(total_loss / num_batches))
