"""The loss `TrainStep` differentiates: the user's loss function, reduced as Keras reduces it.

`resolve` accepts what `model.compile(loss=...)` accepts; `compute` turns ``loss_fn(y, y_pred)``
into the scalar the step differentiates: sample weights applied, a per-example result averaged
("sum_over_batch_size"), `model.losses` added, and divided by the number of replicas when the
replicas' gradients are summed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from gradguard import lossgraph
from gradguard.findings import Finding

__all__ = ["LossFn", "LossShapes", "compute", "resolve"]

LossFn = Callable[..., Any]


def resolve(loss_fn: Any) -> LossFn:
    """The loss as a callable: a `keras.losses.Loss`, a Keras loss name or a function.

    Raises:
      ValueError: for a name Keras does not know.
      TypeError: for something that is not callable.
    """
    if isinstance(loss_fn, str):  # "mse", as in model.compile
        try:
            loss_fn = keras.losses.get(loss_fn)
        except ValueError:
            raise ValueError(
                f"loss_fn {loss_fn!r} is not a Keras loss name; use e.g. 'mse' or a "
                "keras.losses.Loss object."
            ) from None
    if not callable(loss_fn) or not _takes_labels_and_predictions(loss_fn):
        shown = type(loss_fn).__name__ if not callable(loss_fn) else _signature_text(loss_fn)
        raise TypeError(
            f"loss_fn must be a keras.losses.Loss or a function (y_true, y_pred) -> loss; "
            f"got {shown}."
        )
    return _with_autograph(loss_fn)


def _takes_labels_and_predictions(fn: Any) -> bool:
    """Whether `fn` can be called as ``fn(y_true, y_pred)`` (True when Python cannot tell)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
        return True
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True


def _signature_text(fn: Any) -> str:
    return f"{getattr(fn, '__name__', type(fn).__name__)}{inspect.signature(fn)}"


def _with_autograph(loss_fn: Any) -> Any:
    """A function of the user's as a plain `tf.function` would run it: converted by AutoGraph.

    gradguard's steps trace without AutoGraph (see `_compat.function`), so a Python ``if`` on a
    tensor in the user's loss function is converted here, once. Keras' and TensorFlow's own
    functions, loss objects and whatever AutoGraph cannot convert are called as they are.
    """
    if not inspect.isfunction(loss_fn) and not inspect.ismethod(loss_fn):
        return loss_fn
    if (getattr(loss_fn, "__module__", None) or "").split(".")[0] in ("keras", "tensorflow"):
        return loss_fn
    try:
        return tf.autograph.to_graph(loss_fn)
    except Exception:  # noqa: BLE001 - no source (a REPL), a builtin: plain Python, as tf.function
        return loss_fn


def compute(
    loss_fn: LossFn,
    y: Any,
    y_pred: Any,
    sample_weight: Any,
    regularization: Sequence[Any],
) -> tf.Tensor:
    """The scalar float32 loss of one batch (one replica's share under a strategy).

    Args:
      loss_fn: From `resolve`.
      y: The labels.
      y_pred: The model's output.
      sample_weight: Per-example weights, or None.
      regularization: `model.losses`.

    Raises:
      TypeError: for a loss that is None, not a floating-point tensor, or a tuple; or a
        scalar loss with `sample_weight` (weights need one loss per example).
    """
    # Under a strategy the replicas' gradients are summed, so each replica's loss is 1/R of
    # its mean. Keras loss objects do that division themselves; the rest is done here.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if isinstance(loss_fn, keras.losses.Loss):
        value = _checked(loss_fn(y, y_pred, sample_weight=sample_weight))
        replicas_left = 1
    else:
        replicas_left = replicas
        value = _checked(loss_fn(y, y_pred))
        if sample_weight is not None:
            value = _weighted(value, sample_weight)
    if value.shape.rank != 0:
        value = tf.reduce_mean(value)  # as Keras' default "sum_over_batch_size"
    value = tf.cast(value, tf.float32) / replicas_left
    if regularization:
        value += tf.add_n([tf.cast(r, tf.float32) for r in regularization]) / replicas
    return value


