"""Reported symptom: fitting an initial condition u0(x) (1 inside a disc, 0 outside) with a LeakyReLU MLP;
model.fit(..., loss="mse") converges (Keras aligns the shapes), the hand-written tf.function loop with
tf.reduce_mean(tf.square(u0 - model(x))) broadcasts (N,) against (N, 1) to (N, N) and only learns the
mean value of u0.

Source: https://github.com/tensorflow/tensorflow/issues/56969 ("Model does not train properly when
        explicitly applying the gradients": the same model trains with fit but "with apply_gradient
        seems not training"); the reporter's fun_u_0 returns a vector of shape (N,)
        (tf.where on a reduce_sum over axis=1) while the model outputs (N, 1).
expected: loss-broadcast
"""
import numpy as np
import tensorflow as tf

tf.random.set_seed(0)
np.random.seed(0)
lb = tf.constant([0, 0], dtype=np.float32)
ub = tf.constant([1, 1], dtype=np.float32)
N_0 = 1024
Nepochs = 300
lr = 0.001


def fun_u_0(xx):
    c_0 = 0.5 * (lb + ub)
    rr = 0.25 * tf.reduce_min(ub - lb)
    dsq = tf.math.reduce_sum((xx - c_0) * (xx - c_0), axis=1)
    return tf.where(dsq <= rr * rr, 1.0, 0.0)


def init_model(num_hidden_layers=2, num_neurons_per_layer=64):
    model = tf.keras.Sequential()
    model.add(tf.keras.Input(shape=(2,)))
    for _ in range(num_hidden_layers):
        model.add(tf.keras.layers.Dense(num_neurons_per_layer, activation=tf.keras.layers.LeakyReLU(),
                                        kernel_initializer="glorot_uniform"))
    model.add(tf.keras.layers.Dense(1))
    return model


X_0 = tf.random.uniform((N_0, 2), lb, ub, dtype=tf.float32)
u_0 = fun_u_0(X_0)
model = init_model()
optim = tf.keras.optimizers.Adam(learning_rate=lr)


@tf.function
def train_step():
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(u_0 - model(X_0)))
    grads = tape.gradient(loss, model.trainable_variables)
    optim.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for i in range(Nepochs):
    loss = train_step()
    if i % 50 == 0 or i == Nepochs - 1:
        pred = model(X_0)[:, 0]
        print(f"it {i:3d}: loss {float(loss):.4f}  true MSE {float(tf.reduce_mean(tf.square(u_0 - pred))):.4f}")
print("fraction inside the disc:", float(tf.reduce_mean(u_0)))
