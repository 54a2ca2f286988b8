"""Healthy twin of bug_ppo_old_log_probs_recomputed_in_the_tape_tf_function: the ratio uses
the log-probabilities stored when the rollout sampled its actions, so the clipped surrogate
trains the policy; the same bandit, actor, critic and update.

Source: https://github.com/tensorforce/tensorforce/issues/312, hunt29 b06
expected: no finding
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(2)
rng = np.random.default_rng(2)
K = 8
CLIP, ENT_COEF = 0.2, 0.01

actor = keras.Sequential(
    [keras.Input((K,)), keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(K)]
)
critic = keras.Sequential(
    [keras.Input((K,)), keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(1)]
)
optimizer = keras.optimizers.Adam(learning_rate=3e-3)


def action_log_prob(logits, actions):
    return tf.reduce_sum(tf.nn.log_softmax(logits) * tf.one_hot(actions, K), axis=1)


@tf.function
def ppo_update(states, actions, advantages, returns, old_logp_rollout):
    with tf.GradientTape() as tape:
        logits = actor(states, training=True)
        logp = action_log_prob(logits, actions)
        old_logp = old_logp_rollout  # stored when the actions were sampled
        ratio = tf.exp(logp - old_logp)
        clipped = tf.clip_by_value(ratio, 1 - CLIP, 1 + CLIP)
        policy_loss = -tf.reduce_mean(tf.minimum(ratio * advantages, clipped * advantages))
        probs = tf.nn.softmax(logits)
        entropy = -tf.reduce_mean(tf.reduce_sum(probs * tf.nn.log_softmax(logits), axis=1))
        values = tf.squeeze(critic(states, training=True), axis=1)
        value_loss = tf.reduce_mean(tf.square(returns - values))
        loss = policy_loss + 0.5 * value_loss - ENT_COEF * entropy
    variables = actor.trainable_variables + critic.trainable_variables
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss


def cues_to_states(cues):
    return np.eye(K, dtype="float32")[cues]


for iteration in range(15):
    cues = rng.integers(0, K, size=256)
    states = cues_to_states(cues)
    logits = actor(states).numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    actions = np.array([rng.choice(K, p=p) for p in probs], dtype="int32")
    rewards = (actions == cues).astype("float32")
    values = critic(states).numpy()[:, 0]
    advantages = rewards - values
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    old_logp = np.log(probs[np.arange(256), actions] + 1e-8).astype("float32")
    for _epoch in range(4):
        order = rng.permutation(256)
        for start in range(0, 256, 64):
            i = order[start : start + 64]
            ppo_update(
                states[i], actions[i], advantages[i].astype("float32"), rewards[i], old_logp[i]
            )
    if iteration % 5 == 0:
        print(f"iteration {iteration} mean reward {rewards.mean():.3f}")

test_cues = rng.integers(0, K, size=2000)
greedy = np.argmax(actor(cues_to_states(test_cues)).numpy(), axis=1)
print(f"held-out greedy accuracy: {np.mean(greedy == test_cues):.3f}")
