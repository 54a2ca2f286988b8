"""Deferred folds: rows folded later give the state the per-step fold gives.

The scripted folds of every deferrable check against NumPy run in `test_checks.py`
(`DEFERRED_MODES`); here, whole loops. `TrainStep`: the rows folded by the loop at measuring
steps (as a graph, then compiled by XLA), by a host read between them, and still waiting at the
end. The guard: rows of every update, folded by the step that finds the buffer full (also
inside a loop of updates and under XLA) and by the host's reads. Both also with every function
run eagerly (the fold loop then runs as Python).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import WARN_ALL, mlp, regression_data, user_step

import gradguard
from gradguard import deferred

EVERY, STEPS, NAN_AT, READ_AT = 20, 47, 13, 26
# The loop is compiled after this many rows here (1024 in a real run), so these short runs fold
# both ways: as a graph first, then compiled.
COMPILE_AFTER = 10


@pytest.fixture(autouse=True)
def _compile_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deferred, "COMPILE_AFTER", COMPILE_AFTER)


# TrainStep's options per mode. ``every-step`` and ``accumulate``: every update writes a row
# and the one that finds the buffer full folds it, as the guard's do.
OPTIONS = {
    "graph": {"every": EVERY},
    "eager": {"every": EVERY, "run_eagerly": True},  # (its fold is one graph: it writes rows)
    "every-step": {"every": 1, "read_every": EVERY},
    "accumulate": {"every": EVERY, "accumulate": 2},
    "functions-eagerly": {"every": EVERY},
}


@contextlib.contextmanager
def _functions(mode: str) -> Iterator[None]:
    """Mode ``functions-eagerly``: `tf.config.run_functions_eagerly(True)`, as when debugging.

    Every `tf.function` then runs its Python, gradguard's folds and reads included.
    """
    tf.config.run_functions_eagerly(mode == "functions-eagerly")
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


def _train(mode: str, steps: int = STEPS) -> tuple[list[dict[str, np.ndarray]], Any]:
    """The checks' state after `steps` steps: a NaN batch at NAN_AT, a report at READ_AT."""
    x, y = regression_data()
    bad = x.copy()
    bad[3, 2] = np.nan
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.SGD(0.05), "mse", policy=WARN_ALL, **OPTIONS[mode]
    )
    with _functions(mode):
        for i in range(steps):
            step(bad if i == NAN_AT else x, y)
            if i == READ_AT:
                step.report()  # folds the rows waiting since step 21
        return [check.state() for check in step.core.checks], step.core


@pytest.mark.parametrize("mode", list(OPTIONS))
def test_deferred_folds_leave_the_state_of_folding_every_step(mode, monkeypatch):
    deferred_states, core = _train(mode)
    # graph, eager: the loop folded steps 2-19 before step 20 (the NaN among them) as a graph
    # and 27-39 before step 40 compiled; the report folded 21-26 as a graph, and so did
    # `state()` for 41-46.
    assert core.deferred is not None
    assert core.deferred.host_folds == (mode in ("graph", "eager", "functions-eagerly"))
    with monkeypatch.context() as patch:
        patch.setattr(deferred, "defers", lambda every: False)
        per_step_states, per_step_core = _train(mode)
    assert per_step_core.deferred is None
    (nonfinite,) = [s for s in deferred_states if "data_first" in s]
    # ReLU turns the NaN input into a NaN gradient of the first kernel; the loss stays finite.
    nan_step = NAN_AT // OPTIONS[mode].get("accumulate", 1)  # the update it was part of
    assert int(nonfinite["grad_first"][0]) == int(nonfinite["data_first"]) == nan_step
    assert int(nonfinite["skipped"]) == 1
    _assert_same(deferred_states, per_step_states)


def _assert_same(got_states: list[dict[str, Any]], want_states: list[dict[str, Any]]) -> None:
    for got, want in zip(got_states, want_states, strict=True):
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_reads_of_a_short_run_fold_op_by_op_without_tracing_the_loop(monkeypatch):
    # Tracing the loop costs 0.1-0.2 s: a run whose reads find few rows (step 0's read, then
    # the 15 steps since, the NaN among them) folds them eagerly, to the same state.
    deferred_states, core = _train("graph", steps=deferred.EAGER_ROWS)
    assert core.deferred is not None and not core.deferred._looped
    assert core.deferred._graph_fold.experimental_get_tracing_count() == 0
    monkeypatch.setattr(deferred, "defers", lambda every: False)
    _assert_same(deferred_states, _train("graph", steps=deferred.EAGER_ROWS)[0])


def test_rows_of_measuring_steps_carry_the_weights_a_nan_weight_is_found_at_its_step():
    x, y = regression_data()
    model = mlp()
    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(0.05), "mse", policy=WARN_ALL, **OPTIONS["every-step"]
    )
    for i in range(30):
        if i == NAN_AT:
            model.layers[-1].bias.assign([np.nan])  # e.g. a bad checkpoint restored
        step(x, y)
    assert step.core.deferred is not None
    (nonfinite,) = [c.state() for c in step.core.checks if type(c).__name__ == "NonFinite"]
    assert list(nonfinite["weight_first"]) == [-1, -1, -1, NAN_AT]  # the bias, before the loss
    assert int(nonfinite["loss_first"]) == NAN_AT


