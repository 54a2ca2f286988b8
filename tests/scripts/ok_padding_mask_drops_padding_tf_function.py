"""Healthy twin of bug_padding_mask_inverted_tf_function: the masked loss of TensorFlow's
translation tutorial as written, tf.math.logical_not(tf.math.equal(real, 0)), keeping the real
tokens and dropping the padding. The decoder learns the tokens.

expected: no findings
"""

import keras
import numpy as np
import tensorflow as tf

FIX = True  # the buggy twin keeps the padding (bug_padding_mask_inverted_tf_function)

rng = np.random.default_rng(0)
n, length, vocabulary = 512, 12, 20
source = rng.integers(1, vocabulary, size=(n, length))
target = np.concatenate([np.ones((n, 1), int), (source * 3) % (vocabulary - 1) + 1], axis=1)
for row, size in enumerate(rng.integers(4, length + 1, size=n)):
    source[row, size:] = 0  # PAD = 0
    target[row, size + 1 :] = 0
dataset = tf.data.Dataset.from_tensor_slices((source, target)).shuffle(n, seed=0).batch(32)

tokens = keras.Input((None,), dtype="int32")
previous = keras.Input((None,), dtype="int32")  # the target so far (teacher forcing)
hidden = keras.layers.Concatenate()(
    [
        keras.layers.Embedding(vocabulary, 32)(tokens),
        keras.layers.Embedding(vocabulary, 32)(previous),
    ]
)
hidden = keras.layers.LSTM(64, return_sequences=True)(hidden)
model = keras.Model([tokens, previous], keras.layers.Dense(vocabulary)(hidden))
optimizer = keras.optimizers.Adam(1e-2)
loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")


def loss_function(real, pred):
    mask = tf.math.equal(real, 0)
    if FIX:
        mask = tf.math.logical_not(mask)
    loss_ = loss_object(real, pred)
    mask = tf.cast(mask, dtype=loss_.dtype)
    loss_ *= mask
    return tf.reduce_sum(loss_) / tf.reduce_sum(mask)


@tf.function
def train_step(inp, tar):
    tar_inp, tar_real = tar[:, :-1], tar[:, 1:]
    with tf.GradientTape() as tape:
        predictions = model([inp, tar_inp], training=True)
        loss = loss_function(tar_real, predictions)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


for epoch in range(3):
    for inp, tar in dataset:
        loss = train_step(inp, tar)
    predicted = np.argmax(model([source, target[:, :-1]]), axis=-1)
    real = target[:, 1:] != 0
    accuracy = np.mean(predicted[real] == target[:, 1:][real])
    print(f"epoch {epoch}: loss {float(loss):.3g}, accuracy on real tokens {accuracy:.3f}")
