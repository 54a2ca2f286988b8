"""Smoke test of benchmarks/overhead.py: every variant runs and reports numbers.

Tiny step counts, so the suite cannot rot unnoticed. Nothing here asserts a time: timings at
this size (and with the child processes running alongside, `--concurrent`) mean nothing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "overhead.py")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import overhead  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    command = [
        sys.executable,
        SCRIPT,
        "--steps",
        "2",
        "--windows",
        "1",
        "--warmup",
        "1",
        "--workloads",
        "mlp",
        "--variants",
        "all",
        "--run-repeats",
        "1",
        "--concurrent",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    # About 40 s on 2 busy cores; the timeout only stops a hang.
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Targets (DESIGN.md" in proc.stdout
    assert os.path.exists(os.path.splitext(out)[0] + ".md")
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_every_variant_ran_and_produced_numbers(results):
    variants = results["workloads"]["mlp"]["variants"]
    expected = [*overhead.VARIANTS, *overhead.CHILD_VARIANTS]
    assert sorted(variants) == sorted(expected)
    for name, v in variants.items():
        assert "error" not in v, f"{name}: {v.get('error')}"
        for key in ("ms_per_step", "cpu_ms_per_step"):
            assert _number(v[key]["median"]), (name, key)
        assert isinstance(v["trace_count"], int) and v["trace_count"] >= 1, name
        assert _number(v["first_step_s"]), name
        if v["baseline"] is not None:
            assert _number(v["ratio"]["median"]), name
            assert _number(v["cpu_ratio"]["median"]), name


def test_the_xla_pair_is_timed_in_its_own_phase(results):
    # Its windows interleaved with the graph steps' raised their ratios (benchmarks/README.md).
    assert set(results["phase_s"]) >= {"mlp", "mlp (xla)"}
    xla = {name for name, v in overhead.VARIANTS.items() if v.xla}
    assert xla == {"plain-xla", "trainstep-xla"}


def test_gradguard_run_timed_both_ways(results):
    run = results["gradguard_run"]
    assert "error" not in run, run.get("error")
    for mode in ("plain", overhead.RUN_VARIANT, overhead.RUN_LEAN, overhead.RUN_TRAINSTEP):
        assert _number(run[mode]["ms_per_step"]["median"]), mode
        assert isinstance(run[mode]["trace_count"], int), mode
    for mode in (overhead.RUN_VARIANT, overhead.RUN_LEAN, overhead.RUN_TRAINSTEP):
        assert _number(run[mode]["ratio"]), mode
        assert _number(run[mode]["first_ratio"]), mode
    # The TrainStep script really ran TrainStep: a lean and a measuring step, traced once each.
    assert run[overhead.RUN_TRAINSTEP]["trace_count"] == 1


def test_targets_and_machine_are_reported(results):
    machine = results["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["tensorflow"]
    targets = results["targets"]
    assert targets
    for t in targets:
        # Every target had its numbers (memory only where TensorFlow's allocator counts it).
        assert t["passed"] in (True, False) or t["detail"].startswith("not measured"), t
    names = {t["target"] for t in targets}
    assert any("check_numerics" in n for n in names)
    assert any("TensorBoard" in n for n in names)
    assert any("gradguard run" in n for n in names)
    assert any("--no-activations" in n for n in names)
    assert any("first call" in n for n in names)
    assert results["config"]["threads"] == 1


def test_every_build_of_a_variant_is_timed_every_round_and_averaged(tmp_path, monkeypatch):
    # Two builds of one step can differ for a whole run (where their buffers landed): with
    # `instances`, a round times every build and the variant's round time is their mean.
    # (No garbage collections between the fake windows: in a worker that has run hundreds of
    # tests, each takes seconds.)
    monkeypatch.setattr(overhead.gc, "collect", lambda: 0)
    calls: list[tuple[str, int]] = []

    def fake(name: str, per_step: list[float]) -> overhead.Variant:
        def build(w, x, y, log_dir):
            index = sum(1 for n, _ in calls if n == f"{name}-build")
            calls.append((f"{name}-build", index))

            def window(n: int) -> tuple[float, float]:
                if n == 10:  # a timed window, not the first call
                    calls.append((name, index))
                return per_step[index] * n, per_step[index] * n

            return overhead.Runner(window, lambda: 1)

        baseline = None if name == "base" else "base"
        return overhead.Variant(name, baseline, name, build)

    workload = overhead.WORKLOADS["mlp"]
    variants = [fake("base", [1.0, 1.0, 1.0]), fake("slow", [1.0, 2.0, 3.0])]
    info = overhead.measure_workload(
        workload, variants, steps=10, windows=2, warmup=0, log_root=str(tmp_path), instances=3
    )
    timed = [i for name, i in calls if name == "slow"]
    assert sorted(timed[:3]) == sorted(timed[3:]) == [0, 1, 2]  # every build, each round
    slow = info["variants"]["slow"]
    assert slow["ms_per_step"]["median"] == pytest.approx(2000.0)  # mean of 1, 2 and 3 s/step
    assert slow["ratio"]["median"] == pytest.approx(2.0)
