"""Healthy twin: PolynomialDecay(power=1) to exactly 0, reached only at the last step of the run; the
last few updates are tiny on purpose.

Sources: https://github.com/MaybeShewill-CV/CRNN_Tensorflow/issues/393 (healthy twin: decay_steps
         counted in optimizer steps, epochs * steps_per_epoch), linear decay to 0 at the very end
         as in BERT fine-tuning (https://www.tensorflow.org/text/tutorials/classify_text_with_bert)
expected: silent
"""
import numpy as np
import tensorflow as tf

np.random.seed(8)
tf.random.set_seed(8)

EPOCHS = 12
BATCH = 64
N_CLASSES = 5

centers = np.random.randn(N_CLASSES, 20).astype("float32") * 1.5
labels = np.random.randint(0, N_CLASSES, size=1920)
x = (centers[labels] + np.random.randn(1920, 20)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(1920, seed=8).batch(BATCH)
steps_per_epoch = int(np.ceil(1920 / BATCH))

learning_rate = tf.keras.optimizers.schedules.PolynomialDecay(
    initial_learning_rate=1e-3,
    decay_steps=EPOCHS * steps_per_epoch,
    end_learning_rate=0.0,
    power=1.0,
)
optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
model = tf.keras.Sequential([
    tf.keras.Input((20,)),
    tf.keras.layers.Dense(64, activation="relu"),
    tf.keras.layers.Dense(N_CLASSES),
])
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for epoch in range(EPOCHS):
    losses = [float(train_step(xb, yb)) for xb, yb in ds]
    lr_now = float(learning_rate(optimizer.iterations))
    print(f"epoch {epoch}: loss {np.mean(losses):.4f}  lr {lr_now:.2e}  step {int(optimizer.iterations)}")
