"""Every private TensorFlow and Keras API gradguard touches, in one place.

gradguard depends on TensorFlow >= 2.16 (Keras 3). Where the public API has no way to ask
something, the private one is reached from here only, each with what happens if it moves: a
TensorFlow or Keras upgrade that breaks one of these breaks this module, not the ones using it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.eager import record as _tape_record
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.lib.io import tf_record as _tf_record
from tensorflow.python.ops import control_flow_util as _control_flow_util

__all__ = [
    "BASE_OPTIMIZER",
    "flatten_layers",
    "function",
    "gradient_function",
    "in_xla_context",
    "optimizer_variables",
    "record_reader",
    "strategy_supports_no_merge_call",
    "tape_is_recording",
]

# Keras' BaseOptimizer, which holds `apply`: every Keras 3 optimizer (and the TensorFlow
# backend's `TFOptimizer` mixin) inherits it. Patched process-wide by `gradguard run`.
BASE_OPTIMIZER: type = keras.optimizers.Optimizer.__mro__[-3]


def tape_is_recording() -> bool:
    """Whether a `tf.GradientTape` is recording now (a training forward pass)."""
    return bool(_tape_record.could_possibly_record())


def in_xla_context() -> bool:
    """Whether the code being traced will be compiled by XLA (`jit_compile=True`)."""
    graph = tf.compat.v1.get_default_graph()
    return bool(_control_flow_util.GraphOrParentsInXlaContext(graph))


def gradient_function(op: tf.Operation) -> Any:
    """The registered gradient function of `op` (None when it has none registered as such).

    Raises:
      LookupError: when no gradient is registered for the op's type at all.
    """
    return _tf_ops.get_gradient_function(op)


def record_reader(path: str) -> Any:
    """A random-access reader of a TFRecord file (event files): ``read(offset)`` per record.

    Unlike `tf.data.TFRecordDataset`, it says where a damaged record starts, so a file cut short
    by a crash can be read up to the damage.
    """
    return _tf_record.tf_record_random_reader(path)


def optimizer_variables(optimizer: Any) -> list[Any]:
    """The variables a built Keras optimizer was built for, in its own order."""
    return list(getattr(optimizer, "_trainable_variables", []))


def flatten_layers(model: Any) -> list[Any]:
    """Every layer of a Keras model, itself included, depth first (Keras' own walk)."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:
        return []
    return list(flatten(include_self=True, recursive=True))


def strategy_supports_no_merge_call() -> bool:
    """Whether the current strategy synchronizes without `merge_call` (no cross-replica cond)."""
    return bool(tf.__internal__.distribute.strategy_supports_no_merge_call())


class _RetracingKey:
    """A weak-referenceable identity for TensorFlow's retracing detector."""


def function(fn: Callable[..., Any], **options: Any) -> Any:
    """``tf.function(fn, **options)`` whose traces are counted for this function alone.

    TensorFlow's "triggered tf.function retracing" warning counts traces per Python code object,
    so the functions of several gradguard objects in one process (a notebook cell run again, a
    sweep), each traced once, look like one function retracing, and TensorFlow warns after
    five. With a key of its own, the warning still comes for real retracing of this function,
    and only then. If the private attribute is renamed, this is plain `tf.function` and only the
    spurious warning comes back.
    """
    traced = tf.function(fn, **options)
    if hasattr(traced, "_key_for_call_stats"):
        traced._key_for_call_stats = _RetracingKey()
    return traced
