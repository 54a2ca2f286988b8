"""HEALTHY TWIN of bug_tags_padded_after_tokens_padded_before_fit.py: tokens and tags are padded the
same way (both with pad_sequences' default, padding="pre"), so each tag sits at its token's
position. Otherwise identical. A tool should stay silent.
"""
import keras
import numpy as np

keras.utils.set_random_seed(2)
rng = np.random.default_rng(2)
V, T, NTAGS = 60, 20, 5  # token ids 1..59, tags 1..4, 0 = padding for both


def make(n):
    toks, tags = [], []
    for _ in range(n):
        L = rng.integers(4, T + 1)
        t = rng.integers(1, V, L)
        prev = np.r_[0, t[:-1]]
        toks.append(t)
        tags.append(1 + (t % 2) + 2 * (prev > V // 2))  # tag depends on the token and its left neighbour
    return toks, tags


tok_train, tag_train = make(2500)
x_train = keras.utils.pad_sequences(tok_train, maxlen=T)
y_train = keras.utils.pad_sequences(tag_train, maxlen=T)  # FIX: padded like the tokens

inp = keras.Input((T,), dtype="int32")
h = keras.layers.Embedding(V, 32, mask_zero=True)(inp)
h = keras.layers.Bidirectional(keras.layers.GRU(32, return_sequences=True))(h)
model = keras.Model(inp, keras.layers.Dense(NTAGS)(h))
model.compile(
    keras.optimizers.Adam(3e-3),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x_train, y_train, batch_size=64, epochs=4, verbose=2)

tok_test, tag_test = make(600)  # held-out sentences, tokens and tags correctly aligned
x_test = keras.utils.pad_sequences(tok_test, maxlen=T)
y_test = keras.utils.pad_sequences(tag_test, maxlen=T)
pred = model.predict(x_test, verbose=0).argmax(-1)
real = x_test > 0
print("FINAL held-out tag accuracy on real tokens", round(float((pred == y_test)[real].mean()), 3), "(chance ~0.25)")
