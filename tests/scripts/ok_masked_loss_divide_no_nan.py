"""Healthy twin: the same detection-style masked loss; batches with no positive contribute no regression
loss (and zero gradient to the regression output) on purpose.

Source: https://github.com/HuiZhang0812/DiffusionAD/issues/32 (healthy twin: the masked average
        guarded against empty masks with tf.math.divide_no_nan)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(20)
tf.random.set_seed(20)

x = np.random.randn(2000, 16).astype("float32")
positive = (np.random.rand(2000) < 0.12).astype("float32")
offset = (x[:, :1] * 2.0 + 1.0).astype("float32")

model = tf.keras.Sequential([
    tf.keras.Input((16,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(2),
])
optimizer = tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(xb, pos, off):
    with tf.GradientTape() as tape:
        out = model(xb, training=True)
        cls_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=pos, logits=out[:, 0]))
        reg = tf.square(out[:, 1:] - off)[:, 0]
        reg_loss = tf.math.divide_no_nan(tf.reduce_sum(pos * reg), tf.reduce_sum(pos))
        loss = cls_loss + reg_loss
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, positive, offset)).shuffle(2000, seed=20).batch(8)
for epoch in range(3):
    losses = [float(train_step(xb, p, o)) for xb, p, o in ds]
    print(f"epoch {epoch}: mean loss {np.mean(losses):.4f}")
