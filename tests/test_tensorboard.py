"""TensorBoard scalars and sinks: read the event files back and compare with NumPy.

The runs are made once per module (one per execution mode) and shared read-only by the tests.
Every value is checked against a NumPy forward/backward pass of the same two-layer MLP on the
weights the host saw before and after each step, so a wrong tag, a value from the wrong step or
a statistic taken after the update instead of before shows up as a mismatch.
"""

from __future__ import annotations

import dataclasses
import json
import logging as py_logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

import gradguard  # noqa: E402
from gradguard import sinks  # noqa: E402

EVERY = 3
STEPS = 10
CLIP = 5.0
LR = 0.05
MODES = ("eager", "graph", "jit")
LAYERS = ("h", "o")
VARIABLES = ("h/kernel", "h/bias", "o/kernel", "o/bias")
NO_FINDINGS = {code: "warn" for code in gradguard.CODES}


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="h"),
            keras.layers.Dense(1, name="o"),
        ],
        name="net",
    )


def _batches(steps: int = STEPS) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    w = rng.normal(size=(4, 1))
    batches = []
    for _ in range(steps):
        x = rng.normal(size=(16, 4)).astype("float32")
        batches.append((x, (3.0 * x @ w).astype("float32")))
    return batches


def _numpy_grads(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Any:
    """Loss and gradients of MSE(y, relu(x W1 + b1) W2 + b2), by hand, in float64."""
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    x, y = x.astype(np.float64), y.astype(np.float64)
    z = x @ w1 + b1
    h = np.maximum(z, 0.0)
    diff = h @ w2 + b2 - y
    dp = 2.0 * diff / diff.size
    dh = dp @ w2.T * (z > 0)
    return float(np.mean(diff**2)), [x.T @ dh, dh.sum(0), h.T @ dp, dp.sum(0)]


@dataclasses.dataclass
class Expected:
    """Per step, what NumPy says gradguard should have logged."""

    loss: list[float]
    grad_norm: list[float]
    grad_var: list[np.ndarray]  # per step: norm per variable
    weight_var: list[np.ndarray]
    update_var: list[np.ndarray]

    def layer(self, per_var: np.ndarray) -> np.ndarray:
        return np.sqrt(
            np.array([per_var[0] ** 2 + per_var[1] ** 2, per_var[2] ** 2 + per_var[3] ** 2])
        )


def _train(step: gradguard.TrainStep, batches: list[Any]) -> Expected:
    model = step.model
    exp = Expected([], [], [], [], [])
    for x, y in batches:
        if step._core is None:
            model(x)  # build, so the weights can be read before the first step
        before = [v.numpy() for v in model.trainable_variables]
        loss, grads = _numpy_grads(before, x, y)
        step(x, y)
        after = [v.numpy() for v in model.trainable_variables]
        exp.loss.append(loss)
        norms = np.array([np.linalg.norm(g) for g in grads])
        exp.grad_var.append(norms)
        exp.grad_norm.append(float(np.sqrt(np.sum(norms**2))))
        exp.weight_var.append(np.array([np.linalg.norm(w) for w in before]))
        exp.update_var.append(np.array([np.linalg.norm(a - b) for a, b in zip(after, before)]))
    step.report()
    return exp


def read_scalars(log_dir: str) -> dict[str, dict[int, float]]:
    """Tag -> {step: value}, read with TensorBoard's own event reader."""
    acc = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["tensors"]:
        for event in acc.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if value.dtype.kind == "f":
                out.setdefault(tag, {})[event.step] = float(value)
    return out


def read_texts(log_dir: str) -> dict[str, dict[int, str]]:
    acc = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    out: dict[str, dict[int, str]] = {}
    for tag in acc.Tags()["tensors"]:
        for event in acc.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if value.dtype.kind == "O":
                out.setdefault(tag, {})[event.step] = value.item().decode()
    return out


@dataclasses.dataclass
class LoggedRun:
    log_dir: str
    step: gradguard.TrainStep
    expected: Expected
    scalars: dict[str, dict[int, float]]


def _run(log_dir: Path, mode: str, **kwargs: Any) -> LoggedRun:
    batches = kwargs.pop("batches", None) or _batches()
    kwargs.setdefault("transform", gradguard.chain(gradguard.clip_by_global_norm(CLIP)))
    step = gradguard.TrainStep(
        _model(),
        kwargs.pop("optimizer", None) or keras.optimizers.SGD(LR),
        keras.losses.MeanSquaredError(),
        every=kwargs.pop("every", EVERY),
        log_dir=str(log_dir),
        run_eagerly=mode == "eager",
        jit_compile=mode == "jit",
        policy=NO_FINDINGS,
        **kwargs,
    )
    expected = _train(step, batches)
    return LoggedRun(str(log_dir), step, expected, read_scalars(str(log_dir)))


@pytest.fixture(scope="module")
def logroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensorboard")


@pytest.fixture(scope="module")
def runs(logroot: Path) -> dict[str, LoggedRun]:
    return {mode: _run(logroot / mode, mode) for mode in MODES}


STEP_TAGS = {
    "gradguard/loss",
    "gradguard/grad_norm",
    "gradguard/grad_norm_applied",
    "gradguard/learning_rate",
    "gradguard/clipped",
    "gradguard/clipped_steps",
    "gradguard/skipped",
    "gradguard/skipped_updates",
}


def test_tags_are_the_documented_ones(runs: dict[str, LoggedRun]) -> None:
    for run in runs.values():
        layer_tags = {
            f"{section}/{layer}"
            for section in (
                "gradguard_grad_norm",
                "gradguard_weight_norm",
                "gradguard_update_ratio",
            )
            for layer in LAYERS
        }
        assert set(run.scalars) == STEP_TAGS | layer_tags
        # Written on cadence steps only: 0, every, 2 * every, ...
        for tag, series in run.scalars.items():
            assert sorted(series) == list(range(0, STEPS, EVERY)), tag


@pytest.mark.parametrize("mode", MODES)
def test_values_equal_numpy(runs: dict[str, LoggedRun], mode: str) -> None:
    run, exp = runs[mode], runs[mode].expected
    s = run.scalars
    clipped_so_far = np.cumsum([n > CLIP for n in exp.grad_norm])
    for k in range(0, STEPS, EVERY):
        close = dict(rel=2e-4, abs=1e-6)
        assert s["gradguard/loss"][k] == pytest.approx(exp.loss[k], **close)
        assert s["gradguard/grad_norm"][k] == pytest.approx(exp.grad_norm[k], **close)
        assert s["gradguard/grad_norm_applied"][k] == pytest.approx(
            min(exp.grad_norm[k], CLIP), **close
        )
        assert s["gradguard/clipped"][k] == float(exp.grad_norm[k] > CLIP)
        assert s["gradguard/clipped_steps"][k] == clipped_so_far[k]
        assert s["gradguard/skipped"][k] == 0.0
        assert s["gradguard/skipped_updates"][k] == 0.0
        assert s["gradguard/learning_rate"][k] == pytest.approx(LR)
        grad = exp.layer(exp.grad_var[k])
        weight = exp.layer(exp.weight_var[k])
        update = exp.layer(exp.update_var[k])
        for i, layer in enumerate(LAYERS):
            assert s[f"gradguard_grad_norm/{layer}"][k] == pytest.approx(grad[i], **close)
            assert s[f"gradguard_weight_norm/{layer}"][k] == pytest.approx(weight[i], **close)
            assert s[f"gradguard_update_ratio/{layer}"][k] == pytest.approx(
                update[i] / weight[i], rel=2e-3
            )
    assert any(n > CLIP for n in exp.grad_norm) and not all(n > CLIP for n in exp.grad_norm)


def test_modes_agree_and_trace_once(runs: dict[str, LoggedRun]) -> None:
    for tag, series in runs["graph"].scalars.items():
        for mode in ("eager", "jit"):
            other = runs[mode].scalars[tag]
            for k, value in series.items():
                assert other[k] == pytest.approx(value, rel=1e-4, abs=1e-7), (mode, tag, k)
    assert runs["graph"].step.tracing_count == 1
    assert runs["jit"].step.tracing_count == 1


def test_config_text_and_no_findings_when_healthy(runs: dict[str, LoggedRun]) -> None:
    texts = read_texts(runs["graph"].log_dir)
    config = json.loads(texts["gradguard/config"][0])
    assert config["scalars"] == "layer"
    assert config["every"] == EVERY
    assert config["layers"] == list(LAYERS)
    assert not [t for t in texts if t.startswith("gradguard_findings/")]


def test_findings_are_written_as_texts(tmp_path: Path) -> None:
    run = _run(tmp_path, "graph", optimizer=keras.optimizers.SGD(1e-12), transform=None)
    texts = read_texts(run.log_dir)
    report = run.step.report()
    codes = {f.code for f in report.findings}
    assert "update-too-small" in codes
    for finding in report.findings:
        entries = texts[f"gradguard_findings/{finding.code}"]
        assert finding.step in entries
        # Written when first made (later reads may update the numbers in the message).
        assert f"`{finding.code}` at step {finding.step}" in entries[finding.step]
        assert finding.message[:25] in entries[finding.step]


def test_per_variable_scalars(tmp_path: Path) -> None:
    run = _run(tmp_path, "graph", scalars_per_variable=True)
    s, exp = run.scalars, run.expected
    assert {t.split("/", 1)[1] for t in s if t.startswith("gradguard_grad_norm/")} == set(VARIABLES)
    for k in range(0, STEPS, EVERY):
        for i, name in enumerate(VARIABLES):
            assert s[f"gradguard_grad_norm/{name}"][k] == pytest.approx(
                exp.grad_var[k][i], rel=2e-4
            )
            assert s[f"gradguard_weight_norm/{name}"][k] == pytest.approx(
                exp.weight_var[k][i], rel=2e-4, abs=1e-7
            )
    # Biases start at zero: no ratio at step 0 (there is no weight to compare with), later on.
    assert 0 not in s["gradguard_update_ratio/h/bias"]
    assert s["gradguard_update_ratio/h/bias"][EVERY] == pytest.approx(
        exp.update_var[EVERY][1] / exp.weight_var[EVERY][1], rel=2e-3
    )
    assert 0 in s["gradguard_update_ratio/h/kernel"]


def test_learning_rate_schedule_is_resolved_at_the_step(tmp_path: Path) -> None:
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])
    run = _run(
        tmp_path, "graph", optimizer=keras.optimizers.SGD(schedule), every=1, batches=_batches(5)
    )
    expected = [float(schedule(k)) for k in range(5)]
    assert len(set(expected)) == 2  # the boundary is crossed inside the run
    logged = run.scalars["gradguard/learning_rate"]
    assert [logged[k] for k in range(5)] == pytest.approx(expected)


