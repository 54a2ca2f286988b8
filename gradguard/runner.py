"""`gradguard run`: an unmodified training script, instrumented, diagnosed at exit."""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from collections.abc import Sequence

from gradguard import checkpoint
from gradguard import checks as checks_lib
from gradguard import findings as findings_lib
from gradguard import transforms as transforms_lib
from gradguard.guard import Guard

__all__ = ["run_script"]

# Observe only: never change what the script computes, and never raise into it.
_OBSERVE_ONLY = {code: "warn" for code in findings_lib.CODES}


def _exit_status(code: object) -> int:
    """The process status `sys.exit(code)` would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _checks_with_activations() -> list[checks_lib.Check]:
    """The default checks and `ActivationHealth`: fresh ones for each optimizer."""
    return [*checks_lib.default_checks(), checks_lib.ActivationHealth()]


def run_script(
    script: str,
    args: Sequence[str] = (),
    *,
    json_path: str | None = None,
    log_dir: str | None = None,
    every: int = 100,
    activations: bool = False,
) -> int:
    """Runs `script` as `__main__` with every optimizer update and gradient call instrumented.

    At exit, normal or not, prints the findings and writes the JSON report (if `json_path`).

    Args:
      script: Path of a Python file.
      args: The script's own arguments (its `sys.argv[1:]`).
      json_path: Where to write the DESIGN.md JSON report.
      log_dir: TensorBoard directory for gradguard's statistics.
      every: Steps between statistics (and reads) per optimizer.
      activations: Also watch the activations (`checks.ActivationHealth`: `dead-units`,
        saturation): every guarded optimizer watches the activation-bearing layers of the
        model(s) it trains, in the training forward pass. Off by default: it costs up to ~10%
        per step on a CNN.

    Returns:
      The script's own exit status (1 for an uncaught exception); 2 if it cannot be run.
    """
    if not os.path.isfile(script):
        print(f"gradguard run: no such script: {script}", file=sys.stderr)
        return 2
    try:
        with open(script, "rb") as f:
            source = f.read()
        compile(source, script, "exec")
    except (SyntaxError, ValueError, UnicodeDecodeError) as e:
        print(f"gradguard run: {script} is not a Python script: {e}", file=sys.stderr)
        return 2
    if script.endswith(".ipynb") or source.lstrip().startswith(b"{"):
        # A notebook's JSON happens to compile as Python; it would fail with a NameError.
        print(
            f"gradguard run: {script} is a notebook, not a Python script: convert it with "
            "`jupyter nbconvert --to script` first.",
            file=sys.stderr,
        )
        return 2

    guard = Guard(
        transform=transforms_lib.identity(),
        checks=_checks_with_activations if activations else None,
        every=every,
        policy=_OBSERVE_ONLY,
        raise_errors=False,
        log_dir=log_dir,
    )
    guard.instrument_process()
    unwatch = checkpoint.watch_restores(guard.report)
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    status = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException:  # the script's own crash: report it as Python would, then diagnose
        traceback.print_exc()
        status = 1
    finally:
        unwatch()
        sys.argv, sys.path[:] = old_argv, old_path
        _finish(guard, json_path)
    return status


def _finish(guard: Guard, json_path: str | None) -> None:
    """Prints the diagnosis and writes the report, whatever state the run ended in."""
    try:
        report = guard.read(final=True)
    except Exception as e:  # a diagnosis that fails must not hide the script's own outcome
        print(f"gradguard: could not read the checks: {e}", file=sys.stderr)
        report = guard.report
    if not guard.saw_training():
        print(
            "gradguard: no gradient computation or optimizer update completed in the script; "
            "nothing to diagnose.",
            file=sys.stderr,
        )
    print(str(report), file=sys.stderr)
    if json_path:
        report.to_json(json_path)
