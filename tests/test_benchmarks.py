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


def test_gradguard_run_timed_both_ways(results):
    run = results["gradguard_run"]
    assert "error" not in run, run.get("error")
    for mode in ("plain", overhead.RUN_VARIANT, overhead.RUN_LEAN):
        assert _number(run[mode]["ms_per_step"]["median"]), mode
        assert isinstance(run[mode]["trace_count"], int), mode
    assert _number(run[overhead.RUN_VARIANT]["ratio"])
    assert _number(run[overhead.RUN_LEAN]["ratio"])


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
