"""Reported symptom: the schedule is written in epochs but evaluated per optimizer step, so a
PolynomialDecay to 0 reaches 0 after EPOCHS *steps*; the loss drops during the first few batches,
then every later step applies a zero update and training is frozen for the rest of the run.

Sources: https://github.com/MaybeShewill-CV/CRNN_Tensorflow/issues/393 (polynomial_decay called
         with decay_steps=CFG.TRAIN.EPOCHS while global_step counts optimizer steps: "if you set it
         to the total number of training [epochs] ... the decay has no effect")
         https://github.com/vanhuyz/CycleGAN-TensorFlow/issues/47 (polynomial decay to
         end_learning_rate=0: "the learning rate will decay to 0, which means the model could never
         change right?" -- "Yes!")
expected: weights-unchanged
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

learning_rate = tf.keras.optimizers.schedules.PolynomialDecay(
    initial_learning_rate=1e-3,
    decay_steps=EPOCHS,
    end_learning_rate=0.0,
    power=0.9,
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
