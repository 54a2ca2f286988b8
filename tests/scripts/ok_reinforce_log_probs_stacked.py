"""Healthy twin: the same REINFORCE update, log-probabilities collected per step and stacked with
tf.stack (the episode's observations go through the policy in one call); returns rise.

Sources: https://github.com/kengz/SLM-Lab/pull/133 (healthy twin: "use torch.stack instead" -- in TF,
         tf.stack keeps the log-probabilities on the tape)
         https://www.tensorflow.org/tutorials/reinforcement_learning/actor_critic
expected: silent
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
good_action = rng.integers(0, N_ACTIONS, size=OBS)

observations = tf.constant(np.eye(OBS, dtype="float32")[np.arange(T) % OBS])
for episode in range(150):
    with tf.GradientTape() as tape:
        logits = policy(observations)  # the whole episode's observations in one call
        log_probs, rewards = [], []
        for t in range(T):
            action = int(tf.random.categorical(logits[t:t + 1], 1)[0, 0])
            log_probs.append(tf.nn.log_softmax(logits[t])[action])
            rewards.append(1.0 if action == good_action[t % OBS] else 0.0)
        returns = np.cumsum(rewards[::-1])[::-1].astype("float32")
        returns = (returns - returns.mean()) / (returns.std() + 1e-8)
        loss = -tf.reduce_sum(tf.stack(log_probs) * returns)
    grads = tape.gradient(loss, policy.trainable_variables)
    optimizer.apply_gradients(zip(grads, policy.trainable_variables))
    if episode % 30 == 0 or episode == 149:
        print(f"episode {episode}: return {sum(rewards):.0f} / {T}")
