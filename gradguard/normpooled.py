"""A `Normalization` with one mean and variance for features of very different scales.

``keras.layers.Normalization(axis=None)`` (or a scalar ``mean=``/``variance=``) standardizes
with statistics pooled over every feature. For pixels or embeddings of one scale that is what
is meant; for a table whose columns differ in scale (a price in the tens of thousands beside
ratios in 0..1) the large column sets the variance, and every other column comes out squashed
by the same factor (spreads of 1e-5 beside 1): the network can hardly use them (test MSE 0.21
against 0.003 with the default per-feature ``axis=-1``). Nothing fails.

Taken: a `Normalization` fed straight by one of the model's inputs, computing with one mean and
one variance for all its input, where along one axis (the features: last, or first for
channels-first windows) half or more of the varying features are `SPREAD` times narrower than
the widest, in 1,024 rows spread over `fit`'s arrays (or the first rows of those a data set
only slices and batches). An image's few border columns that barely vary are not half of
them, and features of one scale are not narrower. Told once from the data on the host, as
`fit` starts under ``gradguard run``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from gradguard import tokens as tokens_lib
from gradguard import unadapted
from gradguard.findings import Finding

__all__ = ["SPREAD", "SQUASHED", "findings"]

SPREAD = 100.0  # a feature this many times narrower than the widest is squashed
SQUASHED = 0.5  # ... and at least this share of the varying features are


def findings(model: Any, x: Any, step: int) -> list[Finding]:
    """`normalization-features-pooled` for pooled Normalizations before columns of many scales."""
    fed = tokens_lib.fed_layers(model, x, _pools_features, spread=True)
    found = [_judge(layer, name, array, step) for layer, name, array in fed]
    return [finding for finding in found if finding is not None]


def _pools_features(layer: Any) -> bool:
    """Whether `layer` is a Normalization computing with one mean and one variance.

    Its statistics as it computes with them (pooled by ``axis=None``, or scalars given, then
    broadcast); one never adapted is `unadapted`'s.
    """
    if not isinstance(layer, keras.layers.Normalization) or layer.invert or not layer.built:
        return False
    if unadapted.never_adapted(layer) or getattr(layer, "mean", None) is None:
        return False
    mean, variance = np.asarray(layer.mean), np.asarray(layer.variance)
    return bool(np.all(mean == mean.flat[0]) and np.all(variance == variance.flat[0]))


def _judge(layer: Any, name: str, array: np.ndarray, step: int) -> Finding | None:
    if array.ndim < 2 or array.dtype.kind not in "biuf":
        return None
    for axis in range(1, array.ndim):  # (features last, or first: channels-first windows)
        spreads = _spreads(array, axis)
        varying = spreads[spreads > 0]
        if len(varying) < 2 or not np.all(np.isfinite(varying)):
            continue
        # Most features squashed, not a few (an image's border columns barely vary).
        squashed = varying <= varying.max() / SPREAD
        if squashed.mean() >= SQUASHED:
            return _finding(layer, name, spreads, axis, array.ndim, step)
    return None


def _spreads(array: np.ndarray, axis: int) -> np.ndarray:
    """Each index of `axis`'s spread, over the examples and every other axis."""
    columns = np.moveaxis(array, axis, -1).astype(np.float64)
    return np.std(columns.reshape(-1, columns.shape[-1]), axis=0)


def _finding(
    layer: Any, name: str, spreads: np.ndarray, axis: int, ndim: int, step: int
) -> Finding:
    widest = int(np.argmax(spreads))
    narrowest = int(np.argmin(np.where(spreads > 0, spreads, np.inf)))
    ratio = float(spreads[widest] / spreads[narrowest])
    pooled = "axis=None" if not layer.axis else "a scalar mean= and variance="
    where = "" if axis == ndim - 1 else f" along axis {axis}"
    shrunk = spreads[narrowest] / spreads[widest]
    message = (
        f"Normalization {layer.name!r} standardizes its input {name} with one mean and "
        f"variance for all its {len(spreads)} features{where} ({pooled}), but their spreads "
        f"differ {ratio:.3g}-fold (feature {widest}: {spreads[widest]:.3g}, feature "
        f"{narrowest}: {spreads[narrowest]:.3g}): the widest sets the variance, and the "
        f"narrowest comes out {shrunk:.2g} times as wide, too small for the layers after it "
        "to use. Standardize each feature on its own: Normalization() (axis=-1, the default; "
        "the features' axis if they are not last), then adapt it on the training data."
    )
    details = {
        "layer": layer.name,
        "input": name,
        "axis": axis,
        "ratio": ratio,
        "spreads": [float(s) for s in spreads],
    }
    return Finding("normalization-features-pooled", message, step, details=details)
