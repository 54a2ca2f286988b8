"""Reported symptom: a loss averaged over a masked subset of the batch,
sum(mask * l) / sum(mask); a batch with no sample in the subset gives 0/0 = NaN, the NaN gradient
reaches every weight and the loss is nan from then on.
@tf.function loop, small batches of an imbalanced detection-style target.

Sources: https://github.com/HuiZhang0812/DiffusionAD/issues/32 ("train_loss becomes nan": "When the
         batch size is small, it may lead to an entire batch consisting solely of abnormal samples")
         https://github.com/JJBOY/BMN-Boundary-Matching-Network/issues/22 ("There is a statistical ratio
         in the loss function. It may happen that the number of iou > 0.7 ... [is zero]")
expected: non-finite
"""
import numpy as np
import tensorflow as tf

np.random.seed(20)
tf.random.set_seed(20)

x = np.random.randn(2000, 16).astype("float32")
positive = (np.random.rand(2000) < 0.12).astype("float32")  # ~12 % positives
offset = (x[:, :1] * 2.0 + 1.0).astype("float32")  # regression target, only meaningful for positives

model = tf.keras.Sequential([
    tf.keras.Input((16,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(2),  # [objectness logit, box offset]
])
optimizer = tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(xb, pos, off):
    with tf.GradientTape() as tape:
        out = model(xb, training=True)
        cls_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=pos, logits=out[:, 0]))
        reg = tf.square(out[:, 1:] - off)[:, 0]
        reg_loss = tf.reduce_sum(pos * reg) / tf.reduce_sum(pos)
        loss = cls_loss + reg_loss
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((x, positive, offset)).shuffle(2000, seed=20).batch(8)
for epoch in range(3):
    losses = [float(train_step(xb, p, o)) for xb, p, o in ds]
    print(f"epoch {epoch}: first losses {np.round(losses[:3], 3)}  last loss {losses[-1]}  nan steps {int(np.isnan(losses).sum())}")
