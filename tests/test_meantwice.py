"""`loss-averaged-twice`: the batch's mean loss summed as one number and divided by the batch.

The custom-training guide's ``tf.reduce_sum(per_example_loss) * (1. / BATCH)`` given a Keras
loss object with its default reduction (which averages already) makes every gradient BATCH
times too small (hunt26 b05). Real loops under the guard and `TrainStep`; the guide's own way,
a loss object's ``reduction="sum"`` divided by the batch, and a mean weighted by a half are
silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL, plain_step

import gradguard

BATCH = 16
_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(BATCH, 6)).astype("float32")
_Y = _X[:, :1] * 2.0


def _mse(reduction: str):
    return keras.losses.MeanSquaredError(reduction=reduction)


LOSSES = {  # name: (loss function of (y, y_pred), averaged twice)
    "keras-mean-summed-times-inverse": (
        lambda y, p: tf.reduce_sum(_mse("sum_over_batch_size")(y, p)) * (1.0 / BATCH),
        True,
    ),
    "reduce-mean-summed-divided": (
        lambda y, p: tf.reduce_sum(tf.reduce_mean(tf.square(y - p))) / BATCH,
        True,
    ),
    "per-example-summed-times-inverse": (
        lambda y, p: tf.reduce_sum(_mse("none")(y, p)) * (1.0 / BATCH),
        False,
    ),
    "sum-reduction-divided": (lambda y, p: tf.reduce_sum(_mse("sum")(y, p)) / BATCH, False),
    "mean-weighted-half": (
        lambda y, p: 0.5 * tf.reduce_sum(tf.reduce_mean(tf.square(y - p))),
        False,
    ),
}


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])


@pytest.mark.parametrize("entry", ["guard", "train_step"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_a_batch_mean_divided_by_the_batch_again_is_found(name, entry):
    loss_fn, twice = LOSSES[name]
    model, optimizer = _model(), keras.optimizers.SGD(0.1)
    if entry == "guard":  # (the hand-written step, traced)
        step = gradguard.guard(model, optimizer, policy=WARN_ALL)(
            plain_step(model, optimizer, loss_fn)
        )
    else:
        step = gradguard.TrainStep(model, optimizer, loss_fn, policy=WARN_ALL)
    for _ in range(3):
        step(_X, _Y)
    found = [f for f in step.report().findings if f.code == "loss-averaged-twice"]
    assert len(found) == int(twice), [str(f) for f in step.report().findings]
    if twice:
        assert found[0].details["divisor"] == BATCH
        assert "reduction='none'" in found[0].message
