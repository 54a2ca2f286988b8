"""`gradguard inspect`: event files back to a summary and the findings the live checks made.

The runs are written once per module by real `TrainStep`s and read by the tests; tests that
damage files work on copies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import WIDE, one_hot_rows_the_sample_misses  # noqa: E402

import gradguard  # noqa: E402
from gradguard import checks as checks_lib  # noqa: E402
from gradguard import cli  # noqa: E402
from gradguard import inspect as events  # noqa: E402
from gradguard.findings import Finding  # noqa: E402

WARN_ALL = {code: "warn" for code in gradguard.CODES}


def _model(activation: str = "relu") -> keras.Model:
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation=activation, name="first"),
            keras.layers.Dense(16, activation=activation, name="second"),
            keras.layers.Dense(1, name="out"),
        ],
        name="net",
    )


def _data(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x @ rng.normal(size=(6, 1))).astype("float32")


def _train(
    log_dir: Path, lr: float, steps: int, every: int = 5, nan_at: int | None = None, **kwargs: Any
) -> gradguard.TrainStep:
    step = gradguard.TrainStep(
        kwargs.pop("model", None) or _model(),
        keras.optimizers.Adam(lr),
        keras.losses.MeanSquaredError(),
        every=every,
        log_dir=str(log_dir),
        policy=WARN_ALL,
        **kwargs,
    )
    x, y = _data()
    for i in range(steps):
        xi = x.copy()
        if i == nan_at:
            xi[0, 0] = np.nan
        step(xi, y)
    step.report()
    return step


@dataclasses.dataclass
class Runs:
    root: Path
    healthy: gradguard.TrainStep
    tiny_lr: gradguard.TrainStep
    per_variable: gradguard.TrainStep


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("inspect")
    return Runs(
        root=root,
        healthy=_train(root / "healthy", 1e-2, 60),
        tiny_lr=_train(root / "tiny_lr", 1e-10, 110),
        per_variable=_train(root / "variables" / "tiny", 1e-10, 30, scalars_per_variable=True),
    )


@pytest.fixture(scope="module")
def inspection(runs: Runs) -> events.Inspection:
    return events.inspect(str(runs.root))


def _result(inspection: events.Inspection, name: str) -> events.RunResult:
    return next(r for r in inspection.results if r.run.name == name)


def test_finds_every_run(inspection: events.Inspection) -> None:
    assert [r.run.name for r in inspection.results] == ["healthy", "tiny_lr", "variables/tiny"]
    assert all(r.has_gradguard and not r.run.warnings for r in inspection.results)


def test_summary_numbers(inspection: events.Inspection, runs: Runs) -> None:
    s = _result(inspection, "healthy").summary
    assert s["last_step"] == 55 and s["samples"] == 12 and s["every"] == 5
    loss = s["loss"]
    assert loss["first"] > 10 * loss["last"]  # it learned
    assert loss["best"] == min(loss["first"], loss["last"], loss["best"])
    assert 0 < s["grad_norm"]["min"] < s["grad_norm"]["max"]
    assert set(s["update_ratio_median"]) == {"first", "second", "out"}
    assert all(1e-4 < r < 0.5 for r in s["update_ratio_median"].values())
    assert s["clipping_rate"] == 0.0 and s["skipped_updates"] == 0
    assert s["learning_rate"] == {"first": pytest.approx(1e-2), "last": pytest.approx(1e-2)}
    tiny = _result(inspection, "tiny_lr").summary
    assert all(r < 1e-8 for r in tiny["update_ratio_median"].values())


def test_findings_are_the_live_checks_findings(inspection: events.Inspection, runs: Runs) -> None:
    assert _result(inspection, "healthy").report.findings == []
    assert runs.healthy.report().findings == []
    judged = {f.code: f for f in _result(inspection, "tiny_lr").report.findings}
    live = {f.code: f for f in runs.tiny_lr.report().findings}
    assert {"update-too-small", "loss-not-decreasing"} <= set(judged)
    # The same judging code on the same numbers: the same sentence, dated at the same step.
    assert judged["update-too-small"].message == live["update-too-small"].message
    assert judged["update-too-small"].step == live["update-too-small"].step
    assert judged["loss-not-decreasing"].step == live["loss-not-decreasing"].step
    assert set(judged) <= set(live)


def test_a_clip_far_below_the_gradients_is_named_from_the_logs_too(tmp_path: Path) -> None:
    # SGD's global_clipnorm is logged with the run (`LOGGED_NOTES`): inspect judges as live.
    optimizer = keras.optimizers.SGD(0.01, global_clipnorm=1e-3)
    step = gradguard.TrainStep(
        _model(), optimizer, "mse", every=5, log_dir=str(tmp_path), policy=WARN_ALL
    )
    x, y = _data()
    for _ in range(30):
        step(x, y)
    (live,) = [f for f in step.report().findings if f.code == "update-too-small"]
    (result,) = events.inspect(str(tmp_path)).results
    (judged,) = [f for f in result.report.findings if f.code == "update-too-small"]
    assert "global_clipnorm (0.001)" in live.message, live.message
    assert judged.message == live.message


def _train_wide(log_dir: Path, lr: float, x: np.ndarray, y: np.ndarray) -> gradguard.Report:
    """A bias-free (WIDE, 4) kernel, measured on a sample, and a small head, trained by SGD."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((WIDE,)),
            keras.layers.Dense(4, "tanh", use_bias=False, name="wide"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    optimizer = keras.optimizers.SGD(lr)
    step = gradguard.TrainStep(
        model, optimizer, "mse", every=5, log_dir=str(log_dir), policy=WARN_ALL
    )
    for _ in range(20):
        step(x, y)
    return step.report()


def test_a_sample_that_told_nothing_is_not_judged_from_the_logs(tmp_path: Path) -> None:
    # One-hot rows the kernel's sample does not visit: only those rows change. Live, its layer
    # is not judged on those steps; its logs must not make `weights-unchanged` or
    # `update-too-small` of them.
    assert _train_wide(tmp_path, 0.05, *one_hot_rows_the_sample_misses()).findings == []
    (result,) = events.inspect(str(tmp_path)).results
    assert result.report.findings == []
    # The layer measured whole still has its ratio logged and judged.
    assert set(result.summary["update_ratio_median"]) == {"out"}


def test_a_sample_that_had_a_gradient_and_did_not_move_is_judged_from_the_logs(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, WIDE)), rng.normal(size=(64, 1))
    live = _train_wide(tmp_path, 0.0, x.astype("float32"), y.astype("float32"))
    (result,) = events.inspect(str(tmp_path)).results
    for report in (live, result.report):
        (unchanged,) = [f for f in report.findings if f.code == "weights-unchanged"]
        assert any(v.split("/")[0] == "wide" for v in unchanged.variables), unchanged


