"""Where a NaN or Inf came from: the batch replayed once, layer by layer, forward and backward.

Healthy steps pay nothing for this. When a step's loss or gradients are not finite, the step
keeps its batch (`TrainStep`, `GuardCallback`); the next host read replays it here, eagerly
(never under XLA), through the model with every layer's inputs and outputs recorded, and names
the first tensor that went non-finite in the order the step computed it:

* ``data``: NaN/Inf already in the inputs, the labels or the sample weights;
* ``forward``: the first layer whose output is not finite while its inputs are;
* ``loss``: the loss itself, every layer's output being finite;
* ``backward``: walking back from the loss, the first layer whose input gradient is not finite
  while its output gradient is (or every gradient finite, but too large to square in float32);
* ``update``: the weights themselves are not finite: an update of finite gradients made them so
  (a float16 epsilon that rounds to 0, an overflowing learning rate).

The op inside the culprit is named by running that layer (or its backward pass) once more under
`tf.debugging.enable_check_numerics`, which names the first op that produced a NaN or Inf.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, instrument

__all__ = ["Keeper", "Kept", "Origin", "note", "trace"]


@dataclasses.dataclass(frozen=True)
class Origin:
    """The first non-finite tensor of a replayed step.

    Attributes:
      stage: ``"data"``, ``"forward"``, ``"loss"``, ``"backward"`` or ``"update"``.
      layer: The culprit layer's path (``encoder/dense``), or None.
      op: The op that produced the NaN/Inf (``Log``; ``SqrtGrad`` in the backward pass), if named.
      inputs: For ``data``: which of the batch's parts hold NaN/Inf, with their first bad rows.
    """

    stage: str
    layer: str | None = None
    op: str | None = None
    inputs: tuple[str, ...] = ()
    exploding: float | None = None  # the global norm of finite gradients too large for float32

    def to_dict(self, step: int) -> dict[str, Any]:
        """The ``details["origin"]`` of a `non-finite` finding."""
        origin: dict[str, Any] = {"stage": self.stage, "layer": self.layer, "op": self.op}
        if self.inputs:
            origin["inputs"] = list(self.inputs)
        if self.exploding is not None:
            origin["exploding_norm"] = self.exploding
        origin["step"] = step
        return origin

    def describe(self) -> str:
        """A phrase for the finding's message."""
        op = f" (op {self.op})" if self.op else ""
        if self.stage == "data":
            return f"the batch itself: {' and '.join(self.inputs)}"
        if self.stage == "forward":
            return f"the forward pass, in layer {self.layer}{op}, whose inputs were finite"
        if self.stage == "loss":
            return f"the loss{op}, every layer's output being finite"
        if self.exploding is not None:
            return (
                f"the gradients were finite but exploding: their global norm, "
                f"{self.exploding:.2g} (largest in layer {self.layer}), overflows float32 when "
                "squared, so the step read it as Inf"
            )
        if self.stage == "update":
            return (
                f"the optimizer update: the weights of {self.layer} were already NaN/Inf, made "
                "so by an update of finite gradients"
            )
        return (
            f"the backward pass, in layer {self.layer}{op}: its input gradient is NaN/Inf while "
            "its output gradient is finite"
        )


