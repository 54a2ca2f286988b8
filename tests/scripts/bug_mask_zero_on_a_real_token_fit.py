"""BUG: DNA bases A, C, G, T numbered 0..3 and embedded with Embedding(4, 16, mask_zero=True),
copied from a text model whose 0 was padding. Nothing is padded here: the mask hides every A
from the pooling after the embedding, so the model cannot count them, and the label (more A
than T) is learned only through what the other bases imply (held-out accuracy about 0.7
against 1.0 without the mask). Source: Keras' Embedding docs ("if mask_zero is set to True, as
a consequence, index 0 cannot be used in the vocabulary"); found by hunt8.
A tool should say: the embedding masks 0, which is a real token in these sequences."""
import keras
import numpy as np

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n, T = 4000, 60
p = rng.dirichlet(np.ones(4) * 3, size=n)
seqs = np.stack([rng.choice(4, size=T, p=pi) for pi in p]).astype("int32")  # A,C,G,T -> 0..3
counts = np.stack([(seqs == k).sum(1) for k in range(4)], 1)
y = (counts[:, 0] > counts[:, 3]).astype("float32")  # more A than T
x_train, y_train, x_test, y_test = seqs[:3000], y[:3000], seqs[3000:], y[3000:]

model = keras.Sequential(
    [
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(4, 16, mask_zero=True),  # BUG: 0 is the base A, not padding
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
print("FINAL held-out accuracy", round(model.evaluate(x_test, y_test, verbose=0)[1], 3))
