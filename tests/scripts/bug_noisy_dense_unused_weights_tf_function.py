"""Reported symptom: a NoisyNet DQN (n-step TD) with a custom NoisyDense layer: build() creates the
usual kernel/bias *and* the noisy mu/sigma parameters, call() computes the output from mu/sigma only,
so kernel and bias never get a gradient (the maintainer: weights set up in build() must be used in
call()). TF 2.0 raised; Keras 3 only logs a warning and trains the rest.
The bug: partially disconnected variables of a custom layer in a @tf.function loop.

Source: https://github.com/tensorflow/tensorflow/issues/32729 ("ValueError: Variable
        <tf.Variable 'basic_nstepTD_1/noisy_dense/bias:0'> has `None` for gradient")
expected: none-gradient
"""
import numpy as np
import tensorflow as tf

np.random.seed(6)
tf.random.set_seed(6)


class NoisyDense(tf.keras.layers.Layer):
    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = tf.keras.activations.get(activation)

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(d, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        bound = 1.0 / np.sqrt(d)
        self.mu_w = self.add_weight(name="mu_w", shape=(d, self.units),
                                    initializer=tf.keras.initializers.RandomUniform(-bound, bound))
        self.sigma_w = self.add_weight(name="sigma_w", shape=(d, self.units),
                                       initializer=tf.keras.initializers.Constant(0.5 * bound))
        self.mu_b = self.add_weight(name="mu_b", shape=(self.units,),
                                    initializer=tf.keras.initializers.RandomUniform(-bound, bound))
        self.sigma_b = self.add_weight(name="sigma_b", shape=(self.units,),
                                       initializer=tf.keras.initializers.Constant(0.5 * bound))

    def call(self, inputs):
        eps_w = tf.random.normal(tf.shape(self.mu_w))
        eps_b = tf.random.normal(tf.shape(self.mu_b))
        w = self.mu_w + self.sigma_w * eps_w
        b = self.mu_b + self.sigma_b * eps_b
        return self.activation(tf.matmul(inputs, w) + b)


class BasicNstepTD(tf.keras.Model):
    def __init__(self, n_actions):
        super().__init__()
        self.hidden = tf.keras.layers.Dense(64, activation="relu")
        self.noisy_dense = NoisyDense(n_actions)

    def call(self, obs):
        return self.noisy_dense(self.hidden(obs))


N_ACTIONS, OBS = 3, 6
rng = np.random.default_rng(6)
true_w = rng.normal(size=(OBS, N_ACTIONS)).astype("float32")
states = rng.normal(size=(4096, OBS)).astype("float32")
actions = rng.integers(0, N_ACTIONS, size=4096).astype("int32")
# n-step returns of a linear-Q world
returns = (states @ true_w)[np.arange(4096), actions].astype("float32")

model = BasicNstepTD(N_ACTIONS)
opt = tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(s, a, g):
    with tf.GradientTape() as tape:
        q = model(s)
        q_sa = tf.gather(q, a, batch_dims=1)
        loss = tf.reduce_mean(tf.square(g - q_sa))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


ds = tf.data.Dataset.from_tensor_slices((states, actions, returns)).shuffle(4096, seed=6).batch(64)
for epoch in range(4):
    for s, a, g in ds:
        loss = train_step(s, a, g)
    print(f"epoch {epoch} TD loss {float(loss):.4f}")