def test_a_call_keras_only_accumulates_changes_no_weights_and_skips_no_update(
    tmp_path: Path,
) -> None:
    optimizer = keras.optimizers.SGD(LR, gradient_accumulation_steps=2)
    run = _run(tmp_path, "graph", optimizer=optimizer, every=1, batches=_batches(4))
    s = run.scalars
    assert [s["gradguard/skipped"][k] for k in range(4)] == [1.0, 0.0, 1.0, 0.0]
    assert [s["gradguard/skipped_updates"][k] for k in range(4)] == [0.0] * 4


def test_skipped_update_is_logged(tmp_path: Path) -> None:
    batches = _batches()
    bad = batches[EVERY][0].copy()
    bad[0, 0] = np.nan
    batches[EVERY] = (bad, batches[EVERY][1])
    run = _run(tmp_path, "graph", transform=gradguard.skip_nonfinite(), batches=batches)
    s = run.scalars
    assert s["gradguard/skipped"] == {0: 0.0, EVERY: 1.0, 2 * EVERY: 0.0, 3 * EVERY: 0.0}
    assert s["gradguard/skipped_updates"] == {0: 0.0, EVERY: 1.0, 2 * EVERY: 1.0, 3 * EVERY: 1.0}
    # (TensorFlow's ReLU maps the NaN input to 0, so the loss stays finite; its gradient does not.)
    assert np.isnan(s["gradguard/grad_norm"][EVERY])
    assert np.isnan(s["gradguard_grad_norm/h"][EVERY])
    # The skipped update did not run, so nothing about it was measured.
    assert EVERY not in s["gradguard_weight_norm/h"]
    assert EVERY not in s["gradguard_update_ratio/h"]
    assert 2 * EVERY in s["gradguard_weight_norm/h"]


