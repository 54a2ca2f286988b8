"""`ema-weights-stale`: an optimizer's `use_ema` average, which `fit` puts into the model when it
returns, still mostly the weights of the first step."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard import ema


def _optimizer(updates, momentum=0.99, *, use_ema=True, scaled=False):
    optimizer = keras.optimizers.Adam(1e-3, use_ema=use_ema, ema_momentum=momentum)
    optimizer.build([keras.Variable(np.zeros((2, 2), "float32"))])
    optimizer.iterations.assign(updates)
    return keras.optimizers.LossScaleOptimizer(optimizer) if scaled else optimizer


@pytest.mark.parametrize(
    "momentum,updates,found",
    [
        (0.99999, 632, True),  # averages 100,000 updates: 99% the first step's weights
        (0.999, 300, True),  # 74%
        (0.99, 632, False),  # the default: 0.2%
        (0.999, 5000, False),
        (0.9999, 50_000, False),  # a long run's average: 0.7%
        (0.99999, 0, False),  # (no update yet)
    ],
)
def test_an_average_still_mostly_the_first_steps_weights(momentum, updates, found):
    findings = ema.stale(_optimizer(updates, momentum), step=9)
    assert [f.code for f in findings] == (["ema-weights-stale"] if found else [])
    if found:
        (finding,) = findings
        share = momentum ** (updates - 1)
        assert finding.details["first_step_share"] == pytest.approx(share)
        assert f"still {share:.0%} the weights of the first step" in finding.message
        assert f"over about {1 / (1 - momentum):,.0f} updates" in finding.message


def test_a_loss_scalers_inner_average_is_read_and_no_ema_is_silent():
    assert ema.stale(_optimizer(300, 0.999, scaled=True), step=0)
    assert not ema.stale(_optimizer(300, 0.999, use_ema=False), step=0)
