"""Reported symptom: the per-step log-probabilities are written into a preallocated numpy buffer
(log_probs[t] = ...) during the episode and the return-weighted loss is computed from that buffer;
the assignment copies each value out of TensorFlow, the tape cannot trace it, every gradient is None
and Keras raises "No gradients provided for any variable" at the first update.

Sources: https://github.com/kengz/SLM-Lab/pull/133 ("REINFORCE and its descendants are broken ...
         root cause: torch.tensor creates a brand new tensor detached from the computation graph. So
         no gradient update was done." -- the TF version of it: a preallocated numpy buffer)
         https://github.com/rlcode/reinforcement-learning/issues/104 (REINFORCE agent under TF2:
         "has `None` for gradient")
expected: none-gradient
"""
import numpy as np
import tensorflow as tf

np.random.seed(25)
tf.random.set_seed(25)

N_ACTIONS, OBS, T = 3, 4, 12
policy = tf.keras.Sequential([
    tf.keras.Input((OBS,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(N_ACTIONS),
])
optimizer = tf.keras.optimizers.Adam(1e-2)
rng = np.random.default_rng(25)
good_action = rng.integers(0, N_ACTIONS, size=T)

for episode in range(30):
    with tf.GradientTape() as tape:
        log_probs = np.zeros(T, dtype=np.float32)
        rewards = []
        for t in range(T):
            obs = tf.constant(np.eye(OBS, dtype="float32")[t % OBS][None, :])
            logits = policy(obs)
            action = int(tf.random.categorical(logits, 1)[0, 0])
            log_probs[t] = tf.nn.log_softmax(logits)[0, action]
            rewards.append(1.0 if action == good_action[t] else 0.0)
        returns = np.cumsum(rewards[::-1])[::-1].astype("float32")
        returns = (returns - returns.mean()) / (returns.std() + 1e-8)
        loss = -tf.reduce_sum(tf.convert_to_tensor(log_probs) * returns)
    grads = tape.gradient(loss, policy.trainable_variables)
    optimizer.apply_gradients(zip(grads, policy.trainable_variables))
    if episode % 10 == 0:
        print(f"episode {episode}: return {sum(rewards):.0f}")
