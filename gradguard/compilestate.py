"""Keras' compile state built outside fit's first trace, so that fit's function traces once.

Keras (TensorFlow backend, no strategy) builds what `compile` set up lazily, in the first trace
of fit's train function: the metrics (``metrics=["accuracy"]`` becomes a categorical, sparse or
binary accuracy once the labels' and outputs' shapes are known) and, for several outputs, the
loss's per-output trackers. Variables made in a `tf.function`'s first trace make TensorFlow
trace it a second time, and a guarded step costs several times a plain one to trace. Those
builds run here where Keras calls them, with the same arguments, but outside the trace
(`_compat.outside_trace`, as the guard builds the optimizer): the function is traced once and
ends up with the same metrics.
"""

from __future__ import annotations

import functools
from typing import Any

import tensorflow as tf

from gradguard import _compat

__all__ = ["build_outside_trace"]


def build_outside_trace(model: Any) -> None:
    """Has `model`'s unbuilt compile metrics and loss build outside the trace that calls them."""
    for state in (getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)):
        if state is not None and not getattr(state, "built", True) and "build" not in vars(state):
            # (an instance attribute shadows the class's build, for this object and one call)
            object.__setattr__(state, "build", _outside(state))


def _outside(state: Any) -> Any:
    """`state`'s build, made outside the trace when called in one."""
    build = type(state).build

    @functools.wraps(build)
    def outside(*args: Any, **kwargs: Any) -> Any:
        vars(state).pop("build", None)
        if tf.inside_function():
            try:
                with _compat.outside_trace():
                    return build(state, *args, **kwargs)
            except Exception:  # (one that needs the traced tensors: built in the trace, as Keras)
                pass
        return build(state, *args, **kwargs)

    return outside