class Keeper:
    """Keeps the batch of the first step whose loss or gradients were not finite (in-graph).

    One conditional per step, taken only on that step: the batch is serialized into one
    string variable that the host reads at its next read, for `trace`. Its variables need no
    batch to be made, so they can be made before any trace. Not under XLA, which has no
    strings: an XLA step is wrapped by one that keeps.
    """

    def __init__(self) -> None:
        with _compat.outside_trace():
            self._data = tf.Variable(
                tf.constant([], tf.string), shape=tf.TensorShape([None]), trainable=False
            )
            self._step = tf.Variable(tf.constant(-1, tf.int64), trainable=False)
        # The batch's structure and dtypes, and the weights kept with it, from the trace that
        # keeps it.
        self._structure: Any = None
        self._dtypes: list[tf.DType | None] = []
        self._weights: list[Any] = []
        self._replayed = -1  # the step `unreplayed` last gave

    def keep(self, healthy: tf.Tensor, step: Any, batch: Any, weights: Sequence[Any] = ()) -> None:
        """Keeps `batch` if this is the first unhealthy step (in-graph).

        Args:
          healthy: Whether this step's loss and gradients are finite.
          step: The step.
          batch: What to replay.
          weights: Variables to keep with it, read before this step's update (the guard keeps
            before the update is applied): a replay restores them when a non-finite update
            overwrote them. Read only on the step kept, so healthy steps copy nothing.
        """
        self._weights = list(weights)
        leaves = [*tf.nest.flatten(batch), *self._weights]
        self._structure = batch
        self._dtypes = [None if leaf is None else tf.as_dtype(leaf.dtype) for leaf in leaves]

        def keep() -> tf.Tensor:
            serialized = [
                tf.constant("") if leaf is None else tf.io.serialize_tensor(leaf) for leaf in leaves
            ]
            self._data.assign(tf.stack(serialized))
            self._step.assign(tf.cast(step, tf.int64))
            return tf.constant(True)

        tf.cond(~healthy & (self._step < 0), keep, lambda: tf.constant(False))

    def unreplayed(self) -> Kept | None:
        """`kept()` the first time it is asked for after the step was kept; then None."""
        kept = self.kept()
        if kept is None or kept.step == self._replayed:
            return None
        self._replayed = kept.step
        return kept

    def kept(self) -> Kept | None:
        """The step kept, its batch and weights, as NumPy arrays (host), or None."""
        step = int(self._step.numpy())
        if step < 0 or self._structure is None:
            return None
        data = self._data.numpy()
        values: list[Any] = [
            None if dtype is None else tf.io.parse_tensor(item, dtype).numpy()
            for item, dtype in zip(data, self._dtypes)
        ]
        split = len(values) - len(self._weights)
        batch = tf.nest.pack_sequence_as(self._structure, values[:split])
        return Kept(step, batch, list(zip(self._weights, values[split:])))


class Kept(NamedTuple):
    """What `Keeper` kept: the step, its batch, and ``(variable, value)`` of the weights kept."""

    step: int
    batch: Any
    weights: list[tuple[Any, np.ndarray]]


@contextlib.contextmanager
def _weights_of(weights: Sequence[tuple[Any, np.ndarray]]) -> Iterator[None]:
    """Gives the variables the values kept for the duration, then puts the current ones back."""
    current = [variable.numpy() for variable, _ in weights]
    try:
        for variable, value in weights:
            variable.assign(value)
        yield
    finally:
        for (variable, _), value in zip(weights, current):
            variable.assign(value)


