"""One harness for checks: any check, in every execution mode, through every entry point.

Two levels, each a parametrization away for a new check (torchmetrics' `MetricTester` idea):

* `Scripted`: a check driven by a scripted sequence of step statistics, folded eagerly, in a
  `tf.function` and under XLA, its state compared with a NumPy reference fold and judged.
* `Case`: a small training loop (a planted bug or its healthy twin) trained through an entry
  point (`ENTRY_POINTS`: `TrainStep`, the guard decorator over the user's step, and
  ``gradguard run`` over an unmodified script, run in this process through `gradguard.runner`)
  in a mode (`MODES`: the user's step eager, in a `tf.function`, or compiled with XLA).
  `TrainStep` in a `tf.function` folds the default checks later (`gradguard.deferred`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

import gradguard
from gradguard import deferred, deltas, runner
from gradguard.checks import Check
from gradguard.guarding import Guard
from gradguard.options import Options
from gradguard.stats import Context, Layout, Stats

MODES = ("eager", "graph", "jit")
ENTRY_POINTS = ("train_step", "guard", "run")
WARN_ALL = {code: "warn" for code in gradguard.CODES}


def regression_data(n: int = 64, features: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    w = rng.normal(size=(features, 1)).astype("float32")
    return x, (x @ w).astype("float32")


WIDE = 20000  # features: a kernel of 20000 x 4 is measured on a sample (`deltas.stride`)


def one_hot_rows_the_sample_misses() -> tuple[np.ndarray, np.ndarray]:
    """One-hot rows of a few of `WIDE` features whose rows of a (WIDE, 4) kernel hold no sample.

    With plain SGD only those rows of the kernel change: its sample neither moves nor has a
    gradient, which is no sign the weights stopped (`weights-unchanged` would be a false alarm).
    """
    stride = deltas.stride((WIDE, 4))
    missed = [row for row in range(200) if all((4 * row + c) % stride for c in range(4))][:8]
    rng = np.random.default_rng(0)
    x = np.zeros((64, WIDE), np.float32)
    x[np.arange(64), rng.choice(missed, 64)] = 1.0
    return x, rng.normal(size=(64, 1)).astype(np.float32)


def mlp(
    features: int = 8, units: int = 16, depth: int = 1, activation: str = "relu", seed: int = 1
) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Dense(units, activation=activation) for _ in range(depth)]
    return keras.Sequential([keras.Input((features,)), *layers, keras.layers.Dense(1)])


def bpr_recommender(n: int, seed: int = 0) -> tuple[keras.Model, list[np.ndarray], np.ndarray]:
    """A BPR recommender, its (user, positive item, negative item) triples and their labels.

    Its output is the positive item's score minus the negative's, every label 1 by
    construction: healthy, its loss falls from ln 2 as it learns the users' tastes.
    """
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    taste, traits = rng.normal(size=(200, 8)), rng.normal(size=(300, 8))
    users = rng.integers(0, 200, n)
    liked = np.argmax(taste[users] @ traits.T + 2 * rng.gumbel(size=(n, 300)), axis=1)
    ids = [keras.Input((), dtype="int32") for _ in range(3)]
    user, items, dot = (
        keras.layers.Embedding(200, 16),
        keras.layers.Embedding(300, 16),
        keras.layers.Dot(-1),
    )
    scores = [dot([user(ids[0]), items(i)]) for i in ids[1:]]
    model = keras.Model(ids, keras.layers.Subtract()(scores))
    triples = [users, liked, rng.integers(0, 300, n)]
    return model, [t.astype("int32") for t in triples], np.ones((n, 1), "float32")


def mode_kwargs(mode: str) -> dict[str, bool]:
    """TrainStep keyword arguments for an execution mode."""
    return {"run_eagerly": mode == "eager", "jit_compile": mode == "jit"}


# -- training loops through the entry points --------------------------------------------------


@dataclasses.dataclass
class Case:
    """A training loop to run: model, optimizer and loss factories, data, steps.

    Attributes:
      modes: The modes it runs in (XLA cannot compile `tf.numpy_function`, for one).
      unsupported: Entry points (``"guard"``) or entry points in a mode (``"guard-eager"``)
        that cannot see this case's bug: the guard and ``run`` see only what the user's code
        hands the optimizer and the tape.
      crashes: The user's own loop raises (Keras refuses what gradguard reported first).
      checks: The checks, when not the default ones (``gradguard run`` always watches all).
    """

    name: str
    model: Callable[[], Any]
    optimizer: Callable[[], keras.optimizers.Optimizer]
    loss: Callable[..., Any] = dataclasses.field(default_factory=keras.losses.MeanSquaredError)
    data: Callable[[], tuple[Any, Any]] = regression_data
    steps: int = 20
    every: int = 5
    transform: Callable[[], Any] | None = None
    checks: Callable[[], list[Check]] | None = None
    modes: tuple[str, ...] = MODES
    unsupported: frozenset[str] = frozenset()
    crashes: bool = False

    def supports(self, entry_point: str, mode: str) -> bool:
        """Whether `entry_point` in `mode` can see this case's bug."""
        unsupported = {entry_point, f"{entry_point}-{mode}"} & self.unsupported
        return mode in self.modes and not unsupported


