"""Every private TensorFlow and Keras API gradguard touches, in one place.

gradguard depends on TensorFlow >= 2.16 (Keras 3). Where the public API has no way to ask
something, the private one is reached from here only, each with what happens if it moves: a
TensorFlow or Keras upgrade that breaks one of these breaks this module, not the ones using it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf
from keras.src.saving import saving_lib as _saving_lib
from tensorflow.core.framework import attr_value_pb2 as _attr_value_pb2
from tensorflow.core.protobuf import trackable_object_graph_pb2 as _graph_pb2
from tensorflow.python.eager import context as _context
from tensorflow.python.eager import record as _tape_record
from tensorflow.python.framework import op_callbacks as _op_callbacks
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.lib.io import tf_record as _tf_record
from tensorflow.python.ops import control_flow_util as _control_flow_util
from tensorflow.python.ops import resource_variable_ops as _variable_ops

__all__ = [
    "BASE_OPTIMIZER",
    "CHECKPOINT_GRAPH_KEY",
    "KERAS_TRAINER",
    "RESOURCE_VARIABLES",
    "checkpoint_object_graph",
    "checkpoint_state_text",
    "flatten_layers",
    "function",
    "global_seed_state",
    "gradient_function",
    "in_xla_context",
    "inner_optimizer",
    "keras_weights_layout",
    "layers_feeding",
    "learning_rate_object",
    "load_keras_weights",
    "lookup_dependency",
    "optimizer_variables",
    "outside_trace",
    "output_loss_weights",
    "record_reader",
    "set_learning_rate_object",
    "strategy_supports_no_merge_call",
    "tape_is_recording",
    "trackable_children",
    "traced_function",
    "untraced_copy",
    "users_op_callbacks",
    "without_op_callbacks",
]

# Keras' BaseOptimizer, which holds `apply`: every Keras 3 optimizer (and the TensorFlow
# backend's `TFOptimizer` mixin) inherits it. Patched process-wide by `gradguard run`.
BASE_OPTIMIZER: type = keras.optimizers.Optimizer.__mro__[-3]
# The backend's trainer, whose `train_step(data)` fit and train_on_batch call (Keras 3, TF).
KERAS_TRAINER: type = next(c for c in keras.Model.__mro__ if "train_step" in vars(c))
# The classes of a tf.Variable (a Keras variable holds one) whose methods set its value.
RESOURCE_VARIABLES = (_variable_ops.BaseResourceVariable, _variable_ops.ResourceVariable)


@contextlib.contextmanager
def outside_trace() -> Iterator[None]:
    """`tf.init_scope`, where variables made do not make the function being traced trace again.

    A `tf.function` whose first trace makes a variable traces itself twice (to lift its initial
    value out of the graph). gradguard's state, and an optimizer's slots built before its first
    update, are made eagerly here, so a guarded step is traced once.
    """

    def eager(next_creator: Callable[..., Any], **kwargs: Any) -> Any:
        if tf.executing_eagerly():
            kwargs["experimental_enable_variable_lifting"] = False
        return next_creator(**kwargs)

    with tf.variable_creator_scope(eager), tf.init_scope():
        yield


# The op callbacks `without_op_callbacks` took off, innermost last, per thread (as TF's are).
_suspended = threading.local()


@contextlib.contextmanager
def without_op_callbacks() -> Iterator[None]:
    """A block of gradguard's own ops, made or run unseen by the user's op callbacks.

    `tf.debugging.enable_check_numerics()`, how users look for the op that made a NaN, is an
    op callback: it checks every op made or run after it. gradguard's state holds infinities
    and NaN on purpose (a minimum not yet seen, a rate not measured), so its reads raised in a
    healthy loop; and the user asked about their own ops. (TF's private `op_callbacks`, per
    thread: taken off the context and put back in order.)
    """
    callbacks = list(_context.context().op_callbacks)
    if not callbacks:
        yield
        return
    for callback in callbacks:
        _op_callbacks.remove_op_callback(callback)
    stack = _suspended.__dict__.setdefault("callbacks", [])
    stack.append(callbacks)
    try:
        yield
    finally:
        stack.pop()
        for callback in callbacks:
            _op_callbacks.add_op_callback(callback)


@contextlib.contextmanager
def users_op_callbacks() -> Iterator[None]:
    """Inside `without_op_callbacks`, the user's own ops (the optimizer's update) seen again."""
    stack = getattr(_suspended, "callbacks", None)
    if not stack or _context.context().op_callbacks:
        yield
        return
    for callback in stack[-1]:
        _op_callbacks.add_op_callback(callback)
    try:
        yield
    finally:
        for callback in stack[-1]:
            _op_callbacks.remove_op_callback(callback)


def traced_function(fn: Any) -> bool:
    """Whether `fn` is a `tf.function` traced already (its graphs call no new Python)."""
    count = getattr(fn, "experimental_get_tracing_count", None)
    return callable(count) and count() > 0


def untraced_copy(fn: Any) -> Any:
    """A `tf.function` of `fn`'s Python function with its options, not traced yet (private)."""
    return fn._clone(None)


