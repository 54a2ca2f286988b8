"""Healthy twin (converged weights): a DQN on a deterministic chain MDP, its target network
updated by Polyak averaging inside the step, trained until its Q-values are exact. The loss
reaches its floor, the gradients shrink below what an update at 1e-3 can still add to the
output bias, and that bias stops changing: converged, not stuck.

Sources: https://keras.io/examples/rl/ddpg_pendulum/ (update_target: t = tau * w + (1 - tau) * t)
         https://www.tensorflow.org/agents/tutorials/0_intro_rl
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

keras.utils.set_random_seed(21)
N_STATES, GAMMA, TAU = 10, 0.9, 0.02

# Every transition of the chain: action 1 moves right, action 0 left; reward 1 at the right end.
s = np.repeat(np.arange(N_STATES - 1), 2)
a = np.tile([0, 1], N_STATES - 1)
s_next = np.where(a == 1, s + 1, np.maximum(s - 1, 0))
r = (s_next == N_STATES - 1).astype("float32")
done = r.copy()
eye = np.eye(N_STATES, dtype="float32")


def create_q_model():
    return keras.Sequential([
        keras.Input((N_STATES,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(2),
    ])


q_net, target_net = create_q_model(), create_q_model()
target_net.set_weights(q_net.get_weights())
optimizer = keras.optimizers.Adam(1e-3)


@tf.function
def train_step(state, action, reward, state_next, d):
    target = reward + GAMMA * (1.0 - d) * tf.reduce_max(target_net(state_next), axis=1)
    with tf.GradientTape() as tape:
        q = tf.reduce_sum(q_net(state, training=True) * tf.one_hot(action, 2), axis=1)
        loss = tf.reduce_mean(tf.square(target - q))
    grads = tape.gradient(loss, q_net.trainable_variables)
    optimizer.apply_gradients(zip(grads, q_net.trainable_variables))
    for t, w in zip(target_net.weights, q_net.weights):
        t.assign(TAU * w + (1.0 - TAU) * t)
    return loss


rng = np.random.default_rng(21)
for step in range(1800):
    idx = rng.integers(0, len(s), 32)
    loss = train_step(eye[s[idx]], a[idx], r[idx], eye[s_next[idx]], done[idx])
    if step % 500 == 0:
        print(f"step {step}: loss {float(loss):.2e}")
print("Q(s=8, right)", float(q_net(eye[8:9])[0, 1]))