class Collect(sinks.Sink):
    """A user-written sink: keeps what it is given."""

    def __init__(self) -> None:
        self.scalars: dict[int, dict[str, float]] = {}
        self.texts: dict[str, dict[int, str]] = {}
        self.flushes = 0

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.scalars[step] = dict(scalars)

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        for tag, text in texts.items():
            self.texts.setdefault(tag, {})[step] = text

    def flush(self) -> None:
        self.flushes += 1


@pytest.mark.parametrize("mode", ["graph", "jit"])
def test_composed_sinks_get_the_same_values(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    collect = Collect()
    jsonl = tmp_path / "scalars.jsonl"
    sink = sinks.MultiSink(
        [
            sinks.TensorBoardSink(tmp_path / "tb"),
            sinks.JsonLinesSink(jsonl),
            sinks.LoggingSink(),
            collect,
        ]
    )
    step = gradguard.TrainStep(
        _model(),
        keras.optimizers.SGD(LR),
        keras.losses.MeanSquaredError(),
        every=EVERY,
        sink=sink,
        policy=NO_FINDINGS,
        jit_compile=mode == "jit",
    )
    with caplog.at_level(py_logging.INFO, logger="absl"):
        _train(step, _batches())
    sink.close()
    tb = read_scalars(str(tmp_path / "tb"))
    assert sorted(collect.scalars) == list(range(0, STEPS, EVERY))
    assert collect.flushes >= len(collect.scalars)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    from_json = {r["step"]: r["scalars"] for r in lines if "scalars" in r}
    assert from_json == collect.scalars
    for k, scalars in collect.scalars.items():
        assert set(scalars) == {tag for tag in tb if k in tb[tag]}
        for tag, value in scalars.items():
            assert tb[tag][k] == pytest.approx(value, rel=1e-6)
    assert json.loads(collect.texts["gradguard/config"][0])["scalars"] == "layer"
    assert any("gradguard step 3: gradguard/loss=" in r.getMessage() for r in caplog.records)


def test_json_lines_are_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    sink = sinks.JsonLinesSink(path)
    sink.write_scalars(5, {"a": float("nan"), "b": float("inf"), "c": 1.5})
    sink.write_texts(5, {"t": "hello"})
    sink.close()

    def strict(text: str) -> Any:
        raise ValueError(f"non-standard JSON constant {text}")

    records = [json.loads(line, parse_constant=strict) for line in path.read_text().splitlines()]
    assert records == [
        {"step": 5, "scalars": {"a": "nan", "b": "inf", "c": 1.5}},
        {"step": 5, "texts": {"t": "hello"}},
    ]


def test_bad_sinks_are_refused() -> None:
    with pytest.raises(TypeError, match="MultiSink takes gradguard Sinks.*got str"):
        sinks.MultiSink(["logs"])  # type: ignore[list-item]
    # Refused where it enters: at construction, before any step runs.
    with pytest.raises(TypeError, match="sink must be a gradguard.sinks.Sink.*got str"):
        gradguard.TrainStep(
            _model(),
            keras.optimizers.SGD(LR),
            keras.losses.MeanSquaredError(),
            sink="logs",  # type: ignore[arg-type]
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_tensorboard_server_serves_the_scalars(runs: dict[str, LoggedRun], logroot: Path) -> None:
    tensorboard = Path(sys.executable).with_name("tensorboard")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/data/plugin/scalars"
    process = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logroot), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its data server child goes with it when the group is ended
    )
    try:
        deadline = time.monotonic() + 60
        tags: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert process.poll() is None, "tensorboard exited early"
            try:
                tags = _get_json(f"{base}/tags")
            except OSError:
                tags = {}
            if len(tags.get("graph", {})) == 14:
                break
            time.sleep(0.25)
        assert set(tags["graph"]) == set(runs["graph"].scalars)
        assert "Global L2 norm" in tags["graph"]["gradguard/grad_norm"]["description"]
        query = urllib.parse.urlencode({"run": "graph", "tag": "gradguard/grad_norm"})
        series = _get_json(f"{base}/scalars?{query}")
        exp = runs["graph"].expected
        assert [step for _, step, _ in series] == list(range(0, STEPS, EVERY))
        for _, step, value in series:
            assert value == pytest.approx(exp.grad_norm[step], rel=2e-4)
        query = urllib.parse.urlencode({"run": "jit", "tag": "gradguard_update_ratio/h"})
        assert len(_get_json(f"{base}/scalars?{query}")) == len(range(0, STEPS, EVERY))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def test_summary_writing_leaves_no_global_state(runs: dict[str, LoggedRun]) -> None:
    # The writers are used inside `as_default` blocks only: nothing stays installed.
    assert not tf.summary.should_record_summaries()
