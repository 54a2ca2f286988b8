"""Shared test harness: execution modes, synthetic data, model builders, and a case runner.

Every check and transform is run through `run_case` in each mode of `MODES`, so a new check gets
eager, graph and XLA coverage without new test code (torchmetrics' MetricTester idea).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

import gradguard  # noqa: E402

logging.set_verbosity(logging.ERROR)

MODES = ("eager", "graph", "jit")
WARN_ALL = {code: "warn" for code in gradguard.CODES}


def mode_kwargs(mode: str) -> dict[str, bool]:
    """TrainStep keyword arguments for an execution mode."""
    return {"run_eagerly": mode == "eager", "jit_compile": mode == "jit"}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def regression_data(n: int = 64, features: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    w = rng.normal(size=(features, 1)).astype("float32")
    return x, (x @ w).astype("float32")


def mlp(
    features: int = 8, units: int = 16, depth: int = 1, activation: str = "relu", seed: int = 1
) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Dense(units, activation=activation) for _ in range(depth)]
    return keras.Sequential([keras.Input((features,)), *layers, keras.layers.Dense(1)])


@dataclasses.dataclass
class Case:
    """A training loop to run: model, optimizer and loss factories, data, steps."""

    name: str
    model: Callable[[], Any]
    optimizer: Callable[[], keras.optimizers.Optimizer]
    loss: Callable[..., Any] = dataclasses.field(default_factory=keras.losses.MeanSquaredError)
    data: Callable[[], tuple[Any, Any]] = regression_data
    steps: int = 20
    every: int = 5
    transform: Callable[[], Any] | None = None


def run_case(case: Case, mode: str, **kwargs: Any) -> tuple[gradguard.TrainStep, gradguard.Report]:
    """Trains `case` in `mode` with every finding only logged, and returns the final report."""
    x, y = case.data()
    step = gradguard.TrainStep(
        case.model(),
        case.optimizer(),
        case.loss,
        every=case.every,
        policy=WARN_ALL,
        transform=case.transform() if case.transform else None,
        **mode_kwargs(mode),
        **kwargs,
    )
    for _ in range(case.steps):
        step(x, y)
    return step, step.report()


def plain_step(model: keras.Model, optimizer: Any, loss_fn: Any, jit: bool = False) -> Any:
    """The hand-written step gradguard replaces."""

    @tf.function(jit_compile=jit)
    def step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step
