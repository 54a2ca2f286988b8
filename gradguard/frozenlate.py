"""Layers frozen after `fit` trained the model, and `fit` called again without `compile`.

Keras 3 reads which weights are trainable when it builds a model's train function, at the first
`fit` (or `train_on_batch`), and keeps that function until `compile` is called again. Setting
``base.trainable = False`` between two `fit` calls (fine-tuning a head on a few examples, the
base kept as trained) therefore changes nothing: the second `fit` still updates the base, and a
few noisy examples can wreck it (hunt22 p13: the frozen weights moved by up to 38%). Nothing
warns. The reverse, layers set trainable and never updated, is `variable-not-trained`.

Told on the host as `fit` starts, under ``gradguard run``: the model's train function is kept
from before (`train_function` is not None: no `compile` since), and variables it was traced to
update are not trainable now. Silent after `compile` (the function is built anew), for layers
frozen before the first `fit`, and for `train_on_batch` loops that toggle `trainable` (a GAN's
discriminator, whose own train function is meant to keep updating it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradguard import stats
from gradguard.findings import Finding, listing

__all__ = ["finding"]


def finding(model: Any, traced: Sequence[Any], step: int) -> Finding | None:
    """`frozen-still-trained` for `model`, whose train step was traced to update `traced`."""
    if getattr(model, "train_function", None) is None:
        return None  # (built anew by this fit, with the weights trainable now)
    now = {id(v) for v in model.trainable_variables}
    frozen = [v for v in traced if id(v) not in now]
    if not frozen:
        return None
    names = stats.names(frozen, model.name)
    return Finding(
        "frozen-still-trained",
        f"{len(frozen)} variable(s) of {model.name!r} are frozen now (trainable=False), but this "
        "fit reuses the train function built before they were, and updates them still: "
        f"{listing(names)}. "
        "Keras 3 reads trainable when it builds the train function and keeps it until compile: "
        "call model.compile(...) after changing trainable.",
        step,
        tuple(names),
        details={"model": model.name, "frozen": len(frozen)},
    )
