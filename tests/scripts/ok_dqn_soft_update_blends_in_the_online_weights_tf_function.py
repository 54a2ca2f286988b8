"""Healthy twin of bug_dqn_soft_update_blends_the_target_with_itself_tf_function: the soft
update blends in the online weights, 0.99 * target + 0.01 * online, so the target network
follows the online one; the same corridor, buffer and networks.

Source: https://github.com/ageron/handson-ml2/issues/89, hunt29 b05
expected: no finding
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(1)
rng = np.random.default_rng(1)
N, GAMMA, MAX_STEPS = 10, 0.95, 30


def one_hot(pos):
    o = np.zeros(N, dtype="float32")
    o[pos] = 1.0
    return o


def step(pos, action):
    pos = pos - 1 if action == 0 else pos + 1
    if pos == 0:
        return pos, 0.3, True
    if pos == N - 1:
        return pos, 1.0, True
    return pos, -0.01, False


model = keras.Sequential(
    [keras.Input((N,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(2)]
)
target = keras.models.clone_model(model)
target.set_weights(model.get_weights())
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.Huber()

buffer = []


@tf.function
def training_step(states, actions, rewards, next_states, dones):
    next_q_online = model(next_states)
    best_next = tf.argmax(next_q_online, axis=1)
    next_mask = tf.one_hot(best_next, 2)
    next_best_q = tf.reduce_sum(target(next_states) * next_mask, axis=1)
    target_q = rewards + (1.0 - dones) * GAMMA * next_best_q
    mask = tf.one_hot(actions, 2)
    with tf.GradientTape() as tape:
        q = tf.reduce_sum(model(states) * mask, axis=1)
        loss = loss_fn(target_q, q)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def soft_update():
    target_weights = target.get_weights()
    online_weights = model.get_weights()
    for index in range(len(target_weights)):
        target_weights[index] = 0.99 * target_weights[index] + 0.01 * online_weights[index]
    target.set_weights(target_weights)


q_table_inputs = np.stack([one_hot(p) for p in range(N)])
for episode in range(40):
    epsilon = max(1.0 - episode / 30, 0.05)
    pos, done, t = int(rng.integers(2, 7)), False, 0
    q_now = model(q_table_inputs).numpy()  # greedy actions for this episode
    while not done and t < MAX_STEPS:
        a = int(rng.integers(2)) if rng.random() < epsilon else int(np.argmax(q_now[pos]))
        new_pos, r, done = step(pos, a)
        buffer.append((one_hot(pos), a, r, one_hot(new_pos), float(done)))
        pos, t = new_pos, t + 1
        if len(buffer) >= 64:
            idx = rng.integers(0, len(buffer), size=32)
            s, a_, r_, s2, d = (np.array(v) for v in zip(*[buffer[i] for i in idx]))
            training_step(s, a_.astype("int32"), r_.astype("float32"), s2, d.astype("float32"))
            soft_update()


def greedy_return(start):
    q = model(q_table_inputs).numpy()
    pos, total, done, t = start, 0.0, False, 0
    while not done and t < MAX_STEPS:
        pos, r, done = step(pos, int(np.argmax(q[pos])))
        total, t = total + r, t + 1
    return total


returns = [greedy_return(s) for s in range(1, N - 1)]
print("greedy return per start:", np.round(returns, 2))
print(f"held-out greedy return (mean over starts 1..8): {np.mean(returns):.3f}")
