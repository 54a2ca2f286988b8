"""`tf.function`s that belong to one gradguard object (a TrainStep, a step core, a sink)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["own_function"]


class _Key:
    """A weak-referenceable identity for TensorFlow's retracing detector."""


def own_function(fn: Callable[..., Any], **options: Any) -> Any:
    """``tf.function(fn, **options)`` whose traces are counted for this function alone.

    TensorFlow's "triggered tf.function retracing" warning counts traces per Python code object,
    so the functions of several TrainSteps in one process (a notebook cell run again, a sweep),
    each traced once, look like one function retracing, and TensorFlow warns after five. With a
    key of its own, the warning still comes for real retracing of this function, and only then.
    """
    function = tf.function(fn, **options)
    # The detector's key is a private attribute of TensorFlow's Function: if it is ever
    # renamed, this does nothing and the spurious warning comes back, nothing else changes.
    if hasattr(function, "_key_for_call_stats"):
        function._key_for_call_stats = _Key()
    return function
