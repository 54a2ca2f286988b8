"""Runs corpus scripts one after another under ``gradguard run``, in one process.

Usage: ``python corpus_worker.py JOBS.json``, where the file holds a list of jobs
``{"script", "options", "workdir", "json", "done"}``. Each job is what the command line does
(`gradguard.cli.main(["run", "--json", json, *options, script])`, from `workdir`), so a corpus
script is diagnosed by exactly the code ``python -m gradguard run`` runs; sharing the process
saves importing TensorFlow once per script. Between scripts the process-wide state a script may
change is put back (Keras' session and names, the dtype policy, eager execution, the working
directory). When a job ends, its ``done`` file gets ``{"returncode", "stdout", "stderr",
"seconds"}``.

The command-line contract itself (argument parsing, exit statuses, start-up) is tested with real
``python -m gradguard run`` processes, one per run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from gradguard import cli  # noqa: E402


def _reset() -> None:
    """Puts back the process-wide state a training script may change."""
    # Models, layer-name counters; without the full garbage collection (0.15 s a script, 35 s a
    # corpus): Python collects the scripts' cycles as it goes.
    # It also unsets the dtype policy (set_global_policy("mixed_float16")): a fresh process's
    # policy follows floatx when first asked for (set_floatx("float16") at a script's top).
    keras.backend.clear_session(free_memory=False)
    keras.config.set_floatx("float32")
    tf.config.run_functions_eagerly(False)


def main(jobs_path: str) -> int:
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    home = os.getcwd()
    for job in jobs:
        _reset()
        os.makedirs(job["workdir"], exist_ok=True)
        os.chdir(job["workdir"])
        out, err = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(["run", "--json", job["json"], *job["options"], job["script"]])
        finally:
            os.chdir(home)
        done = {
            "returncode": status,
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "seconds": time.perf_counter() - started,  # to find the corpus's slow scripts
        }
        with open(job["done"] + ".tmp", "w", encoding="utf-8") as f:
            json.dump(done, f)
        os.replace(job["done"] + ".tmp", job["done"])  # a test never reads it half written
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
