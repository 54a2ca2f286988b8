"""`normalization-features-pooled`: a Normalization with one mean and variance (axis=None, or
scalar statistics given) in front of features whose scales differ by orders of magnitude."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard import normpooled

RNG = np.random.default_rng(0)
# hunt23 p03: a price in the tens of thousands beside six ratios in 0..1.
TABLE = np.column_stack([RNG.uniform(1e4, 9e4, 800), RNG.uniform(0, 1, (800, 6))])
SAME_SCALE = RNG.normal(size=(800, 5)) * np.array([1.0, 2.0, 5.0, 0.5, 3.0])
PIXELS = RNG.integers(0, 256, (200, 8, 8, 3)).astype("float32")
CONSTANT = np.column_stack([np.full(800, 7.0), RNG.normal(size=800)])
# hunt24 h06: grayscale digits without a channel axis, whose border columns barely vary.
DIGITS = RNG.uniform(0, 255, (200, 28, 28))
DIGITS[:, :, :2] = DIGITS[:, :, -2:] = RNG.normal(0, 0.7, (200, 28, 2))
# hunt24 b07: sensor windows channels first, (channels, time): a pressure, a ratio, a rate.
SENSORS = RNG.normal(size=(300, 3, 50)) * np.array([776.0, 0.1, 3.2])[:, None]


def model_on(norm: keras.layers.Layer, x: np.ndarray, before: keras.layers.Layer | None = None):
    """A model whose input feeds `norm` (through `before`, if given)."""
    inputs = keras.Input(shape=x.shape[1:])
    outputs = norm(inputs if before is None else before(inputs))
    return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(outputs)))


def adapted(x: np.ndarray, **kwargs) -> keras.layers.Normalization:
    norm = keras.layers.Normalization(**kwargs)
    norm.adapt(x)
    return norm


@pytest.mark.parametrize(
    "make,x,found",
    [
        (lambda: adapted(TABLE, axis=None), TABLE, True),
        (lambda: keras.layers.Normalization(mean=5e4, variance=5e8), TABLE, True),
        (lambda: adapted(SENSORS, axis=None), SENSORS, True),
        # Healthy: per-feature statistics; one scale for features of one scale (pixels).
        (lambda: adapted(TABLE), TABLE, False),
        (lambda: adapted(SAME_SCALE, axis=None), SAME_SCALE, False),
        (lambda: adapted(PIXELS, axis=None), PIXELS, False),
        (lambda: keras.layers.Normalization(mean=127.5, variance=5418.0), PIXELS, False),
        (lambda: adapted(DIGITS, axis=None), DIGITS, False),
        # Not judged: one varying feature, one feature, an inverse normalization.
        (lambda: adapted(CONSTANT, axis=None), CONSTANT, False),
        (lambda: adapted(TABLE[:, :1], axis=None), TABLE[:, :1], False),
        (lambda: adapted(TABLE, axis=None, invert=True), TABLE, False),
    ],
    ids=[
        "axis-none",
        "scalar-statistics",
        "channels-first",
        "per-feature",
        "same-scale",
        "pixels",
        "pixels-given",
        "border-columns",
        "one-varying",
        "one-feature",
        "inverted",
    ],
)
def test_one_scale_for_features_of_many_scales_is_found(make, x, found):
    norm = make()
    findings = normpooled.findings(model_on(norm, x), x, step=2)
    assert [f.code for f in findings] == (["normalization-features-pooled"] if found else [])
    if found:
        assert findings[0].details["ratio"] >= normpooled.SPREAD
        assert findings[0].details["layer"] == norm.name
        assert "Normalization() (axis=-1, the default;" in findings[0].message


def test_the_message_names_the_widest_and_narrowest_features():
    (finding,) = normpooled.findings(model_on(adapted(TABLE, axis=None), TABLE), TABLE, step=0)
    spreads = TABLE.std(axis=0)
    narrowest = int(np.argmin(spreads))
    assert f"feature 0: {spreads[0]:.3g}, feature {narrowest}: " in finding.message
    assert "(axis=None)" in finding.message
    given = keras.layers.Normalization(mean=5e4, variance=5e8)
    (finding,) = normpooled.findings(model_on(given, TABLE), TABLE, step=0)
    assert "(a scalar mean= and variance=)" in finding.message
    (finding,) = normpooled.findings(model_on(adapted(SENSORS, axis=None), SENSORS), SENSORS, 0)
    assert "3 features along axis 1 (axis=None)" in finding.message
    assert finding.details["axis"] == 1


def test_a_normalization_after_another_layer_is_not_judged():
    norm = keras.layers.Normalization(axis=None)
    model = model_on(norm, TABLE, before=keras.layers.Dense(7))
    norm.adapt(TABLE)
    assert normpooled.findings(model, TABLE, step=0) == []