def is_variable(obj: Any) -> bool:
    """Whether `obj` is a TensorFlow or Keras variable (Keras 3 variables are not tf.Variables)."""
    return isinstance(obj, (tf.Variable, keras.Variable))


def tape_is_recording() -> bool:
    """Whether a `tf.GradientTape` is recording now (a training forward pass)."""
    return bool(_tape_record.could_possibly_record())


def in_xla_context() -> bool:
    """Whether the code being traced will be compiled by XLA (`jit_compile=True`)."""
    graph = tf.compat.v1.get_default_graph()
    return bool(_control_flow_util.GraphOrParentsInXlaContext(graph))


def rare_cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """`tf.cond` for a branch of many ops taken on few steps, kept one `If` op in a graph.

    A lowered conditional (Switch and Merge) passes a dead tensor through every op of the branch
    not taken, every step (0.1 us an op here); an `If` op calls the branch taken as a function
    (5 us), which pays from some fifty ops; XLA lowers nothing. An `If` op sits with every
    resource it reads: one reading a mirrored variable's copies on two devices stays lowered.
    """
    if tf.executing_eagerly():
        return tf.cond(pred, true_fn, false_fn)
    graph = tf.compat.v1.get_default_graph()
    before = len(graph.get_operations())
    result = tf.cond(pred, true_fn, false_fn)
    outer = {id(inner): outer for outer, inner in getattr(graph, "captures", ())}
    for op in graph.get_operations()[before:]:
        resources = [outer.get(id(t), t) for t in op.inputs if t.dtype == tf.resource]
        if op.type in ("If", "StatelessIf") and len({t.device for t in resources}) <= 1:
            op._set_attr(  # pylint: disable=protected-access
                "_lower_using_switch_merge", _attr_value_pb2.AttrValue(b=False)
            )
    return result


def gradient_function(op: tf.Operation) -> Any:
    """`op`'s registered gradient function, or None; LookupError if its type has none."""
    return _tf_ops.get_gradient_function(op)


def record_reader(path: str) -> Any:
    """A random-access reader of a TFRecord file (event files): ``read(offset)`` per record.

    Unlike `tf.data.TFRecordDataset`, it says where a damaged record starts, so a file cut short
    by a crash can be read up to the damage.
    """
    return _tf_record.tf_record_random_reader(path)


def output_loss_weights(model: Any) -> dict[str, float] | None:
    """Per output name, the loss weight `compile` gave it; None without per-output weights."""
    weights = getattr(getattr(model, "_compile_loss", None), "_user_loss_weights", None)
    names = list(getattr(model, "output_names", None) or [])
    if isinstance(weights, dict):
        return {name: float(weights.get(name, 1.0)) for name in names}
    if isinstance(weights, (list, tuple)) and len(weights) == len(names):
        return {name: float(w) for name, w in zip(names, weights)}
    return None


def compiled_loss_object(loss: Any) -> Any:
    """A single loss as `compile` calls it, or None for a name resolved from the data.

    A name is looked up and a function wrapped, as Keras' `LossFunctionWrapper` does (it
    aligns ranks first); ``"crossentropy"`` is resolved by `compile` from the labels.
    """
    from keras.src.losses.losses import LossFunctionWrapper

    try:
        loss = keras.losses.get(loss) if isinstance(loss, str) else loss
    except ValueError:
        return None
    return loss if isinstance(loss, keras.losses.Loss) else LossFunctionWrapper(loss)


def layers_feeding(tensors: Any) -> set[int]:
    """Ids of the layers a functional model's symbolic `tensors` are computed from."""
    seen: set[int] = set()
    stack = list(tensors)
    while stack:
        history = getattr(stack.pop(), "_keras_history", None)
        if history is None or id(history.operation) in seen:
            continue
        seen.add(id(history.operation))
        node = history.operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return seen


def optimizer_variables(optimizer: Any) -> list[Any]:
    """The variables a built Keras optimizer was built for, in its own order."""
    return list(getattr(optimizer, "_trainable_variables", []))