class _Calls:
    """Every Keras layer call of a forward pass: (layer, inputs, output), in completion order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, list[tf.Tensor], list[tf.Tensor]]] = []

    def record(self, layer: Any, result: Any, args: Sequence[Any] = (), *_: Any) -> None:
        inputs = [t for t in tf.nest.flatten(list(args)) if tf.is_tensor(t)]
        outputs = [t for t in tf.nest.flatten(result) if tf.is_tensor(t)]
        self.calls.append((layer, inputs, outputs))


def _finite(tensors: Sequence[Any]) -> bool:
    floats = [t for t in tensors if t is not None and t.dtype.is_floating]
    return all(bool(np.all(np.isfinite(t.numpy()))) for t in floats)


_OP = re.compile(r'eagerly-executing op "(\w+)"')


def _op_of(run: Callable[[], Any]) -> str | None:
    """The first op that produces NaN/Inf when `run()` runs eagerly, or None."""
    tf.debugging.enable_check_numerics()
    try:
        run()
    except tf.errors.InvalidArgumentError as e:
        match = _OP.search(str(e))
        return match.group(1) if match else None
    except Exception:  # noqa: BLE001 - a layer that cannot be called alone: no op named
        return None
    finally:
        tf.debugging.disable_check_numerics()
    return None


def _path(layer: Any, model_name: str) -> str:
    name = str(getattr(layer, "path", None) or layer.name)
    prefix = f"{model_name}/"
    return name[len(prefix) :] if model_name and name.startswith(prefix) else name


def _bad_rows(value: Any) -> list[int]:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating) or array.ndim == 0 or not array.size:
        return []
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return [int(i) for i in np.flatnonzero(bad)[:5]]


def _data(x: Any, y: Any, sample_weight: Any) -> Origin | None:
    """The batch at fault: no examples, or NaN/Inf in its inputs, labels or sample weights."""
    leaves = [np.asarray(leaf) for leaf in tf.nest.flatten(x) if leaf is not None]
    if any(leaf.ndim and not len(leaf) for leaf in leaves):
        # A mean over no examples is 0/0 (in a loss, or in batch normalization's statistics).
        return Origin("data", inputs=("no examples (an empty batch)",))
    named = []
    parts = (("the inputs x", x), ("the labels y", y), ("the sample weights", sample_weight))
    for name, value in parts:
        rows = [r for leaf in tf.nest.flatten(value) if leaf is not None for r in _bad_rows(leaf)]
        if rows:
            named.append(f"NaN/Inf in {name} (rows {', '.join(map(str, sorted(set(rows))[:5]))})")
    return Origin("data", inputs=tuple(named)) if named else None


def trace(
    model: Any,
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    loss: Callable[[Any, Any], Any] | None = None,
    weights: Sequence[tuple[Any, np.ndarray]] = (),
) -> Origin | None:
    """Replays one step's batch eagerly and finds where it first went non-finite.

    Args:
      model: The Keras model (or layer) trained.
      x: The step's inputs.
      y: Its labels, if known.
      sample_weight: Its sample weights, if any.
      loss: Computes the scalar loss from ``(y, y_pred)``; without it the replay stops after
        the forward pass (a non-finite loss of finite outputs is then the loss's doing).
      weights: ``(variable, value)`` kept with the batch (`Keeper`): the replay runs on them
        when the current weights are not finite (a non-finite update was applied since).

    Returns:
      The origin, or None when the replay is all finite (it did not reproduce the NaN).
    """
    found = _data(x, y, sample_weight)
    if found is not None:
        return found
    # Only what updates write: a non-trainable statistic (batch normalization's moving mean)
    # is written by the forward pass itself, which the replay runs again.
    trained = list(getattr(model, "trainable_weights", []))
    current = [tf.convert_to_tensor(w) for w in trained]
    if weights and not _finite(current) and _finite([tf.constant(v) for _, v in weights]):
        with _weights_of(weights):
            return trace(model, x, y, sample_weight, loss)
    model_name = str(getattr(model, "name", ""))
    for weight, value in zip(trained, current):
        if not _finite([value]):
            # Updates of finite gradients made them so (non-finite gradients are skipped).
            return Origin("update", _path(weight, model_name).rsplit("/", 1)[0])
    calls = _Calls()
    with tf.GradientTape(persistent=True) as tape, instrument.tapping_layers(calls):
        y_pred = model(x, training=True)
        value = None if loss is None or y is None else loss(y, y_pred)
    for layer, inputs, outputs in calls.calls:
        if isinstance(layer, keras.Model) or not outputs or _finite(outputs):
            continue
        if _finite(inputs):
            op = _op_of(functools.partial(layer, *inputs, training=True))
            return Origin("forward", _path(layer, model_name), op)
    if value is None:
        return None if _finite(tf.nest.flatten(y_pred)) else Origin("forward")
    if not _finite([tf.convert_to_tensor(value)]):
        op = _op_of(lambda: loss(y, y_pred)) if loss is not None else None
        return Origin("loss", op=op)
    # Backward: from the loss towards the inputs (reverse completion order), innermost layers
    # first (a block's own input gradient breaks where one of its layers' does).
    layered = [(layer, i, o) for layer, i, o in calls.calls if not isinstance(layer, keras.Model)]
    sources = [t for _, i, o in layered for t in (*i, *o)]
    grads = tape.gradient(value, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    weight_grads = tape.gradient(value, trained)
    del tape
    by_id = {id(t): g for t, g in zip(sources, grads)}
    broken = []
    for layer, inputs, outputs in reversed(layered):
        upstream = [by_id.get(id(o)) for o in outputs]
        if _finite(upstream) and not _finite([by_id.get(id(i)) for i in inputs]):
            broken.append((layer, inputs, upstream))
    broken.sort(key=lambda found: bool(getattr(found[0], "_layers", None)))  # leaves first
    if broken:
        layer, inputs, upstream = broken[0]
        return Origin("backward", _path(layer, model_name), _backward_op(layer, inputs, upstream))
    return _exploding(trained, weight_grads, model_name)


def _exploding(weights: Sequence[Any], grads: Sequence[Any], model_name: str) -> Origin | None:
    """Finite gradients whose squared global norm overflows float32 (a norm above ~1.8e19).

    The step squares norms in float32, where such gradients read as Inf: their update is
    skipped and reported as non-finite, while every value the replay sees is finite.
    """
    norms = {
        id(w): float(np.linalg.norm(np.asarray(tf.convert_to_tensor(g), np.float64)))
        for w, g in zip(weights, grads)
        if g is not None
    }
    total = float(np.sqrt(sum(n * n for n in norms.values())))  # 0 without gradients
    if not np.isfinite(total) or total < math.sqrt(np.finfo(np.float32).max / 4):
        return None
    largest = max(weights, key=lambda w: norms.get(id(w), -1.0))
    return Origin("backward", _path(largest, model_name).rsplit("/", 1)[0], exploding=total)


def _backward_op(layer: Any, inputs: Sequence[tf.Tensor], upstream: Sequence[Any]) -> str | None:
    """The op of `layer`'s backward pass that produces the NaN/Inf (e.g. ``SqrtGrad``)."""
    watched = [tf.identity(t) for t in inputs]

    def run() -> Any:
        with tf.GradientTape() as tape:
            tape.watch(watched)
            outputs = tf.nest.flatten(layer(*watched, training=True))
        return tape.gradient(outputs, watched, output_gradients=list(upstream))

    return _op_of(run)


def note(
    found: Origin | None,
    step: int,
    *,
    xla: bool = False,
    forward_only: bool = False,
    latest: bool = False,
) -> dict[str, Any]:
    """What a replay found, as `Context.notes["non_finite_origin"]` for `NonFinite`.

    Args:
      found: What `trace` returned (None: the replay stayed finite).
      step: The step replayed.
      xla: The step ran under XLA (the replay does not).
      forward_only: Only the model's forward pass could be replayed (the guard sees the model's
        inputs, not the labels or the loss).
      latest: `step` is the latest unhealthy step, not the first (an XLA step keeps no batch:
        the host replays the latest call's).
    """
    if latest:
        return {**note(found, step, xla=xla, forward_only=forward_only), "latest": True}
    if found is None and forward_only:
        return {
            "step": step,
            "replayed": False,
            "where": (
                "a replay of the model on that batch stayed finite, so it began in the labels, "
                "the loss or the backward pass (the guard does not see the labels or the loss "
                "function to replay them)"
            ),
        }
    if found is None:
        return {
            "step": step,
            "replayed": False,
            "where": (
                "a replay of its batch stayed finite"
                + (" (the replay runs without XLA: XLA's numerics differ)" if xla else "")
                + "; randomness (dropout, noise) or state the replay cannot restore is at play"
            ),
        }
    return {
        "step": step,
        "replayed": True,
        "where": found.describe() + (" (replayed without XLA)" if xla else ""),
        "origin": found.to_dict(step),
    }
