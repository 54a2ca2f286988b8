"""Reported symptom: "my GNN is no better than an MLP on the node features". The hand-written
message passing gathers each edge's sender, h[senders], and sums the messages with
unsorted_segment_sum(messages, senders, N): at the senders again, so every node gets back its
own message once per edge and nothing travels along the edges. The loss falls all the same.

Source: https://github.com/BNN-UPC/MARL-GNN-TE/issues/1, hunt29 b02
expected: messages-to-sender
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(10)
rng = np.random.default_rng(10)
N, K, F = 600, 3, 8
cls = rng.integers(0, K, size=N)
shown = np.where(rng.random(N) < 0.25, cls, rng.integers(0, K, size=N))
feat = np.concatenate([np.eye(K)[shown], rng.normal(size=(N, F - K))], axis=1).astype("float32")
edges = set()
by_class = [np.flatnonzero(cls == k) for k in range(K)]
for i in range(N):
    for _ in range(4):
        j = rng.choice(by_class[cls[i]]) if rng.random() < 0.85 else rng.integers(N)
        if j != i:
            edges.add((i, int(j)))
            edges.add((int(j), i))
senders, receivers = (np.array(v, dtype="int32") for v in zip(*sorted(edges)))
train_mask = rng.random(N) < 0.5
x = tf.constant(feat)
y = tf.constant(cls)


class MessagePassing(keras.layers.Layer):
    def __init__(self, units):
        super().__init__()
        self.message = keras.layers.Dense(units)
        self.update_fn = keras.layers.Dense(units, activation="relu")

    def call(self, h, senders, receivers):
        messages = self.message(tf.gather(h, senders))
        aggregated = tf.math.unsorted_segment_sum(messages, senders, N)  # at the senders again
        return self.update_fn(tf.concat([h, aggregated / 8.0], axis=1))


layer1, layer2, head = MessagePassing(32), MessagePassing(32), keras.layers.Dense(K)
optimizer = keras.optimizers.Adam(5e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
idx_train = np.flatnonzero(train_mask)


def forward(training=False):
    h = layer1(x, senders, receivers)
    h = layer2(h, senders, receivers)
    return head(h)


forward()
variables = layer1.trainable_variables + layer2.trainable_variables + head.trainable_variables


@tf.function
def train_step():
    with tf.GradientTape() as tape:
        logits = forward(training=True)
        loss = loss_fn(tf.gather(y, idx_train), tf.gather(logits, idx_train))
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss


for step in range(120):
    loss = train_step()
    if step % 50 == 0:
        print(f"step {step} loss {float(loss):.3f}")

pred = np.argmax(forward().numpy(), axis=1)
print(f"held-out node accuracy: {np.mean(pred[~train_mask] == cls[~train_mask]):.3f}")
