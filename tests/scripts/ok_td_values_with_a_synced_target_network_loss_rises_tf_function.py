"""Healthy: TD(0) value learning with a target network hard-synced every 50 updates; the loss
rises. The values of a 20-state random walk (reward 1 per step survived, gamma 0.9) are learnt
from a replay buffer; the TD target r + gamma * V_target(s') is noisy (the walk goes left or
right), and its noise grows with the values as they grow from 0 toward their true size (3.7 to
9.8): the TD loss rises several-fold while the values converge.

Source: hunt29 h04 (a healthy script a loss-trend check told its loss had not decreased)
expected: no finding
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(15)
rng = np.random.default_rng(15)
N, GAMMA = 20, 0.9
# random walk: left/right with prob 1/2; states 0 and N-1 terminal; reward 1 per step
transitions = []
for _ in range(20000):
    s = int(rng.integers(1, N - 1))
    s2 = s + (1 if rng.random() < 0.5 else -1)
    transitions.append((s, 1.0, s2, float(s2 in (0, N - 1))))
S, R, S2, D = (np.array(v) for v in zip(*transitions))
eye = np.eye(N, dtype="float32")

# true values by dynamic programming
v_true = np.zeros(N)
for _ in range(5000):
    v_new = v_true.copy()
    for s in range(1, N - 1):
        v_new[s] = sum(
            0.5 * (1.0 + GAMMA * (0 if s2 in (0, N - 1) else v_true[s2])) for s2 in (s - 1, s + 1)
        )
    v_true = v_new

net = keras.Sequential(
    [keras.Input((N,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
target = keras.models.clone_model(net)
target.set_weights(net.get_weights())
opt = keras.optimizers.Adam(3e-3)


@tf.function
def td_step(s, r, s2, d):
    y = r + GAMMA * (1.0 - d) * target(s2)[:, 0]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(y - net(s, training=True)[:, 0]))
    opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
    return loss


losses = []
for it in range(3000):
    i = rng.integers(0, len(S), size=64)
    losses.append(
        float(td_step(eye[S[i]], R[i].astype("float32"), eye[S2[i]], D[i].astype("float32")))
    )
    if it % 50 == 49:
        target.set_weights(net.get_weights())
print(
    f"mean TD loss: first 100 steps {np.mean(losses[:100]):.3f}, last 100 {np.mean(losses[-100:]):.3f}"
)
v_hat = net(eye).numpy()[:, 0]
print(f"true values range {v_true[1:-1].min():.2f}..{v_true[1:-1].max():.2f}")
print(
    f"held-out value MAE over non-terminal states: {np.mean(np.abs(v_hat[1:-1] - v_true[1:-1])):.3f}"
)
