"""A contextual bandit trained with REINFORCE written as mean(log_prob(action) * reward): the
minus is missing, so each update makes the actions that paid less likely; the reward falls below
what random arms get.

Sources: https://stackoverflow.com/questions/tagged/policy-gradient ("policy gradient reward
         decreases", the sign of the surrogate loss), https://www.tensorflow.org/tutorials/
         reinforcement_learning/actor_critic (its loss: -log_prob * advantage)
expected: loss-sign-flipped
"""
import numpy as np
import tensorflow as tf

np.random.seed(31)
tf.random.set_seed(31)

N_ARMS, FEATURES, BATCH = 4, 6, 64
rng = np.random.default_rng(31)
payoff = rng.normal(size=(FEATURES, N_ARMS)).astype("float32")

policy = tf.keras.Sequential([
    tf.keras.Input((FEATURES,)),
    tf.keras.layers.Dense(32, activation="relu"),
    tf.keras.layers.Dense(N_ARMS),
])
optimizer = tf.keras.optimizers.Adam(1e-2)


@tf.function
def update(contexts, actions, rewards):
    with tf.GradientTape() as tape:
        log_probs = tf.nn.log_softmax(policy(contexts))
        taken = tf.gather(log_probs, actions, batch_dims=1)
        loss = tf.reduce_mean(taken * rewards)  # should be -tf.reduce_mean(...)
    grads = tape.gradient(loss, policy.trainable_variables)
    optimizer.apply_gradients(zip(grads, policy.trainable_variables))
    return loss


for batch in range(150):
    contexts = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    logits = policy(contexts)
    actions = tf.random.categorical(logits, 1)[:, 0].numpy().astype("int32")
    best = np.argmax(contexts @ payoff, axis=1)
    rewards = (actions == best).astype("float32")
    update(contexts, actions, rewards - rewards.mean())
    if batch % 50 == 0 or batch == 149:
        print(f"batch {batch}: reward {rewards.mean():.2f} (random arms: {1 / N_ARMS:.2f})")
