"""Random draws that repeat their values (`random-frozen-at-trace`).

Real pipelines under `tracedrandom.watch`: `np.random` and `random` in a map function are drawn
once, at the trace (every element gets the same value), and found; `tf.random` in the map, a
NumPy draw inside `tf.py_function` (run per element), NumPy drawing the arrays before the
pipeline and a draw in a `tf.function` that is not tf.data's stay silent. Drawn while a training
step is traced: found; a draw in a layer's `build` there (an initial value) stays silent. Keras
random functions given an integer seed repeat at every call: found in a traced function and when
eager calls repeat a seed; a SeedGenerator, a seed per call and one eager draw stay silent.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard import tracedrandom
from gradguard.findings import Report


def _shifted(x):
    return x + np.random.randint(0, 1000)


def _shifted_by_python(x):
    return x + random.randint(0, 1000)


def _shifted_in_graph(x):
    return x + tf.random.uniform((), 0, 1000, dtype=tf.int64)


def _shifted_per_element(x):
    shift = tf.py_function(lambda: np.random.randint(0, 1000), [], tf.int64)
    return x + tf.reshape(shift, ())


@pytest.mark.parametrize(
    "augment, found",
    [
        (_shifted, "np.random.randint"),  # hunt23 p11
        (_shifted_by_python, "random.randint"),
        (_shifted_in_graph, None),
        (_shifted_per_element, None),
    ],
)
def test_a_random_draw_made_once_as_tf_data_traces_a_map_is_found(augment, found):
    report = Report()
    unwatch = tracedrandom.watch(report)
    try:
        data = tf.data.Dataset.from_tensor_slices(np.zeros(8, np.int64) + np.arange(8))
        shifts = np.array(list(data.map(augment).as_numpy_iterator())) - np.arange(8)
    finally:
        unwatch()
    assert (len(set(shifts)) == 1) == (found is not None)  # (what the finding rests on)
    codes = [f for f in report.findings if f.code == "random-frozen-at-trace"]
    assert [f.details["call"] for f in codes] == ([found] if found else [])
    if found:
        assert f"function {augment.__name__!r}" in codes[0].message
        assert (
            "test_tracedrandom.py" in codes[0].message and "tf.random.uniform" in codes[0].message
        )


def test_draws_outside_tf_data_functions_are_silent_and_the_watch_ends():
    report = Report()
    unwatch = tracedrandom.watch(report)
    try:
        data = tf.data.Dataset.from_tensor_slices(np.random.normal(size=(8, 2)))  # the arrays
        tf.function(lambda: tf.constant(np.random.normal()))()  # (a tf.function: not judged)
        list(data.as_numpy_iterator())
    finally:
        unwatch()
    assert len(report) == 0, str(report)
    assert np.random.randint.__module__ != "gradguard.tracedrandom"
    assert not hasattr(np.random.randint, "__wrapped__") and not hasattr(
        random.randint, "__wrapped__"
    )


class _Shift(keras.layers.Layer):
    """A random-shift layer drawing with `seed` (an int, a SeedGenerator or None)."""

    def __init__(self, seed):
        super().__init__(name="shift")
        self.draw_seed = seed

    def call(self, x):
        return x + keras.random.randint((), 0, 1000, seed=self.draw_seed)


class _NoisyDense(keras.layers.Layer):
    """A layer whose build draws its initial kernel with NumPy: an initial value, once."""

    def build(self, input_shape):
        kernel = np.random.normal(size=(input_shape[-1], 2)).astype("float32")
        self.kernel = self.add_weight(shape=kernel.shape, initializer=lambda *_, **__: kernel)

    def call(self, x):
        return x @ self.kernel


class _NumpyShift(keras.layers.Layer):
    """An augmentation layer drawing with NumPy in `call` (Keras may trace it to build it)."""

    def call(self, x):
        return x + np.random.randint(0, 1000)


def _initial_kernel(shape, dtype=None):
    return np.random.normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "draw",
    [
        "numpy",
        "python",
        "in-a-layers-call",
        "tf-random",
        "in-build",
        "in-an-initializer",
        "not-a-step",
    ],
)
def test_a_random_draw_made_once_as_a_training_step_is_traced_is_found(draw):
    # hunt33 b08 (tensorflow#24610, #36715): np.random inside a tf.function step.
    layer = _NoisyDense()  # (built in the step's first trace)
    if draw == "in-an-initializer":  # a Keras layer's build draws through the script's function
        layer = keras.layers.Dense(2, kernel_initializer=_initial_kernel)
    model = keras.Sequential([_NumpyShift(), layer] if draw == "in-a-layers-call" else [layer])
    optimizer = keras.optimizers.SGD(0.01)

    def train_step(x):
        if draw == "numpy":
            x = x + np.random.randint(0, 1000)
        elif draw == "python":
            x = x + random.random()
        elif draw == "tf-random":
            x = x + tf.random.uniform(())
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return x

    step = gradguard.guard(model, optimizer)(tf.function(train_step))
    report = Report()
    unwatch = tracedrandom.watch(report, lambda: step.guard.forensics.trained_graphs)
    try:
        x = np.zeros((2, 4), np.float32)
        if draw == "in-a-layers-call":  # traced for a prediction first: no step's graph
            tf.function(model)(x)
        inputs = [step(x).numpy() for _ in range(3)]
        if draw == "not-a-step":  # a function called once, updating nothing: not judged
            tf.function(lambda: tf.constant(np.random.normal()))()
    finally:
        unwatch()
    found = {"numpy": "np.random.randint", "python": "random.random"}.get(draw)
    if draw in ("numpy", "python", "tf-random"):  # (the same input every step: frozen)
        assert (np.ptp(inputs) == 0) == (found is not None)
    found = "np.random.randint" if draw == "in-a-layers-call" else found
    codes = [f for f in report.findings if f.code == "random-frozen-at-trace"]
    assert [f.details["call"] for f in codes] == ([found] if found else []), str(report)
    if found:
        assert "training step 'train_step'" in codes[0].message, codes[0].message
        assert "test_tracedrandom.py" in codes[0].message


@pytest.mark.parametrize(
    "seed, traced, found",
    [
        (7, True, True),  # in a traced step: every call repeats the draw
        (7, False, True),  # eagerly, the same seed twice at one place
        ("generator", True, False),  # a SeedGenerator: new values at each call
        (None, True, False),
        ("per-call", False, False),  # a new integer seed each call: new values
    ],
    ids=["int-traced", "int-eager", "seed-generator", "no-seed", "seed-per-call"],
)
def test_a_keras_random_draw_given_an_integer_seed_is_found(seed, traced, found):
    report = Report()
    unwatch = tracedrandom.watch(report)
    try:
        layer = _Shift(keras.random.SeedGenerator(7) if seed == "generator" else seed)
        call = tf.function(layer) if traced else layer
        shifts = []
        for i in range(3):
            if seed == "per-call":
                layer.draw_seed = i
            shifts.append(int(call(tf.constant(0))))
    finally:
        unwatch()
    assert (len(set(shifts)) == 1) == found  # (what the finding rests on)
    codes = [f for f in report.findings if f.code == "random-frozen-at-trace"]
    assert len(codes) == found
    if found:
        assert codes[0].details == {
            "call": "keras.random.randint",
            "seed": 7,
            "file": __file__,
            "line": _Shift.call.__code__.co_firstlineno + 1,
        }
        assert "keras.random.SeedGenerator(7)" in codes[0].message


def test_one_eager_draw_with_an_integer_seed_is_silent():
    # A fixed batch of noise made once (a GAN's samples to watch): drawn once, as meant.
    report = Report()
    unwatch = tracedrandom.watch(report)
    try:
        keras.random.normal((4, 8), seed=42)
    finally:
        unwatch()
    assert len(report) == 0, str(report)
