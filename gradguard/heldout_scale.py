"""Held-out inputs on another scale than the training inputs (`heldout-scale-mismatch`).

A common slip: the training inputs are standardized (or divided by 255) and the data given to
`evaluate`, `predict` or `fit(validation_data=...)` is not, or the other way round. Training is
healthy; the model is then judged on (or used for) data unlike anything it learned from, and
its held-out accuracy falls (0.70 against 0.96 with the same preprocessing), with nothing
pointing at the cause.

Under ``gradguard run``, which wraps `fit`, `evaluate` and `predict`: the arrays `fit` trains a
model on are profiled (each feature's mean and standard deviation: a column, or for inputs of
rank 3 or more the last axis, e.g. an image's channels), and so are the arrays later given to
the same model. Reported once per model, when most of an input's features moved by more than
`SHIFT` training standard deviations, or spread `SPREAD` times more (or less) than in training.
Such a gap is not a shift between data sets (a later period, another site): those move
features by a few standard deviations, not tens. Data sets and generators are not read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradguard.findings import Finding

__all__ = ["HeldoutScales"]

SHIFT = 20.0  # training standard deviations between the means of a feature
SPREAD = 10.0  # how many times wider (or narrower) a feature's spread is
SHARE = 0.5  # of an input's features (those that vary in training) that must differ
ROWS = 1024  # evenly spaced examples read of each array
MIN_ROWS = 8  # examples needed to compare spreads (a mean is compared from one)


@dataclasses.dataclass(frozen=True)
class _Profile:
    mean: np.ndarray
    std: np.ndarray
    rows: int


def _profile(value: Any) -> _Profile | None:
    """Each feature's mean and standard deviation over (a sample of) `value`'s examples."""
    shape = getattr(value, "shape", None)
    if not shape or not shape[0]:  # (no examples, or not known: a symbolic tensor)
        return None
    try:
        sample = np.asarray(value[:: max(1, shape[0] // ROWS)][:ROWS])  # (rows of a frame too)
    except (TypeError, ValueError, IndexError):
        return None
    if sample.dtype.kind not in "iuf" or sample.ndim == 0:  # (strings, booleans)
        return None
    rank_3 = sample.ndim >= 3  # (an image's channels, a sequence's features)
    features = sample.reshape(-1, sample.shape[-1]) if rank_3 else sample.reshape(len(sample), -1)
    features = features.astype(np.float64)
    if not np.isfinite(features).all():
        return None
    return _Profile(features.mean(axis=0), features.std(axis=0), len(sample))


def _profiles(x: Any) -> dict[str, _Profile]:
    """The profile of each of `x`'s inputs (one array, or a list or dict of them), by name."""
    if isinstance(x, Mapping):
        named = {str(key): value for key, value in x.items()}
    elif isinstance(x, (list, tuple)):
        named = {str(index): value for index, value in enumerate(x)}
    else:
        named = {"": x}
    profiles = {name: _profile(value) for name, value in named.items()}
    return {name: profile for name, profile in profiles.items() if profile is not None}


def _differing(trained: _Profile, given: _Profile) -> tuple[float, int] | None:
    """The share of features that differ in scale, and the feature that differs most."""
    if trained.mean.shape != given.mean.shape:
        return None
    varying = trained.std > 0
    if not varying.any():
        return None
    std = np.where(varying, trained.std, 1.0)
    shift = np.abs(given.mean - trained.mean) / std
    off = shift > SHIFT
    if given.rows >= MIN_ROWS and trained.rows >= MIN_ROWS:
        ratio = given.std / std
        # (a feature constant in a small held-out set is no narrower spread: rare values)
        off |= (ratio > SPREAD) | ((given.std > 0) & (ratio < 1 / SPREAD))
    off &= varying
    share = off.sum() / varying.sum()
    return float(share), int(np.argmax(np.where(varying, np.maximum(shift, 0), -1)))


class HeldoutScales:
    """The inputs each model was trained on by `fit`, against those later given to it."""

    def __init__(self) -> None:
        self._trained: dict[int, dict[str, _Profile]] = {}
        self._told: set[int] = set()

    def trained_on(self, model: Any, x: Any) -> None:
        """`fit` trains `model` on `x` (arrays: profiled; a data set: nothing known)."""
        profiles = _profiles(x)
        if profiles:
            self._trained[id(model)] = profiles

    def given(self, model: Any, call: str, x: Any, step: int) -> list[Finding]:
        """`call` (``evaluate``...) gives `model` the inputs `x`: are they scaled as in training?"""
        trained = self._trained.get(id(model))
        if trained is None or id(model) in self._told:
            return []
        given = _profiles(x)
        for key in sorted(trained.keys() & given.keys()):
            before, now = trained[key], given[key]
            differing = _differing(before, now)
            if differing is None or differing[0] < SHARE:
                continue
            self._told.add(id(model))
            share, feature = differing
            name = f"input '{key}'" if key else "input"
            where = "fit as validation_data" if call == "validation_data" else call
            message = (
                f"The {name} given to {where} is on another scale than the one fit trained "
                f"'{getattr(model, 'name', 'the model')}' on: {share:.0%} of its features "
                f"differ by more than {SHIFT:g} training standard deviations or spread "
                f"{SPREAD:g} times more or less (feature {feature}: mean "
                f"{now.mean[feature]:.3g} and standard deviation {now.std[feature]:.3g}, "
                f"against {before.mean[feature]:.3g} and {before.std[feature]:.3g} in "
                "training). The model sees data unlike any it learned from. Preprocess it as "
                "the training data was (the training data's mean and standard deviation, the "
                "same division by 255), or put the preprocessing in the model "
                "(keras.layers.Normalization, Rescaling)."
            )
            details = {"call": call, "input": key, "share": share, "feature": feature}
            return [Finding("heldout-scale-mismatch", message, step, details=details)]
        return []
