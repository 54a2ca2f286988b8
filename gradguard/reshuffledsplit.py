"""A training/validation split taken after a shuffle that reshuffles every epoch.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["findings"]

_SPLITS = ("_TakeDataset", "_SkipDataset", "_ShardDataset")


def _split_reshuffles(dataset: Any) -> dict[int, Any]:
    """The shuffles that reshuffle every pass, which `dataset` reads through a split, by id."""
    found, seen, stack = {}, set(), [(dataset, False)]
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
    shared = _split_reshuffles(x).keys() & _split_reshuffles(validation).keys()
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
