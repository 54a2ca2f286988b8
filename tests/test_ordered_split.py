"""`validation_split` on rows sorted by their target (`heldout.ordered_split`,
`validation-split-ordered`): found after a real `fit` under a process-wide guard when the
validation targets all lie beyond the training ones and the validation loss stays far above the
training loss; silent for the same rows shuffled, a trending time series, a line that
extrapolates, `validation_data`, a classifier (its ordered classes: `loss-not-decreasing`) and
too few epochs."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest

from gradguard import heldout
from gradguard.guarding import Guard
from gradguard.options import Options

CODE = "validation-split-ordered"


def _table(rows: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """A nonlinear regression (hunt12's price table): 8 features, a curved target."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=8)
    w /= np.linalg.norm(w)
    x = rng.normal(size=(rows, 8)).astype("float32")
    s = x @ w
    y = s + 0.8 * s**2 + 0.3 * x[:, 1] + 0.2 * rng.normal(size=rows)
    return x, y.astype("float32")


def _series(rows: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """A trending series: the target at t from the 8 values before it, noise on the trend."""
    rng = np.random.default_rng(1)
    t = np.arange(rows + 8, dtype="float32")
    values = 0.002 * t + np.sin(t / 9.0) + 0.5 * rng.normal(size=t.size)
    x = np.stack([values[i : i + 8] for i in range(rows)]).astype("float32")
    return x, values[8:].astype("float32")


def _fit(x, y, hidden: bool = True, epochs: int = 6, **kwargs) -> list[str]:
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(64, activation="relu")] * hidden + [keras.layers.Dense(1)]
    model = keras.Sequential([keras.Input((x.shape[1],)), *layers])
    model.compile(keras.optimizers.Adam(3e-3 if hidden else 0.05), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, **kwargs)
        return [f.message for f in guard.read(final=True).findings if f.code == CODE]


def test_a_table_sorted_by_its_target_is_found_and_the_shuffled_one_is_not():
    x, y = _table()
    order = np.argsort(y)
    found = _fit(x[order], y[order], validation_split=0.2)
    assert len(found) == 1
    assert "validation_split=0.2 took the last 20%" in found[0]
    assert "all lie above the training part's" in found[0]
    assert not _fit(x, y, validation_split=0.2)  # the same rows, shuffled
    # Sorted the other way (the curve's long tail first): the validation part holds the lowest.
    assert "all lie below" in _fit(x[order], -y[order], validation_split=0.2)[0]


def test_validation_data_given_is_not_judged():
    x, y = _table()
    order = np.argsort(y)
    x, y = x[order], y[order]
    assert not _fit(x, y, validation_split=0.2, validation_data=(x[-200:], y[-200:]))


def test_a_trending_series_validated_on_its_last_part_is_silent():
    x, y = _series()
    assert not _fit(x, y, validation_split=0.2)


def test_a_line_that_extrapolates_the_sorted_range_is_silent():
    # The tutorial's fit of y = 3x + 2 on sorted x: the validation targets all lie above the
    # training ones, and the line learned fits them too.
    x = np.linspace(0.0, 1.0, 400, dtype="float32")[:, None]
    assert not _fit(x, 3.0 * x[:, 0] + 2.0, hidden=False, epochs=20, validation_split=0.2)


@pytest.mark.parametrize(
    "labels, split, ranges",
    [
        (np.arange(10.0), 0.2, ((0.0, 7.0), (8.0, 9.0))),  # ascending
        (np.arange(10.0)[::-1, None], 0.2, ((2.0, 9.0), (0.0, 1.0))),  # descending, [N, 1]
        (np.array([0.0, 3, 1, 2, 4, 9, 5, 8, 7, 6]), 0.2, None),  # the ranges overlap
        (np.arange(10), 0.2, ((0, 7), (8, 9))),  # whole numbers (ages, counts)
        (np.full(10, 0.5), 0.2, None),  # one value
        (np.arange(20.0).reshape(10, 2), 0.2, None),  # two targets per example
        (np.arange(10.0), 0.0, None),  # no split
        ({"out": np.arange(10.0)}, 0.2, None),  # several outputs
    ],
    ids=["ascending", "descending", "overlap", "whole", "constant", "two", "no-split", "dict"],
)
def test_the_ranges_of_a_split_that_does_not_overlap(labels, split, ranges):
    assert heldout._split_ranges(labels, split) == ranges


@pytest.mark.parametrize(
    "epochs, found",
    [
        ([(3.0, 8.0), (0.5, 4.0), (0.1, 2.5)], True),
        ([(3.0, 8.0), (0.5, 4.0)], False),  # too few epochs to judge
        ([(3.0, 8.0), (0.5, 1.0), (0.4, 0.9)], False),  # validation within 3x the training loss
        ([(300.0, 8.0), (1.0, 4.0), (0.1, 2.5)], False),  # both ended near 0 of the start
    ],
    ids=["far-above", "two-epochs", "close", "learned-the-range"],
)
def test_the_validation_loss_must_show_the_split(epochs, found):
    labels = np.linspace(0.0, 1.0, 40)
    assert bool(heldout.ordered_split(epochs, labels, 0.25, step=9)) == found


def test_a_classifiers_ordered_labels_are_left_to_loss_not_decreasing():
    history = types.SimpleNamespace(history={"loss": [1.0, 0.5, 0.1], "val_loss": [5.0, 6.0, 7.0]})
    arguments = {"y": np.repeat(np.arange(4), 10), "validation_split": 0.25}
    codes = [f.code for f in heldout.after_fit({}, history, arguments, step=9)]
    assert codes == [CODE]  # a regression's loss: the ids are values
    codes = [
        f.code for f in heldout.after_fit({"chance_loss_balanced": 1.39}, history, arguments, 9)
    ]
    assert codes == ["loss-not-decreasing"]  # a classifier's: class 3 never trained on
