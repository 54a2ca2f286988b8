"""Healthy text classifier with a large Embedding: its gradients are sparse IndexedSlices."""

import numpy as np
import tensorflow as tf

np.random.seed(16)
tf.random.set_seed(16)

vocab_size, seq_len = 5000, 12
tokens = np.random.randint(1, vocab_size, size=(1200, seq_len))
positive_words = np.arange(1, 50)
labels = np.isin(tokens, positive_words).any(axis=1).astype("float32")

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(seq_len,), dtype="int32"),
        tf.keras.layers.Embedding(vocab_size, 16),
        tf.keras.layers.GlobalAveragePooling1D(),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)


@tf.function
def train_step(tok, lab):
    with tf.GradientTape() as tape:
        logits = model(tok, training=True)
        loss = loss_fn(lab, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((tokens, labels[:, None])).shuffle(1200).batch(32)
for epoch in range(5):
    for tok, lab in ds:
        loss = train_step(tok, lab)
    print("epoch", epoch, "loss", float(loss))