def test_per_variable_logs_name_the_unchanged_variables(
    inspection: events.Inspection, runs: Runs
) -> None:
    judged = {f.code: f for f in _result(inspection, "variables/tiny").report.findings}
    live = {f.code: f for f in runs.per_variable.report().findings}
    assert judged["weights-unchanged"].variables == live["weights-unchanged"].variables
    assert judged["weights-unchanged"].message == live["weights-unchanged"].message


def test_inspect_runs_the_checks_own_judge(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def judge(self: checks_lib.UpdateRatio, state: Any, context: checks_lib.Context) -> Any:
        seen.append((dict(state), context))
        return [Finding("update-too-large", "judged by UpdateRatio.judge", context.step)]

    monkeypatch.setattr(checks_lib.UpdateRatio, "judge", judge)
    result = _result(events.inspect(str(runs.root / "healthy")), ".")
    assert [f.message for f in result.report.findings] == [
        "judged by UpdateRatio.judge (see: gradguard explain update-too-large)"
    ]
    state, context = seen[-1]
    assert set(state) == set(runs.healthy.core.checks[2].state())
    assert context.steps == 56


def test_a_check_without_logged_state_is_reported_not_judged(runs: Runs) -> None:
    class Custom(checks_lib.Check):
        def _build(self) -> None: ...

    inspection = events.inspect(
        str(runs.root / "healthy"), checks=[Custom(), checks_lib.NonFinite()]
    )
    assert inspection.results[0].not_judged == ["Custom"]


@pytest.fixture(scope="module")
def every_step(tmp_path_factory: pytest.TempPathFactory) -> gradguard.TrainStep:
    # Logged every step and per variable, nothing is lost: inspect must rebuild the exact state.
    root = tmp_path_factory.mktemp("every_step")
    checks = [*checks_lib.default_checks()[:-1], checks_lib.LossNotDecreasing(window=4)]
    return _train(
        root,
        3e-2,
        24,
        every=1,
        nan_at=9,
        model=_model("tanh"),
        checks=checks,
        scalars_per_variable=True,
    )


def test_rebuilt_state_equals_live_state(every_step: gradguard.TrainStep) -> None:
    core = every_step.core
    (run,) = events.load_runs(core.sink.log_dir)  # type: ignore[attr-defined]
    table = events.Logged(run)
    assert table.layout == core.layout
    for check in core.checks:
        live = check.state()
        rebuilt = check.replay(table)
        assert rebuilt is not None, type(check).__name__
        assert set(rebuilt) == set(live), type(check).__name__
        for key, value in live.items():
            if key in check.not_logged:
                continue  # the logs cannot rebuild it: replayed as a value making no finding
            np.testing.assert_allclose(
                np.asarray(rebuilt[key], np.float64),
                np.asarray(value, np.float64),
                rtol=2e-4,
                atol=1e-6,
                err_msg=f"{type(check).__name__}.{key}",
            )
    assert int(core.checks[0].state()["skipped"]) == 1  # the NaN step was in there


def test_every_step_findings_equal_live_findings(every_step: gradguard.TrainStep) -> None:
    live = every_step.report().findings
    judged = events.inspect(every_step.core.sink.log_dir).results[0].report.findings  # type: ignore[attr-defined]
    assert "non-finite" in {f.code for f in live}
    key = [(f.code, f.step, f.variables) for f in live]
    assert sorted(key) == sorted((f.code, f.step, f.variables) for f in judged)


def test_cli_prints_the_table(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(runs.root)]) == 0
    out = capsys.readouterr().out
    assert "3 run(s)" in out
    for text in (
        "run healthy",
        "run tiny_lr",
        "steps seen        0..55 (12 logged, every 5 steps)",
        "loss              first ",
        "gradient norm",
        "clipping          0.0% of steps (0)",
        "skipped updates   0",
        "update ratio (median per layer; healthy 1e-4 .. 1e-2)",
        "warning update-too-small at step 5: Update-to-weight ratio of first, second, out",
        "findings judged from the scalars: none",
    ):
        assert text in out


