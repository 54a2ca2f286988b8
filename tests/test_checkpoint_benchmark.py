"""Smoke test of benchmarks/checkpoint_fsync.py: it runs and reports every variant. No timing is
asserted: one save per variant measures nothing."""

import os
import subprocess
import sys

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks", "checkpoint_fsync.py"
)


def test_checkpoint_fsync_benchmark_runs(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--sizes",
            "small",
            "--saves",
            "1",
            "--dir",
            str(tmp_path),
            "--out",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| small |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 8 and all(float(c.rstrip("x")) > 0 for c in cells[1:5]), row
    assert os.listdir(tmp_path) == []  # its checkpoints are cleaned up
