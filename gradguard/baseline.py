"""What a loss measures for a model that has learned nothing, and the outputs the loss expects.

`preflight` compares the initial loss with what the loss function predicts for an untrained
model, and the model's outputs with the kind of values the loss takes (logits or
probabilities). Both need to know which loss it is: `kind_of` recognizes the Keras losses that
have such a prediction (cross-entropies, mean squared and mean absolute error, as objects,
names or functions); for any other loss these checks are skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import keras
import numpy as np

__all__ = [
    "Expectation",
    "LossKind",
    "class_count",
    "constant_loss",
    "expect",
    "kind_of",
    "output_mismatch",
]

SPARSE_CE = "sparse_categorical_crossentropy"
CE = "categorical_crossentropy"
BINARY_CE = "binary_crossentropy"
MSE = "mean_squared_error"
MAE = "mean_absolute_error"
_KNOWN = (SPARSE_CE, CE, BINARY_CE, MSE, MAE)
_ALIASES = {"mse": MSE, "mae": MAE}

# How far above the untrained model's loss the initial loss must be to be reported. For the
# cross-entropies, 3x ln C: logits of an untrained model with a standard deviation s add about
# s^2 / 2 to ln C, so 3x means logits with s >= 3 for 10 classes (s >= 1.7 for 2), far beyond
# what a standard initialization gives on normalized inputs. For the squared error, 10x the
# targets' variance: outputs (or a target mean) about 3x the targets' standard deviation. For
# the absolute error, sqrt(10), the same in the targets' own units.
FACTORS = {SPARSE_CE: 3.0, CE: 3.0, BINARY_CE: 3.0, MSE: 10.0, MAE: math.sqrt(10.0)}
# Tolerances for outputs that are probabilities: in [0, 1] and, for softmax, rows summing to 1.
_RANGE_TOLERANCE = 1e-6
_SUM_TOLERANCE = 1e-3
# Single sigmoid outputs all in [0, 1] say "probabilities" only over this many values.
_MIN_BINARY_VALUES = 32
# Keras clips probabilities to [eps, 1 - eps] in its cross-entropies.
_EPSILON = 1e-7
# The measured loss and a reading of the outputs agree within this (relative; float32 sums).
_LOSS_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class LossKind:
    """A recognized loss: its Keras function name, whether it takes logits, its classes' axis."""

    name: str
    from_logits: bool
    axis: int = -1


def kind_of(loss_fn: Any) -> LossKind | None:
    """The loss as one of the recognized kinds, or None.

    Recognizes `keras.losses` objects (``SparseCategoricalCrossentropy(from_logits=True)``),
    their names (``"mse"``), their functions, and `functools.partial` over the functions. A
    subclass that overrides `call` computes a loss of its own (it may normalize the labels
    first): not recognized.
    """
    if isinstance(loss_fn, str):
        name = _ALIASES.get(loss_fn, loss_fn)
        return LossKind(name, False) if name in _KNOWN else None
    keywords: dict[str, Any] = {}
    if isinstance(loss_fn, keras.losses.Loss):
        if getattr(type(loss_fn).call, "__module__", "").split(".")[0] != "keras":
            return None
        keywords = dict(loss_fn.get_config())
        loss_fn = getattr(loss_fn, "fn", loss_fn)
    while isinstance(loss_fn, functools.partial):
        keywords = {**loss_fn.keywords, **keywords}
        loss_fn = loss_fn.func
    name = getattr(loss_fn, "__name__", "")
    if name not in _KNOWN:
        return None
    axis = keywords.get("axis", -1)
    return LossKind(
        name, bool(keywords.get("from_logits", False)), axis if isinstance(axis, int) else -1
    )


