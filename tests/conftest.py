"""Shared test set-up: quiet TensorFlow, the execution-mode fixture, and the harness's names.

The harness itself (`harness.py`) runs every check in every mode and through every entry point.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402
from harness import (  # noqa: E402, F401
    MODES,
    WARN_ALL,
    Case,
    mlp,
    mode_kwargs,
    regression_data,
    run_case,
)

logging.set_verbosity(logging.ERROR)


# Test files whose tests may run on any worker: no module-scoped fixture is shared between them.
SPREAD = {"test_entry_points.py", "test_checks.py", "test_transforms.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `--dist loadgroup`: a file's tests stay on one worker (several share module fixtures),
    # except the files above, which spread over the workers.
    for item in items:
        if item.path.name not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


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