def _checked(value: Any) -> tf.Tensor:
    if value is None:
        raise TypeError("loss_fn returned None; it must return the loss as a float tensor.")
    if isinstance(value, (tuple, list)):
        raise TypeError(
            f"loss_fn returned a {type(value).__name__} of {len(value)} values; it must return "
            "the loss alone (a scalar, or one loss per example). Return the other values "
            "from a separate function."
        )
    value = tf.convert_to_tensor(value)
    if not value.dtype.is_floating:
        raise TypeError(
            f"loss_fn returned a {value.dtype.name} tensor; a loss must be floating point "
            "to have gradients. Cast labels and predictions to float before the loss."
        )
    return value


def _weighted(value: tf.Tensor, sample_weight: Any) -> tf.Tensor:
    """Per-example losses times their weights (Keras semantics: the mean is over examples)."""
    if value.shape.rank == 0:
        raise TypeError(
            "loss_fn returned a scalar, so sample_weight cannot weight the examples: return one "
            "loss per example (no reduction, e.g. tf.square(y_true - y_pred)), or use a "
            "keras.losses.Loss, which takes sample_weight itself."
        )
    weight = tf.cast(sample_weight, value.dtype)
    while weight.shape.rank is not None and weight.shape.rank < value.shape.rank:
        weight = weight[..., None]
    return value * weight


class LossShapes:
    """The shapes of ``(y_true, y_pred)`` the loss was traced with: each pair judged once.

    Recorded while the step traces (`record`); judged on the host after the call (`judge`),
    which finds a loss that silently broadcasts labels against predictions (`loss-broadcast`),
    grows with the labels' log-likelihood (`loss-sign-flipped`), or squares
    the batch's mean error or never squares the error (`labels-uninformative`).
    """

    def __init__(self) -> None:
        self._traced: list[tuple[tf.TensorSpec, tf.TensorSpec]] = []
        self._judged: set[tuple[Any, ...]] = set()
        self.traced = False  # whether any loss call was recorded
        self.output_width: int | None = None  # the last traced prediction's last axis

    def record(self, y: Any, y_pred: Any) -> None:
        """Notes the shapes of one traced loss call, when both are single tensors."""
        if (isinstance(y, tf.Tensor) or hasattr(y, "shape")) and isinstance(y_pred, tf.Tensor):
            y_true = tf.convert_to_tensor(y)
            self._traced.append(
                (
                    tf.TensorSpec(y_true.shape, y_true.dtype),
                    tf.TensorSpec(y_pred.shape, y_pred.dtype),
                )
            )
            self.output_width = y_pred.shape[-1] if y_pred.shape.rank else None
            self.traced = True

    @property
    def pending(self) -> bool:
        """Whether shapes were traced since the last `judge`."""
        return bool(self._traced)

    def judge(self, loss_fn: LossFn, step: int, softmax: bool = False) -> list[Finding]:
        """What a loss traced alone shows, for the shapes traced since and not judged yet.

        `softmax`: the model's output is a softmax's probabilities (see `lossgraph`).
        """
        found: list[Finding | None] = []
        while self._traced:
            y_spec, pred_spec = self._traced.pop()
            key = (_shape_key(y_spec), _shape_key(pred_spec))
            if key in self._judged:
                continue
            self._judged.add(key)
            found.append(lossgraph.loss_broadcast(loss_fn, y_spec, pred_spec, step, softmax))
            found += lossgraph.loss_fn_findings(loss_fn, y_spec, pred_spec, step)
        return [finding for finding in found if finding is not None]


def _shape_key(spec: tf.TensorSpec) -> tuple[Any, ...]:
    return tuple(spec.shape.as_list() if spec.shape.rank is not None else [None])