@dataclasses.dataclass(frozen=True)
class Expectation:
    """The loss an untrained model should measure on some labels.

    Attributes:
      loss: The value (ln C for C-class cross-entropy, ln 2 for binary cross-entropy, the
        targets' variance for the squared error, their mean absolute deviation for the
        absolute error).
      factor: How many times `loss` the initial loss may be before it is reported.
      reason: Where the value comes from, for messages (``"ln 10 for 10 classes"``).
    """

    loss: float
    factor: float
    reason: str


def _rows(array: np.ndarray) -> np.ndarray:
    """One row per example, one column per output value."""
    return np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)


def _classes(y_pred: np.ndarray) -> int:
    return int(y_pred.shape[-1]) if y_pred.ndim > 1 else 1


def expect(kind: LossKind, y: np.ndarray, y_pred: np.ndarray) -> Expectation | None:
    """What `kind` predicts for an untrained model on labels `y` (None: no prediction).

    An untrained classifier predicts each class alike, whatever the labels' frequencies:
    ln C. An untrained regressor at best predicts the targets' mean: their variance (squared
    error) or mean absolute deviation (absolute error); a model whose initial loss is far above
    that starts far from the targets' scale.
    """
    factor = FACTORS[kind.name]
    if kind.name in (SPARSE_CE, CE):
        classes = _classes(y_pred)
        if classes < 2:
            return None
        return Expectation(math.log(classes), factor, f"ln {classes} for {classes} classes")
    if kind.name == BINARY_CE:
        return Expectation(math.log(2.0), factor, "ln 2 for a binary output")
    constant = constant_loss(kind, y)
    if constant is None or not constant > 0:
        return None
    what = "variance" if kind.name == MSE else "mean absolute deviation"
    return Expectation(constant, factor, f"the targets' {what}")


def constant_loss(
    kind: LossKind | None, y: np.ndarray | None, fit: np.ndarray | None = None
) -> float | None:
    """The loss on labels `y` of the best constant prediction for labels `fit` (default: `y`).

    On `y` itself it is what a model that ignores its inputs can reach: the labels' entropy
    for the cross-entropies, their variance (squared error) or mean absolute deviation
    (absolute error). None for other losses, or labels it cannot read.
    """
    if kind is None or y is None:
        return None
    fit = y if fit is None else fit
    if kind.name == SPARSE_CE:
        labels, seen = np.asarray(y).reshape(-1), np.asarray(fit).reshape(-1)
        if not (_whole(labels) and _whole(seen)):
            return None
        values, counts = np.unique(seen, return_counts=True)
        frequency = dict(zip(values.tolist(), (counts / counts.sum()).tolist()))
        floor = 0.5 / counts.sum()  # a class the constant never saw
        return float(-np.mean([math.log(frequency.get(v, floor)) for v in labels.tolist()]))
    rows, fitted = _rows(np.asarray(y)), _rows(np.asarray(fit))
    if rows.shape[1] != fitted.shape[1]:
        return None
    if kind.name == CE:
        return float(-(rows * np.log(np.clip(fitted.mean(axis=0), _EPSILON, 1))).sum(axis=1).mean())
    if kind.name == BINARY_CE:
        p = np.clip(fitted.mean(axis=0), _EPSILON, 1 - _EPSILON)
        return float(-(rows * np.log(p) + (1 - rows) * np.log(1 - p)).mean())
    if kind.name == MSE:
        return float(((rows - fitted.mean(axis=0)) ** 2).mean())
    return float(np.abs(rows - np.median(fitted, axis=0)).mean())


def class_count(kind: LossKind | None, y: Any) -> int | None:
    """How many classes a classifier's labels hold (None for other losses)."""
    if kind is None or not isinstance(y, np.ndarray):
        return None
    if kind.name == SPARSE_CE:
        return int(np.unique(y).size)
    if kind.name == CE and y.ndim > 1:
        return int(y.shape[-1])
    return None


