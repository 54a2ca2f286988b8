"""Healthy twin (target networks): a DQN-style update on a synthetic chain MDP; the target network's
variables are read outside the tape and never handed to an optimizer, on purpose.

Sources: https://keras.io/examples/rl/deep_q_network_breakout/ (model + model_target; the target
         network is only read, never trained, and copied from the online network every N updates)
         https://www.tensorflow.org/agents/tutorials/0_intro_rl
expected: silent
"""
import numpy as np
import tensorflow as tf
from tensorflow import keras

np.random.seed(28)
tf.random.set_seed(28)

N_STATES, N_ACTIONS, GAMMA = 10, 2, 0.9


def create_q_model():
    return keras.Sequential([
        keras.Input((N_STATES,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(N_ACTIONS),
    ])


model = create_q_model()
model_target = create_q_model()
model_target.set_weights(model.get_weights())
optimizer = keras.optimizers.Adam(1e-3)
loss_function = keras.losses.Huber()

# replay buffer of a chain: action 1 moves right (reward 1 at the end), action 0 resets
rng = np.random.default_rng(28)
s = rng.integers(0, N_STATES, size=20000)
a = rng.integers(0, N_ACTIONS, size=20000)
s_next = np.where(a == 1, np.minimum(s + 1, N_STATES - 1), 0)
r = ((a == 1) & (s == N_STATES - 2)).astype("float32")
done = (s_next == N_STATES - 1).astype("float32")
eye = np.eye(N_STATES, dtype="float32")


@tf.function
def update(state, action, reward, state_next, d):
    future_rewards = model_target(state_next)
    updated_q = reward + GAMMA * tf.reduce_max(future_rewards, axis=1) * (1 - d)
    masks = tf.one_hot(action, N_ACTIONS)
    with tf.GradientTape() as tape:
        q_values = model(state)
        q_action = tf.reduce_sum(q_values * masks, axis=1)
        loss = loss_function(updated_q, q_action)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for step in range(600):
    idx = rng.integers(0, 20000, size=64)
    loss = update(eye[s[idx]], a[idx], r[idx], eye[s_next[idx]], done[idx])
    if step % 100 == 0:
        model_target.set_weights(model.get_weights())
        q = model(eye).numpy()
        print(f"step {step}: loss {float(loss):.5f}  Q(s=8, right) {q[8, 1]:.3f}")
