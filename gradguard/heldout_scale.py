"""Held-out inputs on another scale than the training inputs (`heldout-scale-mismatch`).

A common slip: the training inputs are standardized (or divided by 255) and the data given to
`evaluate`, `predict` or `fit(validation_data=...)` is not, or the other way round. Training is
healthy; the model is then judged on (or used for) data unlike anything it learned from, and
its held-out accuracy falls (0.70 against 0.96 with the same preprocessing), with nothing
pointing at the cause.

Under ``gradguard run``, which wraps `fit`, `evaluate` and `predict`: the arrays `fit` trains a
model on are profiled (each feature's mean and standard deviation: a column, or for inputs of
rank 3 or more the last axis, e.g. an image's channels), and so are the arrays later given to
the same model (up to `ROWS` examples spread evenly over each array: data may be stored in
order). Reported once per model, when half the features of the inputs both have (pooled) moved
by more than `SHIFT` training standard deviations, or spread `SPREAD` times wider than in
training, against every `fit` of the model (fine-tuned on part of the data, it is still right
to evaluate it on all). Such a gap is not a shift between data sets (a later period, another
site): those move features by a few standard deviations, not tens. A narrower spread is no
sign (a class, a region, a short window, a single hand-made example), so standardized data
given to a model trained on raw data is not found. Nor is a copy of the data moved by the same
number of standard deviations on every feature with its spread kept (``x + 30 * std``: a
robustness study's corruption; data never scaled moves each feature its own way), nor a copy
scaled by one gain on every feature given to a model whose first layer normalizes each example
(`LayerNormalization`, `UnitNormalization`: invariant to a recording's gain by design). Data
sets and generators are not read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import batch
from gradguard.findings import Finding

__all__ = ["HeldoutScales"]

SHIFT = 20.0  # training standard deviations between the means of a feature
SPREAD = 10.0  # how many times wider a feature's spread is
SHARE = 0.5  # of the features (those that vary in training, over the inputs) that differ
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
    rows = batch.spread_rows(shape[0], ROWS)
    try:  # (spread over all of it: data stored in order, one session after another)
        sample = np.asarray(batch.rows_of(value, rows))
    except (TypeError, ValueError, IndexError, tf.errors.OpError):
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


def _differing(
    trained: dict[str, _Profile], given: dict[str, _Profile], gain_free: bool = False
) -> _Gap | None:
    """How far `given`'s features lie from `trained`'s, over the inputs both have.

    A feature differs when its mean moved by more than `SHIFT` training standard deviations, or
    its spread grew `SPREAD` times (from `MIN_ROWS` examples). A narrower spread is no sign: a
    class, a region or a short window of the data is narrower than all of it. `gain_free`: the
    model does not see one gain on every feature (`_scaled_alike`).
    """
    off, varying, worst = 0, 0, None
    for key in sorted(trained.keys() & given.keys()):
        before, now = trained[key], given[key]
        if before.mean.shape != now.mean.shape:
            continue
        moves = before.std > 0
        std = np.where(moves, before.std, 1.0)
        if gain_free and _scaled_alike(before, now, std, moves):
            continue
        shift = np.abs(now.mean - before.mean) / std
        far = (shift > SHIFT) & ~_offset_on_purpose(before, now, std, moves)
        if now.rows >= MIN_ROWS and before.rows >= MIN_ROWS:
            far |= now.std / std > SPREAD
        far &= moves
        off, varying = off + int(far.sum()), varying + int(moves.sum())
        if far.any():
            feature = int(np.argmax(np.where(far, shift, -1.0)))
            if worst is None or shift[feature] > worst[0]:
                worst = (float(shift[feature]), key, feature, before, now)
    if not varying or worst is None:
        return None
    return _Gap(off / varying, *worst[1:])


def _offset_on_purpose(before: _Profile, now: _Profile, std: np.ndarray, moves: np.ndarray) -> bool:
    """Whether `now` is `before` moved alike on every feature: a copy offset on purpose.

    The same number of standard deviations on each, its spread kept: ``x + 30 * std``, a
    robustness study's corruption. Data never scaled moves each feature its own way.
    """
    if int(moves.sum()) < 2 or min(before.rows, now.rows) < MIN_ROWS:
        return False
    moved = ((now.mean - before.mean) / std)[moves]
    kept = np.all(np.abs(now.std / std - 1.0)[moves] < 0.1)
    return bool(kept and np.all(np.abs(moved - np.median(moved)) < 0.1 * abs(np.median(moved))))


def _scaled_alike(before: _Profile, now: _Profile, std: np.ndarray, moves: np.ndarray) -> bool:
    """Whether `now` is `before` times one gain on every feature (a louder recording).

    Within 30% of one another: a sample of 64 examples estimates a spread within about 10%,
    and data never scaled spreads each feature its own way (tenfold apart).
    """
    if int(moves.sum()) < 2 or min(before.rows, now.rows) < MIN_ROWS:
        return False
    gains = (now.std / std)[moves]
    gain = float(np.median(gains))
    follows = np.abs(now.mean - gain * before.mean)[moves] <= 0.5 * now.std[moves]
    return bool(np.all(np.abs(gains / gain - 1.0) < 0.3) and np.all(follows))


def _normalizes_each_example(model: Any) -> bool:
    """Whether `model`'s first layer scales each example to a norm of its own (gain-free)."""
    layers = [
        layer
        for layer in getattr(model, "layers", None) or []
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    single = len(getattr(model, "inputs", None) or [None]) == 1
    per_example = (keras.layers.LayerNormalization, keras.layers.UnitNormalization)
    return single and bool(layers) and isinstance(layers[0], per_example)


@dataclasses.dataclass(frozen=True)
class _Gap:
    share: float  # of the features that vary in training
    key: str  # the input of the feature shown
    feature: int
    before: _Profile
    now: _Profile


class HeldoutScales:
    """The inputs each model was trained on by `fit`, against those later given to it."""

    def __init__(self) -> None:
        self._trained: dict[int, list[dict[str, _Profile]]] = {}  # (one per fit)
        self._told: set[int] = set()

    def trained_on(self, model: Any, x: Any) -> None:
        """`fit` trains `model` on `x` (arrays: profiled; a data set: nothing known)."""
        profiles = _profiles(x)
        if profiles:
            self._trained.setdefault(id(model), []).append(profiles)

    def given(self, model: Any, call: str, x: Any, step: int) -> list[Finding]:
        """`call` (``evaluate``...) gives `model` the inputs `x`: are they scaled as in training?

        Held against every `fit` of the model: a model fine-tuned on part of the data is still
        right to be evaluated on all of it.
        """
        fits = self._trained.get(id(model))
        if not fits or id(model) in self._told:
            return []
        given, gain_free = _profiles(x), _normalizes_each_example(model)
        gaps = [_differing(trained, given, gain_free) for trained in fits]
        wide = [gap for gap in gaps if gap is not None and gap.share >= SHARE]
        if len(wide) < len(fits):  # (like one of the fits: evaluated as trained)
            return []
        self._told.add(id(model))
        gap = wide[-1]
        name = f"input '{gap.key}'" if gap.key else "input"
        where = "fit as validation_data" if call == "validation_data" else call
        before, now, feature = gap.before, gap.now, gap.feature
        message = (
            f"The inputs given to {where} are on another scale than those fit trained "
            f"'{getattr(model, 'name', 'the model')}' on: {gap.share:.0%} of their features "
            f"moved by more than {SHIFT:g} training standard deviations or spread "
            f"{SPREAD:g} times wider (the {name}'s feature {feature}: mean "
            f"{now.mean[feature]:.3g} and standard deviation {now.std[feature]:.3g}, "
            f"against {before.mean[feature]:.3g} and {before.std[feature]:.3g} in "
            "training). The model sees data unlike any it learned from. Preprocess it as "
            "the training data was (the training data's mean and standard deviation, the "
            "same division by 255), or put the preprocessing in the model "
            "(keras.layers.Normalization, Rescaling)."
        )
        details = {"call": call, "input": gap.key, "share": gap.share, "feature": feature}
        return [Finding("heldout-scale-mismatch", message, step, details=details)]
