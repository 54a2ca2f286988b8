"""Lambda layers and losses made in a loop that all read its last value (`latebound`).

`loop-variable-late-bound`: a loss list ``[lambda y, f: pinball(q, y, f) for q in qs]`` and
`Lambda` slices made in a loop are found under `fit` (`GuardCallback`), the guard and
`TrainStep`; bound as made (a default argument, `functools.partial`, a factory), or identical
functions that read no loop variable, they stay silent.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard

QUANTILES = (0.1, 0.5, 0.9)
RNG = np.random.default_rng(5)
X = RNG.normal(size=(64, 5)).astype("float32")
Y = (X[:, :1] + RNG.normal(size=(64, 1))).astype("float32")


def pinball(q, y, f):
    e = y - f
    return tf.reduce_mean(tf.maximum(q * e, (q - 1) * e), axis=-1)


def _bound_pinball(q):
    return lambda y, f: pinball(q, y, f)  # (a factory: a cell of its own per call)


def _losses(how: str) -> list:
    if how == "comprehension":
        return [lambda y, f: pinball(q, y, f) for q in QUANTILES]  # noqa: B023 (the bug)
    if how == "for-loop":
        losses = []
        for i in range(len(QUANTILES)):
            q = QUANTILES[i]  # (set in the loop's body, not its target)
            losses.append(lambda y, f: pinball(q, y, f))  # noqa: B023 (the bug)
        return losses
    if how == "default-argument":
        return [lambda y, f, q=q: pinball(q, y, f) for q in QUANTILES]
    if how == "partial":
        return [functools.partial(pinball, q) for q in QUANTILES]
    if how == "factory":
        return [_bound_pinball(q) for q in QUANTILES]
    scale = 2.0  # "same-function": one loss for every output on purpose, no loop variable read
    return [lambda y, f: scale * pinball(0.5, y, f) for _ in QUANTILES]


def _quantile_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = [keras.layers.Dense(1, name=f"q{int(q * 100)}")(hidden) for q in QUANTILES]
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "how, found",
    [
        ("comprehension", True),
        ("for-loop", True),
        ("default-argument", False),
        ("partial", False),
        ("factory", False),
        ("same-function", False),
    ],
)
def test_losses_made_in_a_loop_reading_its_variable_are_found_under_fit(how, found):
    model = _quantile_model()
    model.compile(keras.optimizers.Adam(1e-2), loss=_losses(how))
    callback = gradguard.GuardCallback(every=2)
    model.fit(X, [Y] * len(QUANTILES), batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    late = [f for f in callback.report().findings if f.code == "loop-variable-late-bound"]
    assert bool(late) == found, late
    if found:
        assert late[0].details["names"] == ["q10", "q50", "q90"]
        assert late[0].details["variables"] == ["q"]
        assert "q (0.9 now)" in late[0].message and "q=q" in late[0].message


def _sliced(bound: bool) -> keras.Model:
    """Two heads on slices [0:2] and [2:4] of the inputs, each cut by a Lambda made in a loop.

    (Of one width: slices of two widths made so raise in Keras 3, the model built on the first.)
    """
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,))
    cuts = [0, 2, 4]
    if bound:
        slices = [
            keras.layers.Lambda(lambda x, s=s, e=e: x[..., s:e])(inputs)
            for s, e in zip(cuts[:-1], cuts[1:])
        ]
    else:
        slices = [
            keras.layers.Lambda(lambda x: x[..., s:e])(inputs)  # noqa: B023 (the bug)
            for s, e in zip(cuts[:-1], cuts[1:])
        ]
    heads = [keras.layers.Dense(1)(t) for t in slices]
    return keras.Model(inputs, keras.layers.Add()(heads))


@pytest.mark.parametrize("entry", ["guard", "trainstep"])
@pytest.mark.parametrize("bound", [False, True])
def test_lambda_layers_made_in_a_loop_reading_its_variables_are_found(entry, bound):
    model, optimizer = _sliced(bound), keras.optimizers.Adam(1e-2)
    if entry == "trainstep":
        step = gradguard.TrainStep(model, optimizer, "mse")
        for i in range(0, 64, 16):
            step(X[i : i + 16], Y[i : i + 16])
    else:

        @tf.function
        @gradguard.guard(model, optimizer)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        for i in range(0, 64, 16):
            step(X[i : i + 16], Y[i : i + 16])
    late = [f for f in step.report().findings if f.code == "loop-variable-late-bound"]
    assert bool(late) == (not bound), late
    if late:
        assert late[0].details["role"] == "Lambda layers"
        assert late[0].details["variables"] == ["e", "s"]
        assert "e (4 now) and s (2 now)" in late[0].message
