"""``gradguard run``: an unmodified training script, instrumented, diagnosed at exit.

`prepare` validates everything before the script starts (so bad options never surface inside
the user's code); `run_script` runs it as ``__main__`` with every gradient call and optimizer
update observed, and returns what happened. Nothing here prints: `gradguard.cli` does.
"""

from __future__ import annotations

import dataclasses
import os
import runpy
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradguard import findings as findings_lib

# TensorFlow is imported once the script and paths are checked: a usage error answers at once,
# not after TensorFlow's few seconds of start-up.
if TYPE_CHECKING:
    from gradguard.options import Options

__all__ = ["Outcome", "RunError", "prepare", "run_script"]

# Observe only: never change what the script computes, and never raise into it.
_OBSERVE_ONLY = {code: "warn" for code in findings_lib.CODES}


class RunError(ValueError):
    """The script or an option cannot be used (exit status 2); the message says why."""


@dataclasses.dataclass
class Outcome:
    """What a run of a script ended with.

    Attributes:
      status: The exit status Python would give the script (130 on KeyboardInterrupt).
      report: The findings.
      saw_training: Whether any gradient was computed or any update applied.
      crash: The script's own traceback, as Python would print it, if it raised.
      message: A `sys.exit` message (a string exit code), if any.
      read_error: Why the final read of the checks failed, if it did.
    """

    status: int
    report: findings_lib.Report
    saw_training: bool
    crash: str = ""
    message: str = ""
    read_error: str = ""


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated ``gradguard run``: the script and how to instrument it."""

    script: str
    args: tuple[str, ...]
    options: Options
    activations: bool
    json_path: str | None


def prepare(
    script: str,
    args: Sequence[str] = (),
    *,
    json_path: str | None = None,
    log_dir: str | None = None,
    every: int = 100,
    activations: bool = True,
) -> Plan:
    """Validates a run before the script starts.

    Raises:
      RunError: for a missing script, one that is not Python (a syntax error, with its line; a
        notebook), a JSON path whose directory does not exist, a log directory that is a file.
    """
    if not os.path.isfile(script):
        raise RunError(f"no such script: {script}")
    with open(script, "rb") as f:
        source = f.read()
    if script.endswith(".ipynb") or source.lstrip().startswith(b"{"):
        # A notebook's JSON happens to compile as Python; it would fail with a NameError.
        raise RunError(
            f"{script} is a notebook, not a Python script: convert it with "
            "`jupyter nbconvert --to script` first."
        )
    try:
        compile(source, script, "exec")
    except SyntaxError as e:
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        text = f": {e.text.strip()}" if e.text else ""
        raise RunError(
            f"{script} is not a Python script: a syntax error at {where}: {e.msg}{text}"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{script} is not a Python script: {e}") from None
    if json_path is not None:
        directory = os.path.dirname(os.path.abspath(json_path))
        if not os.path.isdir(directory):
            raise RunError(f"--json {json_path}: the directory {directory} does not exist.")
        if os.path.isdir(json_path):
            raise RunError(f"--json {json_path} is a directory; give a file path.")
        if not os.access(directory, os.W_OK):
            raise RunError(f"--json {json_path}: the directory {directory} is not writable.")
    from gradguard import transforms as transforms_lib
    from gradguard.checks import all_checks, default_checks
    from gradguard.options import Options

    try:
        options = Options.create(
            transform=transforms_lib.identity(),
            # Fresh checks for each optimizer: all of them, activation health included, when
            # activations are watched (a diagnostic run).
            checks=all_checks if activations else default_checks,
            every=every,
            policy=_OBSERVE_ONLY,
            log_dir=log_dir,
        )
    except (TypeError, ValueError) as e:
        raise RunError(str(e).replace("log_dir", "--log-dir", 1)) from None
    return Plan(os.fspath(script), tuple(args), options, activations, json_path)


def run_script(plan: Plan) -> Outcome:
    """Runs the planned script as `__main__`, instrumented; returns how it ended.

    The script's own exceptions end it as they would in Python (status 1, 130 for
    KeyboardInterrupt) and never gradguard's: the findings made before are still returned.
    """
    from gradguard import checkpoint, staletarget, tracedrandom
    from gradguard.guarding import Guard

    guard = Guard(options=plan.options, raise_errors=False)
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [plan.script, *plan.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(plan.script)))
    status, crash, message = 0, "", ""
    unwatch = checkpoint.watch_restores(
        guard.report,
        lambda: [core.optimizer for core in guard.cores.values()],
        lambda: {id(core.optimizer): core.notes.get("lr_start") for core in guard.cores.values()},
    )
    unwatch_draws = tracedrandom.watch(guard.report, lambda: guard.forensics.trained_graphs)
    unwatch_sets = staletarget.watch(guard.report, lambda: guard.ledger.updates)
    try:
        with guard.instrument_process(activations=plan.activations):
            runpy.run_path(plan.script, run_name="__main__")
    except SystemExit as e:
        status, message = _exit_status(e.code)
    except KeyboardInterrupt:
        status, crash = 130, traceback.format_exc()
    except BaseException:  # the script's own crash: reported as Python would
        status, crash = 1, traceback.format_exc()
    finally:
        unwatch()
        unwatch_draws()
        unwatch_sets()
        sys.argv, sys.path[:] = old_argv, old_path
    outcome = Outcome(status, guard.report, False, crash, message)
    try:
        outcome.report = guard.read(final=True)
    except Exception as e:  # a diagnosis that fails must not hide the script's own outcome
        outcome.read_error = f"could not read the checks: {e}"
    outcome.saw_training = guard.saw_training()
    if plan.json_path:
        outcome.report.to_json(plan.json_path)
    return outcome


def _exit_status(code: object) -> tuple[int, str]:
    """The process status `sys.exit(code)` would give, and its message if it prints one."""
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code, ""
    return 1, str(code)
