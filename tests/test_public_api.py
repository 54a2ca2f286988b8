"""The public surface: every name in __all__ exists, and the CLI entry points run."""

from __future__ import annotations

import subprocess
import sys

import gradguard


def test_all_names_exist():
    for name in gradguard.__all__:
        assert hasattr(gradguard, name), name


def test_public_surface():
    assert {
        "TrainStep",
        "chain",
        "clip_by_global_norm",
        "skip_nonfinite",
        "GradGuardError",
        "Report",
        "Finding",
        "CODES",
        "__version__",
    } <= set(gradguard.__all__)


def test_python_dash_m_help():
    out = subprocess.run(
        [sys.executable, "-m", "gradguard", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout


def test_demo_diagnoses_the_seed_bugs_and_learns():
    out = subprocess.run(
        [sys.executable, "-m", "gradguard", "demo", "--epochs", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[missing-apply]" in out.stdout
    assert "[update-too-small]" in out.stdout
    assert "[none-gradient]" in out.stdout and "tf.numpy_function" in out.stdout
    assert "The fixed loop learned." in out.stdout
