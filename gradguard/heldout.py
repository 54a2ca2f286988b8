"""Held-out data: a `fit` whose validation loss never beats chance, and what split it so.

Judged at the end of a `fit` (`GuardCallback`; ``gradguard run`` wraps `fit`) from the epochs'
training and validation losses, against the chance level of the model's loss
(``core.notes["chance_loss_balanced"]``). Under ``gradguard run`` the arrays `fit` was given are
seen too: `validation_split` takes their last examples as they are, so data ordered by class
leaves the validation set with classes the training part never has (`unseen_classes`), and
data ordered by a regression's target leaves it with targets beyond the training part's range
(`validation-split-ordered`, `ordered_split`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradguard import batch
from gradguard.findings import Finding

__all__ = [
    "MEMORIZING_EPOCHS",
    "MEMORIZING_MARGIN",
    "ORDERED_RATIO",
    "ORDERED_SHARE",
    "after_fit",
    "memorizing",
    "ordered_split",
    "unseen_classes",
]

# Epochs of validation a run needs before its validation loss is judged; how far below chance
# (and below the validation loss) the training loss must have fallen.
MEMORIZING_EPOCHS = 3
MEMORIZING_MARGIN = 0.97
# An ordered split is reported when the best validation loss stayed this many times the last
# training loss, and above this share of the first epoch's training loss: a model that learned
# the whole range (a straight line extrapolates) ends near 0 on both.
ORDERED_RATIO = 3.0
ORDERED_SHARE = 0.1


def memorizing(
    epochs: Sequence[tuple[float, float]],
    chance: float,
    step: int,
    unseen: Sequence[Any] = (),
    split: float = 0.0,
) -> list[Finding]:
    """`loss-not-decreasing` for a fit whose validation loss never beat chance.

    While its training loss fell below chance: it memorized its examples and learned nothing
    that carries over. Healthy training beats chance on held-out data within its first
    epochs, even while it overfits later; a model that only memorizes (labels shuffled apart
    from their inputs, too few examples for its size) never does.

    Args:
      epochs: (training loss, validation loss) of each epoch.
      chance: The loss of a model that ignores its inputs (classes taken as balanced).
      step: The step to date the finding at.
      unseen: Classes of the validation labels the training labels never have
        (`unseen_classes`), if known: named as the cause.
      split: `fit`'s `validation_split`, when it made the validation set.
    """
    best_val = min((val for _, val in epochs), default=float("inf"))
    train = epochs[-1][0] if epochs else float("inf")
    if len(epochs) < MEMORIZING_EPOCHS or best_val < chance:
        return []
    if not train < MEMORIZING_MARGIN * min(chance, best_val):
        return []
    message = (
        f"The validation loss never went below chance in {len(epochs)} epochs (best "
        f"{best_val:.3g}, against {chance:.3g} for a model that ignores its inputs) while the "
        f"training loss fell to {train:.3g}: "
    )
    if unseen:
        shown = ", ".join(str(c) for c in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        message += (
            f"validation_split={split:g} took the last {split:.0%} of the examples as they are, "
            f"and their labels hold classes ({shown}) the training part never has: the data is "
            "ordered (by class). Shuffle x and y together before fit, or pass validation_data."
        )
    else:
        message += (
            "the model memorizes its training examples and learns nothing that carries to new "
            "ones. Check that labels stay paired with their inputs (x and y shuffled together, "
            "in the same order after any filtering), that the validation data is labelled like "
            "the training data (validation_split takes the last examples as they are: ordered "
            "data leaves some out of training), and that there are enough examples for the "
            "model's size."
        )
    details = {"val_loss_best": best_val, "loss": train, "chance_loss": chance}
    return [Finding("loss-not-decreasing", message, step, details=details)]


def after_fit(
    notes: Mapping[str, Any], history: Any, arguments: Mapping[str, Any], step: int
) -> list[Finding]:
    """`memorizing` (a classifier's loss) or `ordered_split` (any other) for a `fit`.

    `fit` was given `arguments` (as bound) and returned `history`.

    Args:
      notes: The notes of the model's optimizer's core (its chance level).
      history: What `fit` returned (``history.history``: the losses of each epoch).
      arguments: `fit`'s arguments by name: its labels `y` and `validation_split`.
      step: The step to date a finding at.
    """
    logs = getattr(history, "history", None) or {}
    epochs = list(zip(logs.get("loss", []), logs.get("val_loss", [])))
    split = float(arguments.get("validation_split") or 0.0)
    given = arguments.get("validation_data") is not None  # Keras then ignores the split
    chance = notes.get("chance_loss_balanced")
    if not epochs:
        return []
    if chance is None:  # not a classifier's loss: its targets are values
        return [] if given else ordered_split(epochs, arguments.get("y"), split, step)
    unseen = [] if given else unseen_classes(arguments.get("y"), split)
    return memorizing(epochs, chance, step, unseen, split)


def ordered_split(
    epochs: Sequence[tuple[float, float]], labels: Any, split: float, step: int
) -> list[Finding]:
    """`validation-split-ordered`: `validation_split` cut the top (or bottom) of sorted targets.

    A regression's targets sorted (a table exported in price order, rows sorted by outcome):
    `validation_split` takes the last rows as they are, so every validation target lies beyond
    the training part's range. The model never trains on that end of the range and is judged
    only there. Reported when the validation loss shows it: it stayed far above the training
    loss (`ORDERED_RATIO`) and a real share of where training started (`ORDERED_SHARE`). A
    trending time series validated on its last part overlaps its training range through its
    noise; a model that extrapolates (a line) ends near 0 on both.

    Args:
      epochs: (training loss, validation loss) of each epoch.
      labels: `fit`'s `y`: one number per example (a regression's; a classifier's class ids
        go to `unseen_classes`).
      split: `fit`'s `validation_split`.
      step: The step to date the finding at.
    """
    ranges = _split_ranges(labels, split)
    if ranges is None or len(epochs) < MEMORIZING_EPOCHS:
        return []
    (train_low, train_high), (val_low, val_high) = ranges
    best_val, train, first = min(val for _, val in epochs), epochs[-1][0], epochs[0][0]
    if not (best_val >= ORDERED_RATIO * train and best_val >= ORDERED_SHARE * first):
        return []
    side = "above" if val_low >= train_high else "below"
    message = (
        f"validation_split={split:g} took the last {split:.0%} of the examples as they are, "
        f"and their targets ({val_low:.4g} to {val_high:.4g}) all lie {side} the training "
        f"part's ({train_low:.4g} to {train_high:.4g}): the data is ordered by its target, so "
        "the model never trains on that end of the range and is validated only there (best "
        f"validation loss {best_val:.3g}, {best_val / max(train, 1e-12):.0f}x the training "
        f"loss {train:.3g}). Shuffle x and y together before fit (p = "
        "np.random.permutation(len(x)); x, y = x[p], y[p]), or pass validation_data."
    )
    details = {"val_loss_best": best_val, "loss": train, "split": split}
    return [Finding("validation-split-ordered", message, step, details=details)]


def _split_ranges(labels: Any, split: float) -> tuple[tuple[float, float], ...] | None:
    """The (low, high) of `fit`'s training and validation targets, when the two do not overlap.

    None for several targets per example, or anything not numbers.
    """
    if not 0.0 < split < 1.0:
        return None
    y = np.asarray(labels) if isinstance(labels, np.ndarray) or hasattr(labels, "numpy") else None
    if y is None or y.dtype.kind not in "iuf" or y.ndim not in (1, 2) or y.size != len(y):
        return None
    y = y.reshape(-1)
    cut = int(np.floor(len(y) * (1.0 - split)))  # as Keras' train_validation_split
    if cut < 2 or len(y) - cut < 2 or not np.all(np.isfinite(y)):
        return None
    train, val = (
        (float(y[:cut].min()), float(y[:cut].max())),
        (float(y[cut:].min()), float(y[cut:].max())),
    )
    if (val[0] < train[1] and val[1] > train[0]) or train[0] == train[1]:
        return None  # the ranges overlap (or the targets are one value)
    return train, val


def unseen_classes(labels: Any, split: float) -> list[Any]:
    """Classes in the last `split` of `labels` (`fit`'s validation set) the rest never has.

    Class ids (integers, a trailing axis of 1) or one-hot rows; [] for anything else (a
    regression's targets, soft labels, a dataset, a dict) or no split.
    """
    y = batch.class_ids(labels)
    if y is None or not 0.0 < split < 1.0:
        return []  # (nothing this reads may fail: it runs after the user's fit returned)
    cut = int(np.floor(len(y) * (1.0 - split)))  # as Keras' train_validation_split
    return sorted(set(np.unique(y[cut:]).tolist()) - set(np.unique(y[:cut]).tolist()))
