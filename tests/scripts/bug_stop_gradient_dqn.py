"""DQN-style update where tf.stop_gradient is put on the online Q-values instead of the target."""

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(12)
tf.random.set_seed(12)

n_states, n_actions, gamma = 8, 3, 0.9


def build_q_network():
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(n_states,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(n_actions),
        ]
    )


q_net = build_q_network()
target_net = build_q_network()
target_net.set_weights(q_net.get_weights())
optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
huber = tf.keras.losses.Huber()

# A replay buffer of random transitions.
states = rng.normal(size=(2000, n_states)).astype(np.float32)
actions = rng.integers(0, n_actions, size=2000).astype(np.int32)
rewards = (states[:, 0] > 0).astype(np.float32)
next_states = (states + 0.1 * rng.normal(size=states.shape)).astype(np.float32)
dones = (rng.random(2000) < 0.05).astype(np.float32)


@tf.function
def train_step(s, a, r, s2, d):
    next_q = tf.reduce_max(target_net(s2), axis=1)
    target = r + gamma * (1.0 - d) * next_q
    with tf.GradientTape() as tape:
        q_values = tf.stop_gradient(q_net(s))
        q_taken = tf.reduce_sum(q_values * tf.one_hot(a, n_actions), axis=1)
        loss = huber(target, q_taken)
    grads = tape.gradient(loss, q_net.trainable_variables)
    optimizer.apply_gradients(zip(grads, q_net.trainable_variables))
    return loss


for step in range(150):
    idx = rng.integers(0, 2000, size=64)
    loss = train_step(states[idx], actions[idx], rewards[idx], next_states[idx], dones[idx])
    if step % 50 == 0:
        target_net.set_weights(q_net.get_weights())
        print("step", step, "loss", float(loss))