def test_json_and_plot(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path, png = tmp_path / "inspect.json", tmp_path / "inspect.png"
    assert cli.main(["inspect", str(runs.root), "--json", str(json_path), "--plot", str(png)]) == 0

    def strict(text: str) -> Any:
        raise ValueError(f"non-standard JSON constant {text}")

    data = json.loads(json_path.read_text(), parse_constant=strict)
    assert data["gradguard_version"] == gradguard.__version__
    by_name = {r["run"]: r for r in data["runs"]}
    assert by_name["healthy"]["findings"] == []
    codes = {f["code"] for f in by_name["tiny_lr"]["findings"]}
    assert "update-too-small" in codes
    assert {f["code"] for f in by_name["tiny_lr"]["logged_findings"]} >= codes
    assert by_name["tiny_lr"]["summary"]["samples"] == 22
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # three panels per run, not an empty canvas
    assert f"plot written to {png}" in capsys.readouterr().out


def test_truncated_file_is_read_up_to_the_damage(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(runs.root / "tiny_lr", tmp_path / "crashed")
    (path,) = (tmp_path / "crashed").iterdir()
    whole, warning = events.read_event_file(str(path))
    assert warning is None
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 7)
    cut, warning = events.read_event_file(str(path))
    assert len(cut) == len(whole) - 1
    assert warning is not None and "truncated record at byte" in warning
    json_path = tmp_path / "out.json"
    assert cli.main(["inspect", str(tmp_path), "--json", str(json_path)]) == 0
    captured = capsys.readouterr()
    assert "gradguard inspect: warning:" in captured.err and "truncated record" in captured.err
    assert "run crashed" in captured.out
    (run,) = json.loads(json_path.read_text())["runs"]
    assert len(run["warnings"]) == 1
    assert "update-too-small" in {f["code"] for f in run["findings"]}


def test_missing_logdir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_logdir_without_event_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert cli.main(["inspect", str(tmp_path)]) == 2
    assert "no TensorBoard event files" in capsys.readouterr().err


def test_event_files_from_another_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    writer = tf.summary.create_file_writer(str(tmp_path / "keras"))
    with writer.as_default():
        for epoch in range(3):
            tf.summary.scalar("epoch_loss", 1.0 / (epoch + 1), step=epoch)
            tf.summary.histogram("dense/kernel", tf.random.normal([10]), step=epoch)
    writer.close()
    assert cli.main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "run keras" in out
    assert "1 scalar tag(s), steps 0..2: epoch_loss" in out
    assert "1 other tag(s) (histograms): dense/kernel" in out
    assert "no gradguard tags found" in out


def _half_dead_model(dead: int) -> keras.Model:
    """`_model()` whose first layer has `dead` of its 16 ReLU units biased far negative."""
    model = _model()
    first = model.get_layer("first")
    kernel, bias = first.get_weights()
    bias[:dead] = -50.0
    first.set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def activation_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, gradguard.TrainStep]:
    root = tmp_path_factory.mktemp("activations")
    return {
        name: _train(
            root / name,
            1e-2,
            30,
            model=_half_dead_model(dead),
            checks=[*checks_lib.default_checks(), checks_lib.ActivationHealth()],
        )
        for name, dead in (("dead", 14), ("alive", 0))
    }


