"""Shared test set-up: quiet TensorFlow, the execution-mode fixture, and the harness's names.

The harness itself (`harness.py`) runs every check in every mode and through every entry point.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One thread per TensorFlow pool, here and in every subprocess a test starts (they inherit the
# environment): the suite runs three TensorFlow processes at once (two pytest workers, a corpus
# worker) on CI's two cores, and each process's pools, sized to every core, spin while they
# wait for work. On one thread each the suite took 10:48 and 17.9 CPU-minutes against 13-15
# minutes and 22-26 CPU-minutes (this machine, same tests). Set either variable to override.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# oneDNN off: on CPUs with AVX512-FP16 its fused float16 kernels crawl (a 64x128x4096 matmul
# with a bias add took 0.54 s against 1.1 ms unfused, TF 2.21), which held a mixed-precision
# corpus script for minutes; the test files ran 7% faster without it too. Set it to override.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# A check that fails on the host around `fit` is logged and skipped in users' scripts; here
# (and in the corpus workers, which inherit it) it fails the test.
os.environ.setdefault("GRADGUARD_STRICT", "1")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402
from harness import (  # noqa: E402, F401
    MODES,
    WARN_ALL,
    Case,
    bpr_recommender,
    fit_and_train_step,
    guarded_loss_step,
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


@pytest.hookimpl(trylast=True)  # after xdist's own hook has named each item's group
def pytest_collection_finish(session: pytest.Session) -> None:
    # xdist's loadgroup reads the group from a "@group" suffix it adds to each item's id; when a
    # pytest release moves that id, groups are silently lost and module fixtures run twice.
    if getattr(session.config.option, "loadgroup", False):  # set in xdist's workers
        lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group")]
        lost = [nodeid for nodeid in lost if "@" not in nodeid]
        if lost:
            message = (
                f"pytest-xdist did not group {len(lost)} tests (e.g. {lost[0]}): this pytest "
                f"({pytest.__version__}) is too new for its --dist loadgroup; install "
                "pyproject.toml's test extra (pip install -e '.[test]')."
            )
            print(message, file=sys.stderr)  # a worker's exception reaches the user mangled
            raise pytest.UsageError(message)


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_pytests_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    # What the tests, their subprocesses, the corpus scripts, the notebooks and the demo make
    # with `tempfile` goes in pytest's own directory (it keeps the last three runs'), not /tmp.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tempfile")))
        patch.setattr(tempfile, "tempdir", None)  # read TMPDIR anew
        yield


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
