"""The benchmark workloads: a model, its loss and one synthetic batch, built the same every time.

Each batch is made once and reused on every step, so input costs nothing and every variant sees
exactly the same numbers. Models are rebuilt from the same seed for each variant, so no variant
trains (or warms up) another's weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

SEED = 7


@dataclasses.dataclass(frozen=True)
class Workload:
    """One model to train: how to build it, its loss, its batch, and a one-line description."""

    name: str
    description: str
    build: Callable[[], keras.Model]
    loss: Callable[[], Any]
    batch: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    learning_rate: float = 1e-3

    def model(self) -> keras.Model:
        """A fresh model, initialized identically on every call."""
        keras.utils.set_random_seed(SEED)
        return self.build()

    def optimizer(self) -> keras.optimizers.Optimizer:
        """A fresh Adam (the optimizer most training loops use)."""
        return keras.optimizers.Adam(self.learning_rate)

    def data(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The one batch every step trains on, as constants (no input pipeline cost)."""
        x, y = self.batch(np.random.default_rng(SEED))
        return tf.constant(x), tf.constant(y)


def _mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="mlp",
    )


def _cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="cnn",
    )


def _lstm() -> keras.Model:
    return keras.Sequential(
        [keras.Input((60, 1)), keras.layers.LSTM(50), keras.layers.Dense(1)], name="lstm"
    )


TRANSFORMER_VOCAB = 2000
TRANSFORMER_LENGTH = 32
TRANSFORMER_WIDTH = 128
TRANSFORMER_BLOCKS = 2
TRANSFORMER_BATCH = 16  # keeps its step near 20 ms on 2 cores, so the suite fits in 10 minutes


def _encoder_block(x: Any, index: int) -> Any:
    width = TRANSFORMER_WIDTH
    attention = keras.layers.MultiHeadAttention(
        num_heads=4, key_dim=width // 4, dropout=0.1, name=f"block{index}_attention"
    )(x, x)
    x = keras.layers.LayerNormalization(name=f"block{index}_norm1")(x + attention)
    hidden = keras.layers.Dense(2 * width, activation="gelu", name=f"block{index}_ff1")(x)
    hidden = keras.layers.Dense(width, name=f"block{index}_ff2")(hidden)
    hidden = keras.layers.Dropout(0.1)(hidden)
    return keras.layers.LayerNormalization(name=f"block{index}_norm2")(x + hidden)


class _PositionEmbedding(keras.layers.Layer):
    """Learned position embeddings added to the token embeddings."""

    def build(self, input_shape: Any) -> None:
        self.positions = self.add_weight(
            shape=(input_shape[-2], input_shape[-1]), initializer="uniform", name="positions"
        )

    def call(self, x: Any) -> Any:
        return x + self.positions


def _transformer() -> keras.Model:
    tokens = keras.Input((TRANSFORMER_LENGTH,), dtype="int32")
    x = keras.layers.Embedding(TRANSFORMER_VOCAB, TRANSFORMER_WIDTH, name="tokens")(tokens)
    x = _PositionEmbedding(name="positions")(x)
    for i in range(TRANSFORMER_BLOCKS):
        x = _encoder_block(x, i)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(10, name="head")(x), name="transformer")


def _classes(n: int, shape: tuple[int, ...], dtype: str = "float32") -> Any:
    def batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(size=(n, *shape)).astype(dtype), rng.integers(0, 10, size=n)

    return batch


def _lstm_batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(32, 60, 1)).astype("float32")
    return x, x.mean(axis=1).astype("float32")  # a target the LSTM can actually learn


def _token_batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, TRANSFORMER_VOCAB, size=(TRANSFORMER_BATCH, TRANSFORMER_LENGTH))
    return x.astype("int32"), rng.integers(0, 10, size=TRANSFORMER_BATCH)


def _sparse_ce() -> Any:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "mlp", "MLP 784-512-512-10, batch 128, Adam", _mlp, _sparse_ce, _classes(128, (784,))
        ),
        Workload(
            "cnn",
            "CNN 2x(conv+pool)+dense on 32x32x3, batch 64, Adam",
            _cnn,
            _sparse_ce,
            _classes(64, (32, 32, 3)),
        ),
        Workload(
            "lstm",
            "LSTM(50) on 60-step sequences, batch 32, MSE, Adam",
            _lstm,
            keras.losses.MeanSquaredError,
            _lstm_batch,
        ),
        Workload(
            "transformer",
            f"{TRANSFORMER_BLOCKS} encoder blocks (width {TRANSFORMER_WIDTH}, 4 heads), "
            f"{TRANSFORMER_LENGTH} tokens, batch {TRANSFORMER_BATCH}, Adam",
            _transformer,
            _sparse_ce,
            _token_batch,
        ),
    ]
}
