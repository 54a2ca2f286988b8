"""Healthy twin: the same token classifier, raw logits into sparse_softmax_cross_entropy_with_logits;
the loss drops far below ln(V).

Source: https://github.com/lsdefine/attention-is-all-you-need-keras/issues/12 (healthy twin: the
        output projection without softmax, as in the repository's code)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(12)
tf.random.set_seed(12)

VOCAB, D, SEQ = 50, 32, 10
src = np.random.randint(1, VOCAB, size=(2000, SEQ)).astype("int32")
tgt = ((src * 7 + 3) % VOCAB).astype("int32")

emb = tf.keras.layers.Embedding(VOCAB, D)
hidden = tf.keras.layers.Dense(D, activation="relu")
target_layer = tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(VOCAB, use_bias=False))
model = tf.keras.Sequential([tf.keras.Input((SEQ,), dtype="int32"), emb, hidden, target_layer])
optimizer = tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(s, t):
    with tf.GradientTape() as tape:
        out = model(s, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=out))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((src, tgt)).shuffle(2000, seed=12).batch(50)
for epoch in range(6):
    losses = [float(train_step(s, t)) for s, t in ds]
    print(f"epoch {epoch}: loss {np.mean(losses):.4f}  (ln V = {np.log(VOCAB):.4f})")
