"""A NumPy or Python random draw in a `tf.data` function (`random-frozen-at-trace`).

Real pipelines under `tracedrandom.watch`: `np.random` and `random` in a map function are drawn
once, at the trace (every element gets the same value), and found; `tf.random` in the map, a
NumPy draw inside `tf.py_function` (run per element), NumPy drawing the arrays before the
pipeline and a draw in a `tf.function` that is not tf.data's stay silent.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import tensorflow as tf

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