def _whole(values: np.ndarray) -> bool:
    return bool(np.issubdtype(values.dtype, np.integer) or np.all(values == np.round(values)))


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def output_mismatch(
    kind: LossKind, y: np.ndarray, y_pred: np.ndarray, loss: float
) -> dict[str, Any] | None:
    """Evidence that the outputs are not what a cross-entropy's `from_logits` says, or None.

    With ``from_logits=False`` the loss takes the outputs as probabilities: values below 0 or
    above 1 are logits, which it clips. With ``from_logits=True`` it applies softmax (or
    sigmoid) itself: outputs that are already probabilities (in [0, 1], rows summing to 1 for
    softmax) get it a second time, and the loss can then never get near 0 -- unless Keras
    sees the activation that made them and takes its logits instead (the TensorFlow backend
    does this for its own softmax and sigmoid, with a warning). The measured `loss` tells
    which happened: it equals the loss of the outputs taken as logits (applied twice), or as
    probabilities (Keras took the logits). When the two readings are too close to tell
    apart, nothing is reported.

    Returns:
      None, or ``{"outputs": "probabilities" | "logits", "min": ..., "max": ...}``, with
      ``"keras_compensates"`` for probabilities.
    """
    if kind.name not in (SPARSE_CE, CE, BINARY_CE) or y_pred.size == 0:
        return None
    values = np.asarray(y_pred, dtype=np.float64)
    if not np.all(np.isfinite(values)) or not math.isfinite(loss):
        return None
    low, high = float(values.min()), float(values.max())
    in_unit = low >= -_RANGE_TOLERANCE and high <= 1 + _RANGE_TOLERANCE
    evidence: dict[str, Any] = {"min": low, "max": high}
    if not kind.from_logits:
        return None if in_unit else {"outputs": "logits", **evidence}
    if not in_unit:
        return None
    if kind.name == BINARY_CE:
        if values.size < _MIN_BINARY_VALUES:
            return None
    else:
        if values.ndim < 2 or values.shape[-1] < 2:
            return None
        sums = values.reshape(-1, values.shape[-1]).sum(axis=-1)
        if np.max(np.abs(sums - 1.0)) > _SUM_TOLERANCE:
            return None
        evidence.update(row_sum_min=float(sums.min()), row_sum_max=float(sums.max()))
    try:
        twice, once = _loss_as(kind, y, values, logits=True), _loss_as(kind, y, values, False)
    except ValueError:  # labels the loss reads in a way not reproduced here
        return None
    tolerance = _LOSS_TOLERANCE * max(1.0, abs(loss))
    if abs(twice - once) <= 10 * tolerance:
        return None
    if abs(loss - twice) <= tolerance:
        return {"outputs": "probabilities", "keras_compensates": False, **evidence}
    if abs(loss - once) <= tolerance:
        return {"outputs": "probabilities", "keras_compensates": True, **evidence}
    return None


def _loss_as(kind: LossKind, y: np.ndarray, p: np.ndarray, logits: bool) -> float:
    """The loss of outputs `p` read as logits or as probabilities (clipped as Keras clips)."""
    if kind.name == BINARY_CE:
        t = np.asarray(y, dtype=np.float64).reshape(p.shape)
        if logits:
            return float(np.mean(np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))))
        q = np.clip(p, _EPSILON, 1 - _EPSILON)
        return float(np.mean(-(t * np.log(q) + (1 - t) * np.log(1 - q))))
    rows = p.reshape(-1, p.shape[-1])
    if logits:
        shifted = rows - rows.max(axis=-1, keepdims=True)
        log_q = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    else:
        log_q = np.log(np.clip(rows, _EPSILON, 1 - _EPSILON))
    if kind.name == SPARSE_CE:
        labels = np.asarray(y).reshape(-1).astype(np.int64)
        if labels.shape[0] != rows.shape[0] or labels.min() < 0 or labels.max() >= rows.shape[1]:
            raise ValueError("labels do not index the outputs")
        return float(-np.mean(log_q[np.arange(len(labels)), labels]))
    targets = np.asarray(y, dtype=np.float64).reshape(rows.shape)
    return float(-np.mean((targets * log_q).sum(axis=-1)))
