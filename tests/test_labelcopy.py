"""A regression's label that is one of its own inputs (`labelcopy`, `labels-in-inputs`): a
forecast's windows one step off (the target inside its window, first or last) are found under
`fit` with `gradguard run`, from arrays and from `timeseries_dataset_from_array`; the value after
the window, an autoencoder's targets and constant labels stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness import findings_through

from gradguard.guarding import Guard
from gradguard.labelcopy import LabelCopies
from gradguard.options import Options

CODE = "labels-in-inputs"
T = 8
SERIES = np.random.default_rng(5).normal(size=200).astype("float32")
WINDOWS = np.stack([SERIES[i : i + T + 1] for i in range(160)])  # T + 1 values each
TARGETS = {
    "first value": (WINDOWS[:, :T], WINDOWS[:, 0]),
    "last value": (WINDOWS[:, 1:], WINDOWS[:, T]),
    "next value": (WINDOWS[:, :T], WINDOWS[:, T]),
    "constant": (WINDOWS[:, :T], np.full(160, WINDOWS[0, 0])),
}


def _forecaster(outputs: int = 1) -> keras.Model:
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((T,)), keras.layers.Dense(outputs)])


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_label_inside_its_own_window_is_found(target):
    x, y = TARGETS[target]
    findings = findings_through("run", _forecaster(), "mse", x, y)
    found = [f for f in findings if f.code == CODE]
    assert bool(found) == (target in ("first value", "last value")), findings
    if found:
        assert found[0].details["position"] == (0 if target == "first value" else T - 1)
        assert "targets=series[T:]" in found[0].message


def test_windows_of_a_data_set_without_a_static_length_are_read():
    data = keras.utils.timeseries_dataset_from_array(
        SERIES[:-T], SERIES, sequence_length=T, batch_size=32
    )
    model = _forecaster()
    model.compile("adam", "mae")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(data, epochs=1, verbose=0)
        codes = [f.code for f in guard.read(final=True).findings]
    assert CODE in codes, codes


def test_only_regressions_of_one_value_per_example_on_one_input_are_read():
    assert LabelCopies.of(_forecaster(outputs=T)) is None  # (an autoencoder's targets)
    classifier = _forecaster(outputs=3)
    classifier.compile("adam", "sparse_categorical_crossentropy")
    assert LabelCopies.of(classifier) is None
    regression = _forecaster()
    regression.compile("adam", "mse")
    assert LabelCopies.of(regression) is not None