def numpy_cut_loss(y_true: Any, y_pred: Any) -> tf.Tensor:
    """A loss cut from the tape by a NumPy round trip (`tf.numpy_function`)."""
    pred = tf.numpy_function(lambda p: p, [y_pred], tf.float32)
    return tf.reduce_mean(tf.square(y_true - tf.reshape(pred, [-1, 1])))


def run_case(case: Case, mode: str, **kwargs: Any) -> tuple[gradguard.TrainStep, gradguard.Report]:
    """Trains `case` with `TrainStep` in `mode`, every finding only logged; the final report."""
    x, y = case.data()
    step = gradguard.TrainStep(
        case.model(),
        case.optimizer(),
        case.loss,
        every=case.every,
        policy=WARN_ALL,
        transform=case.transform() if case.transform else None,
        **({"checks": case.checks()} if case.checks else {}),
        **mode_kwargs(mode),
        **kwargs,
    )
    for _ in range(case.steps):
        step(x, y)
    return step, step.report()


def user_step(model: Any, optimizer: Any, loss_fn: Any, mode: str) -> Callable[..., tf.Tensor]:
    """The train step users write, run eagerly, as a `tf.function` or compiled with XLA."""

    def train_step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
            if model.losses:  # (a regularized model's penalties, added as a careful user does)
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    if mode == "eager":
        return train_step
    return tf.function(train_step, jit_compile=mode == "jit")