def inner_optimizer(optimizer: Any) -> Any:
    """The optimizer that sees unscaled gradients and owns the rate (inside LossScaleOptimizers)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def learning_rate_object(optimizer: Any) -> Any:
    """What a Keras optimizer holds as its rate: a variable, a schedule or a callable.

    The public `learning_rate` gives the current value only, and its setter cannot put a
    schedule's variable-backed rate back (it untracks the variable), hence the attribute.
    """
    return inner_optimizer(optimizer)._learning_rate


def set_learning_rate_object(optimizer: Any, rate: Any) -> None:
    """Makes `rate` (as `learning_rate_object` returned it, or a callable) the optimizer's rate.

    A callable is not a variable, so Keras' tracker leaves the optimizer's variable list alone;
    the original variable, when put back, is already in that list and is not added twice.
    """
    inner_optimizer(optimizer)._learning_rate = rate


def global_seed_state() -> Any:
    """The state variable of Keras' global seed generator (`seed=None` draws), if one exists."""
    from keras.src.backend.common import global_state

    generator = global_state.get_global_attribute("global_seed_generator")
    return getattr(generator, "state", None)


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

    AutoGraph is off unless asked for: gradguard's own code is plain TensorFlow, and converting
    it (the core, the transforms, every check) took seconds at every first call. The user's loss
    function keeps AutoGraph's Python control flow through `losses.resolve`; Keras models and
    losses are never converted (as in `model.fit`).
    """
    options.setdefault("autograph", False)
    traced = tf.function(fn, **options)
    if hasattr(traced, "_key_for_call_stats"):
        traced._key_for_call_stats = _RetracingKey()
    return traced


# --- checkpoints
# What `gradguard.checkpoint` reads of TensorFlow's checkpoint internals and Keras' saving code.

# The key under which `tf.train.Checkpoint` stores its object graph in the checkpoint.
CHECKPOINT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def checkpoint_object_graph(serialized: bytes) -> Any:
    """The `TrackableObjectGraph` proto stored under `CHECKPOINT_GRAPH_KEY`."""
    graph = _graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(serialized)
    return graph


def trackable_children(obj: Any) -> dict[str, Any]:
    """The children `tf.train.Checkpoint` saves for `obj`, by local name."""
    return dict(obj._trackable_children())


def lookup_dependency(obj: Any, name: str, children: dict[str, Any]) -> Any:
    """The child a restore binds to the saved child `name` of `obj` (None if there is none)."""
    return obj._lookup_dependency(name, children)


def checkpoint_state_text(paths: list[str], timestamps: list[float]) -> str:
    """The text of TensorFlow's ``checkpoint`` state file, as its CheckpointManager writes it.

    `paths` are relative to the directory, oldest first; the last is the latest. gradguard
    writes the file itself, so that it reaches the disk (fsync) before it counts.
    """
    from google.protobuf import text_format
    from tensorflow.python.checkpoint import checkpoint_management

    state = checkpoint_management.generate_checkpoint_state_proto(
        "",
        paths[-1],
        all_model_checkpoint_paths=list(paths),
        all_model_checkpoint_timestamps=list(timestamps),
        last_preserved_timestamp=min(timestamps) - 1,  # older: none are "preserved" forever
    )
    return str(text_format.MessageToString(state))


class _RecordingStore(_saving_lib.H5IOStore):
    """Receives what `model.save_weights` would write, keeping the values instead.

    Keras' `_save_state` accepts only its own store classes, hence the subclass; nothing is
    written.
    """

    def __init__(self) -> None:  # no file
        self.path = ""
        self.values: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return True

    def make(self, path: str, metadata: dict[str, Any] | None = None) -> _RecordingStore:
        self.path = f"{path}/vars" if path else "vars"
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[f"{self.path}/{key}"] = value

    def close(self) -> None:
        pass


def keras_weights_layout(model: Any, skip: list[Any]) -> dict[str, Any]:
    """What `model.save_weights` would write, by HDF5 dataset path (``dense/vars/0``).

    Walking the model with Keras' own `_save_state` gives exactly the dataset paths that
    `load_weights` reads, without writing anything. Objects in `skip` (and their children) are
    left out.
    """
    store = _RecordingStore()
    _saving_lib._save_state(model, store, None, "", visited_saveables={id(o) for o in skip})
    return store.values


def load_keras_weights(model: Any, path: str, skip_mismatch: bool, skip: list[Any]) -> None:
    """`model.load_weights(path)` (`.weights.h5` or `.keras`), leaving the objects in `skip`.

    The public `load_weights` refuses `objects_to_skip` for `.keras` archives; Keras' own loader
    behind it takes it for both.
    """
    _saving_lib.load_weights_only(model, path, skip_mismatch=skip_mismatch, objects_to_skip=skip)
