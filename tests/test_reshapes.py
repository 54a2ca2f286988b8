"""A reshape used to reorder axes (`reshapes`, `reshape-transposes`): time-major and channels
first, found in a hand-written step, under `fit` and by `TrainStep`; a transpose, a size-1 axis
moved, sizes regrouped, a signal re-framed ((batch, a, b) to (batch, b, a)), a reshape of
equal sizes and a batch written out beside a -1 stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import mode_kwargs

import gradguard
from gradguard import reshapes
from gradguard.guarding import Guard
from gradguard.options import Options

T, F = 10, 6  # time steps, features
H, W, C = 4, 5, 3  # images, channels last


def _sequences(features: int = F):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, T, features)).astype("float32")
    return x, x[:, :, 0].sum(1, keepdims=True)


def _images():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, H, W, C)).astype("float32")
    return x, x[..., 0].sum((1, 2))[:, None]


# What the step does to its (batch, H, W, C) images before a model reading (batch, C, H, W).
_TO_CHANNELS_FIRST = {
    "reshape": lambda x: tf.reshape(x, [-1, C, H, W]),
    "transpose": lambda x: tf.transpose(x, [0, 3, 1, 2]),
    "regrouped": lambda x: tf.reshape(tf.reshape(x, [-1, 12, 5]), [-1, C, H, W]),
}


@pytest.mark.parametrize("change", list(_TO_CHANNELS_FIRST))
def test_a_hand_written_step_reshaping_where_it_meant_to_transpose_is_found(change):
    x, y = _images()
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((C, H, W)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(_TO_CHANNELS_FIRST[change](x)) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, 128, 32):
        step(x[i : i + 32], y[i : i + 32])
    found = [f for f in step.report().findings if f.code == "reshape-transposes"]
    assert bool(found) == (change == "reshape"), found
    if found:
        assert "turns (32, 4, 5, 3) into (32, 3, 4, 5)" in found[0].message, found[0].message
        assert "tf.transpose(x, perm=[0, 3, 1, 2])" in found[0].message
        assert found[0].details["perm"] == [0, 3, 1, 2]


def _channels_first(layer: str) -> keras.layers.Layer:
    return (
        keras.layers.Reshape((C, H, W)) if layer == "Reshape" else keras.layers.Permute((3, 1, 2))
    )


_TIME_MAJOR = {  # (batch, T, F) made (T, batch, F) for a hand-made RNN, then averaged over time
    "reshape": lambda x: keras.ops.reshape(x, (T, -1, F)),
    "transpose": lambda x: keras.ops.transpose(x, (1, 0, 2)),
}


@pytest.mark.parametrize(
    "layer", ["reshape", "transpose", "Reshape", "Permute", "re-framed", "size-1 axis"]
)
def test_a_model_reshaping_where_it_meant_to_transpose_under_fit_is_found(layer):
    x, y = _images() if layer in ("Reshape", "Permute") else _sequences()
    inputs = keras.Input(x.shape[1:])
    if layer in _TIME_MAJOR:
        hidden = keras.layers.Lambda(_TIME_MAJOR[layer])(inputs)
        hidden = keras.layers.Lambda(lambda h: keras.ops.mean(h, axis=0))(hidden)
    elif layer in ("Reshape", "Permute"):  # channels first
        first = (
            keras.layers.Reshape((C, H, W))
            if layer == "Reshape"
            else keras.layers.Permute((3, 1, 2))
        )
        hidden = keras.layers.Flatten()(first(inputs))
    elif layer == "re-framed":  # (batch, T, F) to (batch, F, T): a signal framed anew, maybe
        hidden = keras.layers.Flatten()(keras.layers.Reshape((F, T))(inputs))
    else:  # (batch, T, F, 1) to (batch, T, 1, F): no element moves
        hidden = keras.layers.Reshape((T, 1, F))(keras.layers.Reshape((T, F, 1))(inputs))
        hidden = keras.layers.Flatten()(hidden)
    keras.utils.set_random_seed(3)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    codes = [f.code for f in guard.read(final=True).findings]
    assert ("reshape-transposes" in codes) == (layer in ("reshape", "Reshape")), codes
    found = [f for f in guard.read(final=True).findings if f.code == "reshape-transposes"]
    if layer == "reshape":
        assert "A reshape in functional" in found[0].message, found[0].message
        assert "(32, 10, 6) into (10, 32, 6)" in found[0].message, found[0].message
        assert found[0].details["perm"] == [1, 0, 2]


@pytest.mark.parametrize("layer", ["Reshape", "Permute"])
def test_train_step_finds_a_model_reshaping_where_it_meant_to_transpose(mode, layer):
    x, y = _images()
    keras.utils.set_random_seed(3)
    first = (
        keras.layers.Reshape((C, H, W)) if layer == "Reshape" else keras.layers.Permute((3, 1, 2))
    )
    model = keras.Sequential(
        [keras.Input((H, W, C)), first, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), "mse", **mode_kwargs(mode))
    for i in range(0, 128, 32):
        step(x[i : i + 32], y[i : i + 32])
    found = [f for f in step.report().findings if f.code == "reshape-transposes"]
    # Eager, no graph is traced to read.
    assert len(found) == (layer == "Reshape" and mode != "eager"), found
    if found:
        assert found[0].step == 0 and "(32, 4, 5, 3) into (32, 3, 4, 5)" in found[0].message


@pytest.mark.parametrize(
    "batch, target, found",
    [
        ((32, 10, 6), [10, -1, 6], True),  # the batch moved (time-major)
        ((None, 10, 6), [10, -1, 6], True),
        ((32, 4, 5, 3), [-1, 3, 4, 5], True),  # channels first
        ((None, 16, 8), [-1, 8, 16], False),  # 16 frames of 8 samples re-framed as 8 of 16
        ((32, 1, 32, 16), [32, -1, 16], False),  # the batch written out, the -1 a time axis
        ((32, 64), [-1, 32], False),  # groups of 32 features: (64, 32) only at a batch of 32
        ((32, 64), [64, 32], True),  # no -1: the sizes as written
        ((None, None, 6), [-1, 6], False),
    ],
)
def test_a_batch_traced_at_a_fixed_size_is_told_from_features_regrouped(batch, target, found):
    graph = tf.function(lambda x: tf.reshape(x, target)).get_concrete_function(
        tf.TensorSpec(batch, tf.float32)
    )
    finding = reshapes.graph_reshape_transposes(graph.graph.get_operations(), step=0)
    assert (finding is not None) == found, finding


class _Heads(keras.layers.Layer):
    """Self-attention over (batch, T, 12) in 3 heads of 4, split and merged as `how` says."""

    def __init__(self, how: str):
        super().__init__(name="attention")
        self.how = how
        self.qkv = [keras.layers.Dense(12) for _ in range(3)]

    def _split(self, t: tf.Tensor) -> tf.Tensor:
        if self.how == "reshape":  # the heads' axis put before the positions': scrambled
            return tf.reshape(t, (-1, 3, T, 4))
        return tf.transpose(tf.reshape(t, (-1, T, 3, 4)), [0, 2, 1, 3])

    def _merge(self, t: tf.Tensor) -> tf.Tensor:
        if self.how == "reshape":
            return tf.reshape(t, (-1, T, 12))
        return tf.reshape(tf.transpose(t, [0, 2, 1, 3]), (-1, T, 12))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        q, k, v = (self._split(dense(x)) for dense in self.qkv)
        weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 2.0, axis=-1)
        return self._merge(tf.matmul(weights, v))


@pytest.mark.parametrize("how", ["reshape", "reshape-and-transpose"])
def test_attention_heads_split_by_a_reshape_alone_are_found(how):
    x, y = _sequences(12)
    inputs = keras.Input((T, 12))
    hidden = keras.layers.Flatten()(_Heads(how)(inputs))
    keras.utils.set_random_seed(3)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    found = [f for f in guard.read(final=True).findings if f.code == "reshape-transposes"]
    assert bool(found) == (how == "reshape"), found
    if found:  # (the first reshape by name: a merge's)
        assert found[0].details["heads"] in ("split", "merged")
        assert "attention heads" in found[0].message
        assert "tf.transpose(tf.reshape(x, (batch, 10, 3, 4)), [0, 2, 1, 3])" in found[0].message


@pytest.mark.parametrize(
    "before, after, heads",
    [
        ((None, 10, 12), (None, 3, 10, 4), "split"),
        ((None, 3, 10, 4), (None, 10, 12), "merged"),
        ((None, 10, 12), (None, 10, 3, 4), None),  # split in place, before the transpose
        ((None, 10, 3, 4), (None, 10, 12), None),  # merged after the transpose back
        ((None, 3, 12), (None, 3, 3, 4), None),  # as many heads as positions: cannot be told
        ((None, 10, 12), (None, 12, 10, 1), None),  # depth 1
    ],
)
def test_heads_moved_by_a_reshape_are_told_by_their_sizes(before, after, heads):
    assert reshapes._heads_moved(before, after) == heads
