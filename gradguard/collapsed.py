"""A model that gives every example the same prediction once `fit` ends (`predictions-constant`).

A penalty that outweighs the data loss (``kernel_regularizer=l2(0.1)`` where about 1e-4 was
meant) drives every kernel towards zero, and a TF1 ``keep_prob=0.9`` ported as ``Dropout(0.9)``
drops nine units in ten: either way the model ends predicting the labels' distribution, the same
for every input, and the loss the run shows falls all the same (the penalty shrinks, the dropout
noise settles), so nothing looks stuck (hunt22 p11 and p12: every test prediction the majority
class, accuracy 0.51 against 0.81). With dropout or penalties the training loss cannot be held
against the labels' entropy (`chance.comparable`), which is how `loss-not-decreasing` tells a
model that guesses; this looks at the predictions themselves.

Judged under ``gradguard run`` when `fit` returns, for a classifier with dropout or penalties
(one output, a cross-entropy on hard labels, a softmax or one sigmoid unit), after
`MIN_UPDATES` updates, on up to `EXAMPLES` of the training arrays `fit` was given (not a data
set: reading one could change what the script draws next), called in inference mode: every
example gets the same class, and the loss on them is no better than predicting the labels'
distribution (`AT_CHANCE` of its entropy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from gradguard import _compat, chance, statefulshuffle
from gradguard.findings import Finding, number

__all__ = ["AT_CHANCE", "EXAMPLES", "HEAVY", "MIN_UPDATES", "after_fit"]

MIN_UPDATES = 300  # a model still warming up may not have left the labels' mean yet
EXAMPLES = 256
# A loss on the examples checked this near the labels' entropy or above: at chance. Collapsed
# models measured 0.99 to 1.02 of it; trained ones, with dropout or L2, 0.3 to 0.86.
AT_CHANCE = 0.97
HEAVY = 0.01  # a regularizer factor (l1 or l2) this large: named as the cause
_PENALTIES = ("kernel_regularizer", "bias_regularizer", "activity_regularizer")


def after_fit(model: Any, arguments: Mapping[str, Any], step: int) -> list[Finding]:
    """`predictions-constant` if `model` predicts no better than the labels' distribution."""
    family = chance.loss_family(getattr(model, "loss", None))
    if family in (None, "squared") or step + 1 < MIN_UPDATES or chance.comparable(model):
        return []
    if len(getattr(model, "outputs", None) or []) != 1 or statefulshuffle.stateful_layers(model):
        return []
    rows = _rows(arguments.get("x"), arguments.get("y"))
    if rows is None:
        return []
    x, y = rows
    outputs = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), np.float64)
    outputs, labels = outputs.reshape(len(y), -1), y.reshape(len(y), -1).astype(np.float64)
    if getattr(model.loss, "from_logits", False):
        outputs = _probabilities(outputs, family)
    levels = _cross_entropy(outputs, labels, family)
    if levels is None or len(np.unique(_classes(outputs))) > 1:
        return []
    loss, level = levels
    if not level or loss < AT_CHANCE * level:
        return []
    message = (
        f"Once fit ended, model {model.name!r} predicts the same class for all {len(y)} "
        f"training examples checked, with a loss on them of {number(loss)}, no better than "
        f"predicting the labels' distribution ({number(level)}): it ignores its inputs. "
        f"{_cause(model)}"
    )
    details = {"loss": loss, "chance_loss": level, "examples": len(y)}
    return [Finding("predictions-constant", message, step, details=details)]


def _classes(probabilities: np.ndarray) -> np.ndarray:
    """Each example's predicted class (one sigmoid unit: which side of 0.5)."""
    if probabilities.shape[-1] == 1:
        return (probabilities[:, 0] > 0.5).astype(int)
    return np.argmax(probabilities, axis=-1)


def _cross_entropy(
    probabilities: np.ndarray, labels: np.ndarray, family: str
) -> tuple[float, float] | None:
    """The mean cross-entropy and the labels' entropy; None for soft or unreadable labels."""
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    if family == "sparse":
        if labels.shape[-1] != 1 or p.shape[-1] < 2 or labels.max() >= p.shape[-1]:
            return None
        ids = labels[:, 0].astype(int)
        frequencies = np.bincount(ids, minlength=p.shape[-1]) / len(ids)
        loss = -np.log(p[np.arange(len(ids)), ids]).mean()
    elif labels.shape != p.shape or not np.all((labels == 0) | (labels == 1)):
        return None  # (soft labels: their own entropy is no chance level)
    elif family == "categorical":
        frequencies = labels.mean(axis=0)
        loss = -(labels * np.log(p)).sum(axis=-1).mean()
    elif p.shape[-1] != 1:
        return None  # (several sigmoid units: no one class an example is given)
    else:
        positive = labels.mean()
        frequencies = np.array([positive, 1 - positive])
        loss = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean()
    return float(loss), chance.entropy(frequencies)


def _rows(x: Any, y: Any) -> tuple[Any, np.ndarray] | None:
    """Up to `EXAMPLES` rows of `fit`'s arrays, spread over them; None for other data."""
    if not isinstance(y, np.ndarray) or y.ndim == 0 or len(y) < 2:
        return None
    inputs = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else [x]
    if not all(isinstance(a, np.ndarray) and len(a) == len(y) for a in inputs):
        return None
    pick = np.unique(np.linspace(0, len(y) - 1, min(EXAMPLES, len(y))).astype(int))
    if isinstance(x, dict):
        return {k: v[pick] for k, v in x.items()}, y[pick]
    if isinstance(x, (list, tuple)):
        return [a[pick] for a in x], y[pick]
    return x[pick], y[pick]


def _probabilities(logits: np.ndarray, family: str) -> np.ndarray:
    if family == "binary" or logits.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _cause(model: Any) -> str:
    """What in the model's settings makes it so: its penalties, its dropout, or the usual."""
    layers = _compat.flatten_layers(model)
    heavy = [
        f"{layer.name}.{attribute} ({type(penalty).__name__} {factor:g})"
        for layer in layers
        for attribute in _PENALTIES
        if (penalty := getattr(layer, attribute, None)) is not None
        and (factor := max(float(getattr(penalty, k, 0.0) or 0.0) for k in ("l1", "l2"))) >= HEAVY
    ]
    if heavy:
        return (
            f"Its regularizers weigh {HEAVY:g} or more ({', '.join(heavy[:3])}): their penalty "
            "can outweigh the loss on the data, and then the optimizer shrinks the weights, not "
            "the error; a factor of about 1e-4 is usual (keras.regularizers.l2(1e-4))."
        )
    dropped = [
        f"{layer.name} (rate {float(layer.rate):g})"
        for layer in layers
        if isinstance(layer, chance.NOISY) and float(getattr(layer, "rate", 0) or 0) >= 0.5
    ]
    if dropped:
        return (
            f"Dropout drops half the units or more in {', '.join(dropped[:3])}: rate is the "
            "share dropped, not kept (TF1's keep_prob); rates of 0.1 to 0.5 are usual."
        )
    return (
        "Check the learning rate (too high, every unit dies; too low, nothing moves) and that "
        "the inputs are scaled and carry what the labels depend on."
    )
