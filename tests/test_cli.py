"""The command line as users run it: real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import tensorflow as tf
from conftest import mlp

from gradguard.checkpoint import summary

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def gradguard(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "gradguard", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        cwd=cwd,
    )


def test_ckpt_lists_and_validates_a_real_checkpoint(tmp_path):
    model = mlp()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    listed = summary.summarize(prefix)  # (the listing heads every run below)
    assert listed.status == 0, listed.err
    assert "kernel" in listed.out and "(8, 16)" in listed.out

    (tmp_path / "factory.py").write_text(
        "import keras\n"
        "def build():\n"
        "    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),\n"
        "                              keras.layers.Dense(1)])\n"
        "    return {'model': model, 'optimizer': keras.optimizers.Adam()}\n"
        "def build_wider():\n"
        "    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32),\n"
        "                              keras.layers.Dense(1)])\n"
        "    return {'model': model, 'optimizer': keras.optimizers.Adam()}\n"
    )
    healthy = gradguard("ckpt", prefix, "--against", "factory:build", cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr[-2000:]
    assert healthy.stdout.startswith(listed.out.splitlines()[0])  # the same listing, printed
    wider = gradguard("ckpt", prefix, "--against", "factory:build_wider", cwd=tmp_path)
    assert wider.returncode == 1
    assert "checkpoint-shape-mismatch" in wider.stdout


def test_ckpt_of_a_missing_path_is_bad_input(tmp_path):
    command = [sys.executable, "-X", "importtime", "-m", "gradguard", "ckpt", "nothing"]
    out = subprocess.run(
        command, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 2
    assert "no checkpoint at 'nothing'" in out.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()]
    assert "tensorflow" not in imported  # a typo answers before TensorFlow's start-up
    (tmp_path / "empty").mkdir()  # something there, but no checkpoint in it
    shown = summary.summarize(str(tmp_path / "empty"))
    assert shown.status == 2 and "no checkpoint in directory" in shown.err


def test_explain_prints_the_guide_section_shipped_in_the_package():
    out = gradguard("explain", "missing-apply")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("## missing-apply") and "apply_gradients" in out.stdout
    assert "## weights-unchanged" not in out.stdout  # one section only
    listing = gradguard("explain")
    assert listing.returncode == 0 and "non-finite" in listing.stdout
    unknown = gradguard("explain", "nan-everywhere")
    assert unknown.returncode == 2 and "unknown finding code" in unknown.stderr


def test_version_and_help_are_fast_and_quiet():
    import time

    started = time.perf_counter()
    out = gradguard("--help")
    assert out.returncode == 0 and "explain" in out.stdout
    assert time.perf_counter() - started < 3.0  # TensorFlow is not imported for help
    version = gradguard("--version")
    assert version.returncode == 0 and version.stdout.startswith("gradguard ")
    for line in (out.stderr + version.stderr).splitlines():
        assert "oneDNN" not in line and "cuda" not in line.lower(), line


def _script(tmp_path, text):
    path = tmp_path / "train.py"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_run_refuses_bad_options_before_the_script_starts(tmp_path):
    script = _script(tmp_path, "print('the script ran')\n")
    (tmp_path / "afile").write_text("")
    cases = [
        (["--log-dir", str(tmp_path / "afile")], "--log-dir"),
        (["--json", str(tmp_path / "missing" / "report.json")], "does not exist"),
    ]
    for options, phrase in cases:
        out = gradguard("run", *options, script)
        assert out.returncode == 2, out.stderr
        assert phrase in out.stderr and "the script ran" not in out.stdout, out.stderr
        assert "Traceback" not in out.stderr


def test_a_run_refused_for_its_paths_never_starts_tensorflow(tmp_path):
    # A typo in a path answers at once, not after TensorFlow's start-up.
    script = _script(tmp_path, "print('the script ran')\n")
    (tmp_path / "broken.py").write_text("if x\n")
    refused = [
        ["run", str(tmp_path / "no_such_train.py")],
        ["run", "--json", str(tmp_path / "missing" / "report.json"), script],
        ["run", str(tmp_path / "broken.py")],
    ]
    code = (
        "import sys\n"
        "from gradguard import cli\n"
        f"statuses = [cli.main(argv) for argv in {refused!r}]\n"
        "print(statuses, 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.stdout.split() == ["[2,", "2,", "2]", "False"], out.stdout + out.stderr[-2000:]
    assert "no such script" in out.stderr and "does not exist" in out.stderr


def test_run_names_a_syntax_error_with_its_line(tmp_path):
    out = gradguard("run", _script(tmp_path, "x = 1\nif x\n    pass\n"))
    assert out.returncode == 2
    assert "syntax error at line 2" in out.stderr and "Traceback" not in out.stderr


def test_run_exits_130_on_keyboard_interrupt_and_still_reports(tmp_path):
    json_path = tmp_path / "report.json"
    out = gradguard("run", "--json", str(json_path), _script(tmp_path, "raise KeyboardInterrupt\n"))
    assert out.returncode == 130, out.stderr
    assert "KeyboardInterrupt" in out.stderr and json_path.exists()