def _guarded(mode: str) -> tuple[list[dict[str, np.ndarray]], Any]:
    """The guard's checks' state after STEPS calls: a NaN batch at NAN_AT, a report at READ_AT.

    ``loop``: three updates a call in a `tf.while_loop`, so that a step in the loop finds the
    buffer full; ``jit``: the step compiled by XLA, the fold of a full buffer with it.
    """
    x, y = regression_data()
    bad = x.copy()
    bad[3, 2] = np.nan
    model, optimizer = mlp(), keras.optimizers.SGD(0.05)
    loss_fn = keras.losses.MeanSquaredError()

    def updates(x: Any, y: Any) -> Any:
        for _ in tf.range(3):  # AutoGraph: a while loop
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    traced = "graph" if mode == "functions-eagerly" else mode
    user = tf.function(updates) if mode == "loop" else user_step(model, optimizer, loss_fn, traced)
    guarded = gradguard.guard(model, optimizer, every=EVERY, policy=WARN_ALL)(user)
    with _functions(mode):
        for i in range(STEPS):
            guarded(bad if i == NAN_AT else x, y)
            if i == READ_AT:
                guarded.report()
        (core,) = guarded.guard.cores.values()
        return [check.state() for check in core.checks], core


@pytest.mark.parametrize("mode", ["graph", "loop", "eager", "jit", "functions-eagerly"])
def test_the_guards_deferred_folds_leave_the_state_of_folding_every_step(mode, monkeypatch):
    deferred_states, core = _guarded(mode)
    # Rows of every update, measuring or not; a step that finds the 19 rows full folds them
    # (with three updates a call, in the loop), the reads every 20 calls fold the rest.
    assert core.deferred is not None and not core.deferred.host_folds
    with monkeypatch.context() as patch:
        patch.setattr(deferred, "defers", lambda every: False)
        per_step_states, per_step_core = _guarded(mode)
    assert per_step_core.deferred is None
    (nonfinite,) = [s for s in deferred_states if "data_first" in s]
    nan_step = NAN_AT * (3 if mode == "loop" else 1)  # the first update of that call
    assert int(nonfinite["grad_first"][0]) == nan_step, nonfinite
    for got, want in zip(deferred_states, per_step_states):
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_the_fold_loop_is_traced_once_for_the_steps_and_the_reads(monkeypatch):
    # Tracing the loop (every check's update) costs a few tenths of a second at the first call:
    # the step's XLA fold of a full buffer and the host's graph fold at reads share one trace.
    traces = []
    fold = deferred.DeferredFold._fold
    monkeypatch.setattr(deferred.DeferredFold, "_fold", lambda self: traces.append(1) or fold(self))
    _, core = _guarded("graph")  # two full buffers, reads at calls 0, 20, 26, 40
    assert len(traces) == 1
    hlo = core.deferred._compiled_fold.experimental_get_compiler_ir()(stage="hlo")
    assert "while" in hlo  # the step's fold is one XLA program, the loop inside it


@pytest.mark.parametrize("mode", ["graph", "jit"])
def test_only_deferrable_checks_wait_and_other_steps_fold_every_step(mode):
    x, y = regression_data()
    jit = mode == "jit"
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.SGD(0.05), "mse", every=EVERY, jit_compile=jit
    )
    for _ in range(5):
        step(x, y)
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
    # Every step writes its row, measuring ones too (0 and 1): the read after step 0 folded its
    # row, steps 1-4 wait.
    assert int(step.core.deferred._count.numpy()) == 4
    assert not deferred.defers(15) and deferred.defers(100) and not deferred.defers(1001)


def test_the_fold_loop_is_compiled_only_once_enough_rows_were_folded():
    # Compiling costs about 0.3 s: a short run folds as a graph. Every function runs eagerly,
    # so that the steps' `tf.cond` between the two folds calls the one it takes in Python.
    folds: list[tuple[str, int]] = []  # the steps' folds: which, and the rows folded before

    def spy(fold: deferred.DeferredFold) -> None:
        stepping = []  # (a host read folds as a graph at any count: not the steps' fold)
        for name in ("_fold_full", "before_step"):  # where steps fold
            entry = getattr(fold, name)

            def folding(*args: Any, entry: Any = entry) -> Any:
                stepping.append(True)
                try:
                    return entry(*args)
                finally:
                    stepping.pop()

            setattr(fold, name, folding)
        for name in ("_graph_fold", "_compiled_fold"):
            run = getattr(fold, name)

            def recorded(run: Any = run, name: str = name) -> None:
                if stepping:
                    folds.append((name, int(fold._folded.numpy())))
                run()

            setattr(fold, name, recorded)

    x, y = regression_data()
    model, optimizer = mlp(), keras.optimizers.SGD(0.05)
    guarded = gradguard.guard(model, optimizer, every=EVERY)(
        user_step(model, optimizer, keras.losses.MeanSquaredError(), "graph")
    )
    step = gradguard.TrainStep(mlp(), keras.optimizers.SGD(0.05), "mse", every=EVERY)
    with _functions("functions-eagerly"):
        guarded(x, y)
        step(x, y)
        spy(next(iter(guarded.guard.cores.values())).deferred)
        spy(step.core.deferred)
        for _ in range(3 * EVERY):
            guarded(x, y)
            step(x, y)
    # The guard's steps fold each full buffer of 19 rows (its reads every 20 calls fold the
    # rest); the host folds TrainStep's 18 lean steps before its measuring steps 20, 40, 60.
    compiled = [folded for name, folded in folds if name == "_compiled_fold"]
    graph = [folded for name, folded in folds if name == "_graph_fold"]
    assert compiled and graph, folds
    assert max(graph) < COMPILE_AFTER <= min(compiled), folds