def test_dead_units_are_judged_from_the_logged_fractions(
    activation_runs: dict[str, gradguard.TrainStep],
) -> None:
    root = os.path.dirname(activation_runs["dead"].core.sink.log_dir)  # type: ignore[attr-defined]
    results = {r.run.name: r for r in events.inspect(root).results}
    assert "dead-units" not in {f.code for f in results["alive"].report.findings}
    (judged,) = [f for f in results["dead"].report.findings if f.code == "dead-units"]
    (live,) = [f for f in activation_runs["dead"].report().findings if f.code == "dead-units"]
    assert judged.details["layer"] == live.details["layer"] == "first"
    assert judged.details["dead_fraction"] == live.details["dead_fraction"] == 0.875
    # The live check's sentence, less what the scalars do not hold (unit count, first death).
    assert live.message.startswith("88% of the ReLU units of first (14 of 16) are dead")
    assert judged.message.startswith("88% of the ReLU units of first are dead")
    shared = "zero for every example for at least the last 10 steps"
    assert shared in live.message and shared in judged.message
    assert judged.message.split(": ", 1)[1] == live.message.split(": ", 1)[1]
    # First judged where the fraction first reached the threshold: the read at step 10 (step 9
    # is the tenth step, the earliest a unit can have been silent for 10 steps).
    assert judged.step == live.step == 10
    assert judged.variables == ("first",)  # logged per layer: the layer is what is known
    assert "ActivationHealth" not in results["dead"].not_judged


def test_dead_units_threshold_is_inspects_own(
    activation_runs: dict[str, gradguard.TrainStep], capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = activation_runs["dead"].core.sink.log_dir  # type: ignore[attr-defined]
    stricter = events.inspect(log_dir, checks=[checks_lib.ActivationHealth(dead_fraction=0.9)])
    assert stricter.results[0].report.findings == []
    assert cli.main(["inspect", log_dir]) == 0
    assert "warning dead-units at step 10: 88% of the ReLU units of first" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("known_by", ["chance-level", "resumed"])
def test_a_trained_model_holding_its_loss_is_silent_live_and_from_its_logs(
    tmp_path: Path, known_by: str
) -> None:
    # Fine-tuning at Adam 1e-5 on the task a model already learned: its loss holds far below
    # the chance level (the labels' variance), which the run logs for the judgment from logs;
    # or, with a loss whose chance level is unknown, the same optimizer resumes (logged too).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1)) + 0.05 * rng.normal(size=(64, 1))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    pretrain = gradguard.TrainStep(model, keras.optimizers.Adam(0.05), "mse", policy=WARN_ALL)
    for _ in range(200):
        pretrain(x, y)
    optimizer, loss = keras.optimizers.Adam(1e-5), "mse"
    if known_by == "resumed":  # the pre-training's optimizer goes on, at its own rate
        optimizer, loss = pretrain.optimizer, lambda yt, yp: tf.reduce_mean(tf.square(yt - yp))
    step = gradguard.TrainStep(
        model, optimizer, loss, every=10, log_dir=str(tmp_path), policy=WARN_ALL
    )
    for _ in range(120):
        step(x, y)
    assert step.report().findings == [], str(step.report())
    (result,) = events.inspect(str(tmp_path)).results
    if known_by == "resumed":
        assert result.run.config["resumed"] and result.run.config["chance_loss"] is None
    else:
        assert result.run.config["chance_loss"] == pytest.approx(float(np.var(y)))
    assert "loss-not-decreasing" not in result.report.codes(), str(result.report)