def guarded_loss_step(model: Any, loss_of: Callable[..., Any]) -> Callable[..., tf.Tensor]:
    """The guard over a hand-written `tf.function` step minimizing ``loss_of(y, outputs)``."""
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_of(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return gradguard.guard(model, optimizer, policy=WARN_ALL)(train_step)


def user_loop(case: Case, mode: str) -> None:
    """The case's loop as a user writes it, without gradguard (what ``gradguard run`` runs)."""
    x, y = case.data()
    step = user_step(case.model(), case.optimizer(), case.loss, mode)
    for _ in range(case.steps):
        step(x, y)


def train(case: Case, mode: str, entry_point: str, workdir: Path) -> gradguard.Report:
    """Trains `case` through `entry_point` in `mode`; returns the report (findings only logged).

    Args:
      case: The loop.
      mode: One of `MODES`.
      entry_point: One of `ENTRY_POINTS`.
      workdir: A directory for the script ``gradguard run`` runs.
    """
    if entry_point == "train_step" and mode != "graph":
        return run_case(case, mode)[1]  # (eager and XLA: the checks fold every step)
    # The other entry points leave the default checks' fold for later (`gradguard.deferred`)
    # from a cadence of 16 on (users' default is 100); here from the case's own, so that every
    # planted bug and healthy twin crosses that path: `TrainStep`'s rows folded before its
    # measuring steps, the guard's when the buffer is full and at reads.
    with mock.patch.object(deferred, "EVERY_RANGE", range(2, 1001)):
        return _train_deferring(case, mode, entry_point, workdir)


def _train_deferring(case: Case, mode: str, entry_point: str, workdir: Path) -> gradguard.Report:
    if entry_point == "train_step":
        step, report = run_case(case, mode)
        _assert_deferred([step.core])
        return report
    if entry_point == "guard":
        transform = case.transform() if case.transform else None
        x, y = case.data()
        model, optimizer = case.model(), case.optimizer()
        guarded = gradguard.guard(
            model,
            optimizer,
            every=case.every,
            policy=WARN_ALL,
            transform=transform,
            checks=case.checks() if case.checks else None,
        )(user_step(model, optimizer, case.loss, mode))
        try:
            for _ in range(case.steps):
                guarded(x, y)
        except (ValueError, tf.errors.InvalidArgumentError):
            if not case.crashes:
                raise
        _assert_deferred(guarded.guard.cores.values())
        return guarded.report()
    if entry_point == "run":
        return _run_script(case, mode, workdir).report
    raise ValueError(f"unknown entry point {entry_point!r}")


def _assert_deferred(cores: Iterable[Any]) -> None:
    for core in cores:
        assert core.deferred is not None or not any(c.deferrable for c in core.checks)


# Cases `gradguard run` can find by name from the script it runs (in this process).
_RUNNABLE: dict[str, Case] = {}


def _run_script(case: Case, mode: str, workdir: Path) -> runner.Outcome:
    """``gradguard run`` over a script that runs the case's user loop, in this process."""
    key = f"{case.name}-{mode}"
    _RUNNABLE[key] = case
    script = workdir / f"train_{key}.py"
    script.write_text(
        f"import harness\nharness.user_loop(harness._RUNNABLE[{key!r}], {mode!r})\n",
        encoding="utf-8",
    )
    plan = runner.prepare(str(script), every=case.every)
    outcome = runner.run_script(plan)
    assert outcome.status == (1 if case.crashes else 0), outcome.crash
    return outcome


def combinations(cases: Iterable[Case], full: bool | None = None) -> list[Any]:
    """pytest params (case, mode, entry point) for the combinations each case supports.

    Each entry point runs each case in one mode, rotating over the cases (and the entry points:
    a case runs in a different mode through each), so that every mode of every entry point is
    covered by several cases and the suite stays fast; with ``full`` (default: the environment
    variable ``GRADGUARD_FULL_MATRIX=1``) every case runs in every mode of every entry point.
    """
    import pytest

    if full is None:
        full = os.environ.get("GRADGUARD_FULL_MATRIX") == "1"
    params = []
    for index, case in enumerate(cases):
        for shift, entry in enumerate(ENTRY_POINTS):
            modes = [m for m in MODES if case.supports(entry, m)]
            if not full and modes:
                modes = [modes[(index + shift) % len(modes)]]
            params += [pytest.param(case, m, entry, id=f"{case.name}-{entry}-{m}") for m in modes]
    return params


# -- a check driven by scripted statistics ------------------------------------------------------


@dataclasses.dataclass
class Scripted:
    """A check fed a scripted sequence of step statistics.

    Attributes:
      name: The test id.
      check: Makes the check.
      sites: The watched layer outputs (`activations.Site`), for a check that watches them;
        each step then holds ``activations``: one ``[examples, units]`` array per site.
      layout: The variables' names (their layers come from the names).
      steps: Per step, the `Stats` fields as plain values (missing fields get healthy
        defaults: see `stats`).
      reference: The NumPy fold of (steps, layout): the state after all steps, keyed as
        `state()`.
      codes: The finding codes the state must be judged to (empty: silent).
      notes: What the entry point tells the judgment (`Context.notes`), e.g. the chance level.
      learning_rate: The optimizer's learning rate when judged (`Context.learning_rate`).
    """

    name: str
    check: Callable[[], Check]
    layout: Layout
    steps: Sequence[Mapping[str, Any]]
    reference: Callable[[Sequence[Mapping[str, Any]], Layout], Mapping[str, Any]]
    codes: frozenset[str] = frozenset()
    sites: Sequence[Any] = ()
    notes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    learning_rate: float | None = None


def stats(layout: Layout, step: int, **fields: Any) -> dict[str, Any]:
    """One step's statistics as plain values; fields not given are those of a healthy step."""
    n = layout.size
    values: dict[str, Any] = {
        "step": step,
        "loss": 1.0,
        "grad_sq": np.full(n, 0.01, np.float32),
        "grad_norm": float(np.sqrt(0.01 * n)),
        "grad_norm_after": float(np.sqrt(0.01 * n)),
        "applied": True,
        "measured": step % 5 == 0,
        "update_sq": np.full(n, 1e-6, np.float32),
        "weight_sq": np.ones(n, np.float32),
        "grad_sample_sq": np.zeros(n, np.float32),
        "unit_spread": np.ones(n, np.float32),
        "loss_scale": 1.0,
        "overflow": False,
        "vetoed": False,
        "bad_input": 0,
        "loss_known": True,
    }
    values.update(fields)
    return values


_FLAGS = ("applied", "measured", "overflow", "vetoed", "loss_known")
_DTYPES = {"step": tf.int64, "bad_input": tf.int32, **dict.fromkeys(_FLAGS, tf.bool)}
_FIELDS = [f.name for f in dataclasses.fields(Stats) if f.name != "activations"]


# Folds of a deferrable check (`gradguard.deferred`) as `TrainStep`'s lean graph steps leave
# them: the rows folded by a loop compiled by XLA before each measuring step, the last ones by a
# graph at the read.
DEFERRED_MODES = ("deferred",)


def fold(scripted: Scripted, mode: str) -> tuple[Check, dict[str, np.ndarray]]:
    """Builds the check and folds every scripted step in `mode`; returns it and its state.

    `mode` is one of `MODES`, or of `DEFERRED_MODES` for a deferrable check: the state is
    then read with rows still waiting (`state()` folds them first).
    """
    check = scripted.check()
    check.watch(scripted.sites)
    check.build(scripted.layout)
    step = tf.Variable(0, dtype=tf.int64)
    later = mode in DEFERRED_MODES
    folding = deferred.DeferredFold([check], len(scripted.steps), step) if later else None

    def update(*values: tf.Tensor, measured: bool | None = None) -> None:
        stats = Stats(**dict(zip(_FIELDS, values)), activations=tuple(values[len(_FIELDS) :]))
        if folding is not None and measured is False:
            folding.write(stats)
        else:
            check.update(stats)

    run = update if mode == "eager" else tf.function(update, jit_compile=mode == "jit")
    for values in scripted.steps:
        tensors = [tf.constant(values[k], _DTYPES.get(k, tf.float32)) for k in _FIELDS]
        activations = [tf.constant(a, tf.float32) for a in values.get("activations", ())]
        step.assign(values["step"])
        measured = bool(values["measured"]) if later else None
        if folding is not None:
            folding.before_step(bool(measured))
        run(*tensors, *activations, measured=measured)
    step.assign_add(1)
    return check, check.state()


def judge(
    check: Check,
    state: Mapping[str, np.ndarray],
    steps: int,
    notes: Mapping[str, Any] = {},
    learning_rate: float | None = None,
) -> set[str]:
    """The codes the check finds in `state` after `steps` steps."""
    context = Context(steps=steps, step=steps - 1, learning_rate=learning_rate, notes=dict(notes))
    return {f.code for f in check.judge(state, context)}


def fit_and_train_step(
    model: Callable[[], keras.Model], loss: Any, x: Any, y: Any
) -> tuple[Any, Any]:
    """A fresh `model()` fit one epoch under a GuardCallback, another run one TrainStep call.

    Returns:
      The callback and the step, to read their reports and their cores' notes.
    """
    fitted = model()
    fitted.compile(keras.optimizers.Adam(1e-3), loss)
    callback = gradguard.GuardCallback()
    fitted.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    step = gradguard.TrainStep(model(), keras.optimizers.Adam(1e-3), loss)
    step(x[:16], y[:16])
    return callback, step


def findings_through(entry: str, model: keras.Model, loss: Any, x: Any, y: Any) -> list[Any]:
    """The findings of one pass over `x` and `y` in batches of 32, by `entry`.

    ``"train_step"``: a `TrainStep` called on each batch; ``"run"``: `fit` under a process-wide
    guard, as ``gradguard run`` wraps it (its arrays read as it starts).
    """
    if entry == "train_step":
        step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), loss)
        for i in range(0, len(y), 32):
            step(x[i : i + 32], y[i : i + 32])
        return list(step.report().findings)
    model.compile(keras.optimizers.Adam(1e-2), loss)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        return list(guard.read(final=True).findings)
