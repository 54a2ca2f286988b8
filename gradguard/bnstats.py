"""BatchNormalization's moving statistics behind the batches' at the end of training.

In training a BatchNormalization layer normalizes each batch by the batch's own mean and
variance; in inference (`evaluate`, `predict`, ``model(x)``) by moving averages of them, which
forget the old batches at ``1 - momentum`` per update. The default momentum, 0.99, remembers
about a hundred updates: a short run on inputs far from zero (raw features, a mean of 12) ends
with averages still near their start (mean 0, variance 1), and the trained model scores far
worse in inference than it did in training (accuracy 0.61 against 0.90 with momentum 0.9).
Inputs whose scale drifts during training leave the same gap.

Under ``gradguard run``, as each `fit` of a model with a trainable BatchNormalization layer
returns (on arrays or a data set), and reported when the run ends: the model's loss on about
`ROWS` of that `fit`'s training examples (spread over the arrays, in batches of its size) in
both modes. The training-mode call's updates of the moving statistics (and of dropout's
seeds) are undone. Reported when inference lost at least `SHARE` of what training gained (from
the first epoch's loss of the model's first `fit` down to the training-mode loss) and is `RATIO`
times the training-mode loss. Only a model's latest `fit` is reported: a loop of
``fit(epochs=1)`` calls lags after its first call, not after its last. Dropout, noise and
augmentation make the training mode the worse one, so they stay silent; a frozen
BatchNormalization (``trainable = False``) runs in inference mode in both. A `tf.data.Dataset`'s
first batches are read anew (up to `MAX_BATCHES`); generators and `PyDataset`s are not read.

A short run on well-separated classes can lag in its probabilities only: the class each example
gets is the same in both modes (hunt25: accuracy 1.0 in both, log-loss 0.43 against 0.09). The
message then says so (`AGREE` of the examples or more, for one output of class scores), so that
a user who reads only the predicted class knows what is at stake.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, batch
from gradguard.findings import Finding

__all__ = [
    "AGREE",
    "MAX_BATCHES",
    "RATIO",
    "ROWS",
    "SHARE",
    "StaleStatistics",
    "stale_statistics",
]

ROWS = 128  # training examples whose loss is computed in each mode (a big model pays twice)
MAX_BATCHES = 8  # of a data set, read anew
SHARE = 0.5  # of what training gained that inference lost
RATIO = 1.25  # inference loss over training-mode loss (a model that barely learned: no)
AGREE = 0.99  # of the examples given the same class in both modes: only the probabilities lag
FRESH = 0.5  # a momentum below it keeps the last batches' statistics, not a long average


def _norms(model: Any) -> list[Any]:
    """The trainable BatchNormalization layers of `model` (nested models' too)."""
    return [
        layer
        for layer in _compat.flatten_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def _batches(arguments: Mapping[str, Any]) -> list[tuple[Any, Any]] | None:
    """About `ROWS` of `fit`'s training examples, as `fit` batched them: ``[(x, y), ...]``.

    Arrays: spread evenly over the training part, in batches of `fit`'s `batch_size`. A
    `tf.data.Dataset`: its first batches (up to `MAX_BATCHES`), read anew.
    """
    x, y = arguments.get("x"), arguments.get("y")
    if isinstance(x, tf.data.Dataset):
        return _first_batches(x)
    arrays = tf.nest.flatten(x) + tf.nest.flatten(y)
    if y is None or not all(isinstance(a, (np.ndarray, tf.Tensor)) for a in arrays):
        return None  # (a generator, a PyDataset, a data frame: not read)
    count = len(batch.training_part(np.arange(len(arrays[0])), arguments))
    if count < 2 or any(len(a) < count for a in arrays):
        return None
    rows = batch.spread_rows(count, ROWS)
    size = int(arguments.get("batch_size") or 32)
    parts = [rows[start : start + size] for start in range(0, len(rows), size)]
    return [(_pick(x, part), _pick(y, part)) for part in parts]


def _first_batches(data: tf.data.Dataset) -> list[tuple[Any, Any]] | None:
    """The first batches of `data` holding `ROWS` examples (`MAX_BATCHES` at most)."""
    batches, rows = [], 0
    for element in data.take(MAX_BATCHES):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(element)
        if y is None:
            return None  # (a model whose loss needs no labels: not judged)
        batches.append((x, y))
        rows += len(tf.nest.flatten(y)[0])
        if rows >= ROWS:
            break
    return batches or None


def _pick(value: Any, rows: np.ndarray) -> Any:
    """The examples `rows` of each array of `value` (one array or a nest of them)."""
    return tf.nest.map_structure(lambda a: batch.rows_of(a, rows), value)


def _losses(model: Any, batches: list[tuple[Any, Any]]) -> tuple[float, float, float | None]:
    """The mean loss of `batches` in training mode and in inference mode, and classes alike.

    The last: the share of examples given the same class in both modes (None unless the model
    has one output of class scores, `(batch, classes)`).
    """
    kept = [v.numpy() for v in model.non_trainable_variables]
    training, inference, rows, same = 0.0, 0.0, 0, 0
    classes = True
    for x, y in batches:
        size = len(tf.nest.flatten(y)[0])
        try:
            trained = model(x, training=True)
            training += size * float(model.compute_loss(x=x, y=y, y_pred=trained))
        finally:  # the moving statistics and the seeds, as `fit` left them
            for variable, value in zip(model.non_trainable_variables, kept):
                variable.assign(value)
        inferred = model(x, training=False)
        inference += size * float(model.compute_loss(x=x, y=y, y_pred=inferred))
        rows += size
        scores = not tf.nest.is_nested(trained) and len(trained.shape) == 2  # (batch, classes)
        classes = classes and scores and trained.shape[-1] not in (None, 1)
        if classes:
            same += int(np.sum(np.argmax(trained, -1) == np.argmax(inferred, -1)))
    return training / rows, inference / rows, same / rows if classes else None


class StaleStatistics:
    """Each model's `fit`s, judged as each returns and reported when the run ends.

    A loop of ``fit(epochs=1)`` calls is one training run: its first call's statistics lag,
    its last's need not, so only the judgment of a model's latest `fit` is reported. Kept per
    model: the first epoch's loss of its first `fit`, and that judgment (no data: a k-fold
    loop's arrays are not held until the end).
    """

    def __init__(self) -> None:
        self._first: dict[int, tuple[weakref.ref[Any], float]] = {}
        self._latest: dict[int, Finding | None] = {}

    def fit_ended(self, model: Any, arguments: Mapping[str, Any], history: Any, step: int) -> None:
        """A `fit` of `model` on `arguments` returned `history` at `step`."""
        losses = (getattr(history, "history", None) or {}).get("loss") or [None]
        kept = self._first.get(id(model))
        if kept is None or kept[0]() is not model:  # (a new model, perhaps at a freed one's id)
            if losses[0] is None:
                return
            kept = self._first[id(model)] = (weakref.ref(model), float(losses[0]))
        self._latest[id(model)] = stale_statistics(model, kept[1], arguments, step)

    def judge(self) -> list[Finding]:
        """`batchnorm-statistics-stale` for each model whose latest `fit` left them lagging."""
        found = [finding for finding in self._latest.values() if finding is not None]
        self._latest.clear()
        return found


def stale_statistics(
    model: Any, first: float, arguments: Mapping[str, Any], step: int
) -> Finding | None:
    """`batchnorm-statistics-stale` for `model`, fitted on `arguments` from a loss of `first`."""
    norms = _norms(model)
    if not norms or not getattr(model, "compiled", False):
        return None
    try:
        batches = _batches(arguments)
        if batches is None:
            return None
        training, inference, agree = _losses(model, batches)
    except (ValueError, TypeError, tf.errors.OpError):
        return None  # (a data set that cannot be read again, a model these batches do not fit)
    if not all(map(math.isfinite, (first, training, inference))):
        return None
    gained = first - training  # (nothing for a model compiled without a loss: 0 in both modes)
    if not gained > 0 or inference - training < SHARE * gained:
        return None
    if training > 0 and inference < RATIO * training:  # (a ratio of losses that can be < 0: no)
        return None
    momentum = max(float(layer.momentum) for layer in norms)
    updates = int(np.asarray(model.optimizer.iterations))
    if momentum < FRESH:  # (PyTorch's convention: its momentum=0.1 is the new batch's weight)
        why = (
            f"With momentum {momentum:g} they are mostly the last batch's: Keras' momentum is "
            "the weight the old statistics keep, where PyTorch's momentum=0.1 is the new "
            "batch's (its equivalent here is 0.9). Raise the momentum (BatchNormalization("
            "momentum=0.9), or the default 0.99), and standardize the inputs."
        )
    else:
        why = (
            f"With momentum {momentum:g} they average about {1 / max(1 - momentum, 1e-9):.0f} "
            f"updates, and this model has made {updates}. Lower the momentum "
            "(BatchNormalization(momentum=0.9)) or train longer, and standardize the inputs."
        )
    message = (
        f"In inference mode (evaluate, predict) the model's loss on its own training examples "
        f"is {inference:.3g}, against {training:.3g} in training mode (the first epoch's was "
        f"{first:.3g}): its {len(norms)} BatchNormalization layer(s) normalize by moving "
        f"statistics that do not match the batches'. {why}"
    )
    if agree is not None and agree >= AGREE:
        message += (
            f" Each example gets the same class in both modes ({agree:.0%} of them): what lags "
            "is how sure the model is (its probabilities, its loss), not which class it picks."
        )
    details = {
        "inference_loss": inference,
        "training_mode_loss": training,
        "first_epoch_loss": float(first),
        "momentum": momentum,
        "updates": updates,
        "layers": [layer.name for layer in norms],
        "classes_agree": agree,
    }
    return Finding("batchnorm-statistics-stale", message, step, details=details)
