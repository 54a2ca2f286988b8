"""Deferred folds: lean steps' rows folded later give the state the per-step fold gives.

The scripted folds of every deferrable check against NumPy run in `test_checks.py`
(`DEFERRED_MODES`); here, whole `TrainStep` loops: the rows folded by the XLA loop at measuring
steps, by a host read between them, and still waiting at the end.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from harness import WARN_ALL, mlp, regression_data, user_step

import gradguard
from gradguard import deferred

EVERY, STEPS, NAN_AT, READ_AT = 20, 47, 13, 26


def _train(mode: str) -> tuple[list[dict[str, np.ndarray]], Any]:
    """The checks' state after STEPS steps: a NaN batch at NAN_AT, a report at READ_AT."""
    x, y = regression_data()
    bad = x.copy()
    bad[3, 2] = np.nan
    eager = mode == "eager"  # (the eager step folds its checks as one graph: it writes rows)
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.SGD(0.05), "mse", every=EVERY, policy=WARN_ALL, run_eagerly=eager
    )
    for i in range(STEPS):
        step(bad if i == NAN_AT else x, y)
        if i == READ_AT:
            step.report()  # folds the rows waiting since step 21
    return [check.state() for check in step.core.checks], step.core


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_deferred_folds_leave_the_state_of_folding_every_step(mode, monkeypatch):
    deferred_states, core = _train(mode)
    # The XLA loop folded steps 2-19 before step 20 (the NaN among them) and 27-39 before step
    # 40; the report folded 21-26 as a graph, and so did `state()` for 41-46.
    assert core.deferred is not None
    with monkeypatch.context() as patch:
        patch.setattr(deferred, "defers", lambda every: False)
        per_step_states, per_step_core = _train(mode)
    assert per_step_core.deferred is None
    (nonfinite,) = [s for s in deferred_states if "data_first" in s]
    # ReLU turns the NaN input into a NaN gradient of the first kernel; the loss stays finite.
    assert int(nonfinite["grad_first"][0]) == int(nonfinite["data_first"]) == NAN_AT
    assert int(nonfinite["skipped"]) == 1
    for got, want in zip(deferred_states, per_step_states):
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("mode", ["graph", "jit"])
def test_only_deferrable_checks_wait_and_other_steps_fold_every_step(mode):
    x, y = regression_data()
    jit = mode == "jit"
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.SGD(0.05), "mse", every=EVERY, jit_compile=jit
    )
    # The guard decides in-graph whether a step measures: it folds every step.
    model, optimizer = mlp(), keras.optimizers.SGD(0.05)
    optimizer.build(model.trainable_variables)
    user = user_step(model, optimizer, keras.losses.MeanSquaredError(), mode)
    guarded = gradguard.guard(model, optimizer, every=EVERY)(user)
    for _ in range(5):
        step(x, y)
        guarded(x, y)
    assert all(core.deferred is None for core in guarded.guard.cores.values())
    if jit:  # XLA fuses the fold into the step
        assert step.core.deferred is None
        return
    waiting = {type(check).__name__ for check in step.core.deferred.checks}
    assert waiting == {
        "NonFinite",
        "ZeroGradient",
        "ExplodingGradient",
        "VanishingGradient",
        "LossNotDecreasing",
    }
    assert int(step.core.deferred._count.numpy()) == 3  # steps 2-4; 0 and 1 measure
    assert not deferred.defers(15) and deferred.defers(100) and not deferred.defers(1001)
