"""Data sets read after a shuffle that reshuffles every pass: split, or predicted on.

``ds.shuffle(n)`` reshuffles on every pass by default (``reshuffle_each_iteration=True``). Split
after it with `take` and `skip` (or `shard`), the two parts are drawn anew each epoch: over the
epochs the model trains on nearly every validation example, and ``val_loss`` and
``val_accuracy`` follow the training ones (a gap of 0.30 between the reported validation
accuracy and a truly held-out one, against 0.02 split before the shuffle). Early stopping,
checkpoints and model selection then choose on memorized data. Nothing fails.

Read under ``gradguard run`` as `fit` starts: its `x` and `validation_data` data sets, both
reading one reshuffling shuffle through a `take`, `skip` or `shard`. A shuffle after the split,
or one told ``reshuffle_each_iteration=False``, draws the same split every epoch: not reported;
nor a shuffle behind a `cache`, which may replay one order.

The same shuffle makes `predict`'s outputs come in an order no other pass repeats
(`predictions-reshuffled`): labels gathered from another pass
(``np.concatenate([y for x, y in ds])``, a confusion matrix; tensorflow#57636) or inputs
(pseudo-labels paired with other examples: hunt30 b11, a student at chance) do not belong to
them. `image_dataset_from_directory` shuffles so by default. Read as `predict` is given a data
set under ``gradguard run``. Arrays, or a data set not shuffled, shuffled once
(``reshuffle_each_iteration=False``) or behind a `cache`, are silent; so is `evaluate`, which
pairs each batch's labels with its own predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["findings", "predicted"]

_SPLITS = ("_TakeDataset", "_SkipDataset", "_ShardDataset")


def _reshuffles(dataset: Any, through_split: bool = True) -> dict[int, Any]:
    """The shuffles that reshuffle every pass `dataset` reads (through a split only), by id."""
    found, seen, stack = {}, set(), [(dataset, not through_split)]
    while stack:
        each, split = stack.pop()
        if (id(each), split) in seen:
            continue
        seen.add((id(each), split))
        kind = type(each).__name__
        if split and "Shuffle" in kind and getattr(each, "_reshuffle_each_iteration", True):
            found[id(each)] = each
        if "Cache" in kind:
            continue  # (what reaches a cache may be replayed in one order: not judged)
        try:
            stack += [(upstream, split or kind in _SPLITS) for upstream in each._inputs()]
        except (AttributeError, NotImplementedError):
            pass
    return found


def findings(arguments: Mapping[str, Any], step: int) -> list[Finding]:
    """`split-reshuffled` for a `fit` whose training and validation sets split one reshuffle."""
    x, validation = arguments.get("x"), arguments.get("validation_data")
    if not isinstance(x, tf.data.Dataset) or not isinstance(validation, tf.data.Dataset):
        return []
    shared = _reshuffles(x).keys() & _reshuffles(validation).keys()
    if not shared:
        return []
    message = (
        "fit's training and validation data sets are split (take, skip or shard) from one "
        "data set shuffled with reshuffle_each_iteration=True, the default, so the split is "
        "drawn anew every epoch: over the epochs the model trains on nearly every validation "
        "example, and val_loss and val_accuracy follow the training ones (early stopping and "
        "checkpoints choose on memorized data). Shuffle once before splitting "
        "(ds.shuffle(n, reshuffle_each_iteration=False)), or split first and shuffle the "
        "training part alone (ds.skip(k).shuffle(n))."
    )
    return [Finding("split-reshuffled", message, step)]


def predicted(call: str, x: Any, step: int) -> list[Finding]:
    """`predictions-reshuffled` for a `predict` given a data set that reshuffles every pass."""
    if call != "predict" or not isinstance(x, tf.data.Dataset):
        return []
    if not _reshuffles(x, through_split=False):
        return []
    message = (
        "predict was given a data set shuffled with reshuffle_each_iteration=True, the "
        "default (image_dataset_from_directory and text_dataset_from_directory shuffle so "
        "unless told shuffle=False): its predictions come out in an order that no other pass "
        "over the data set repeats, so labels or inputs gathered from another pass "
        "(np.concatenate([y for x, y in ds])) do not belong to them: a confusion matrix or an "
        "accuracy at chance, pseudo-labels paired with other examples. Predict on a data set "
        "that is not shuffled (shuffle=False, or ds.shuffle(n, reshuffle_each_iteration=False)), "
        "or take predictions and labels from one pass: for x, y in ds: model.predict_on_batch(x)."
    )
    return [Finding("predictions-reshuffled", message, step)]
