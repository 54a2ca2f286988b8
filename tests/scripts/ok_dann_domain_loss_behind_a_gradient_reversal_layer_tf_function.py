"""Healthy twin of bug_dann_domain_loss_subtracted_without_reversal_tf_function.py: a
gradient-reversal layer before the domain classifier, its loss added. The classifier learns to
tell the domains apart and only the features are trained against it.

expected: (none)
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(11)
rng = np.random.default_rng(11)
LAMBDA = 1.0


@tf.custom_gradient
def reverse_gradient(x):
    return tf.identity(x), lambda dy: -LAMBDA * dy


def make(n, target):
    """5 weak features shared by both domains, and a shortcut only the source's labels follow."""
    y = rng.integers(0, 2, size=n)
    signal = 0.6 * (2 * y - 1)[:, None] + rng.normal(size=(n, 5))
    noise = 0.3 * rng.normal(size=(n, 1))
    shortcut = 3.0 + noise if target else 2.0 * (2 * y - 1)[:, None] + noise
    return np.concatenate([signal, shortcut], axis=1).astype("float32"), y.astype("float32")


xs, ys = make(1024, target=False)
xt, _ = make(1024, target=True)
xt_test, yt_test = make(1000, target=True)

encoder = keras.Sequential(
    [keras.Input((6,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16)]
)
label_head = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1)])
domain_head = keras.Sequential(
    [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
bce = keras.losses.BinaryCrossentropy(from_logits=True)
optimizer = keras.optimizers.Adam(1e-3)
variables = (
    encoder.trainable_variables
    + label_head.trainable_variables
    + domain_head.trainable_variables
)


@tf.function
def train_step(x_src, y_src, x_tgt):
    with tf.GradientTape() as tape:
        f_src = encoder(x_src, training=True)
        class_loss = bce(y_src[:, None], label_head(f_src, training=True))
        feats = tf.concat([f_src, encoder(x_tgt, training=True)], axis=0)
        domains = tf.concat([tf.zeros_like(y_src), tf.ones_like(y_src)], axis=0)[:, None]
        domain_loss = bce(domains, domain_head(reverse_gradient(feats), training=True))
        loss = class_loss + domain_loss
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return class_loss, domain_loss


ds = tf.data.Dataset.from_tensor_slices((xs, ys, xt)).shuffle(1024, seed=0).batch(64)
for epoch in range(6):
    for a, b, c in ds:
        class_loss, domain_loss = train_step(a, b, c)
    print(f"epoch {epoch} class loss {float(class_loss):.3f} domain loss {float(domain_loss):.3f}")

logits = label_head(encoder(xt_test)).numpy()[:, 0]
print(f"held-out target-domain accuracy: {np.mean((logits > 0) == (yt_test > 0.5)):.3f}")
