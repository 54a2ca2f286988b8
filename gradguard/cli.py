"""Command line: a thin argparse layer over the public functions, and all of gradguard's printing.

Library modules return what happened (a report, a result, a text); this module prints it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from gradguard.version import __version__

    parser = argparse.ArgumentParser(
        prog="gradguard",
        description="Finds why a TensorFlow training loop runs but does not learn.",
        epilog="TensorFlow's own C++ log lines are hidden (TF_CPP_MIN_LOG_LEVEL=2) unless "
        "TF_CPP_MIN_LOG_LEVEL is set.",
    )
    parser.add_argument("--version", action="version", version=f"gradguard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="diagnose seed bugs on built-in data, then learn")
    demo.add_argument("--epochs", type=int, default=25, help="epochs per loop (default 25)")
    demo.add_argument(
        "--log-dir", metavar="DIR", help="write the TensorBoard logs here (default: a temp dir)"
    )

    run = commands.add_parser(
        "run",
        help="run a training script unmodified, instrumented, and print a diagnosis at exit",
    )
    run.add_argument("--json", metavar="PATH", help="write the findings as JSON to PATH")
    run.add_argument("--log-dir", metavar="DIR", help="write TensorBoard scalars to DIR")
    run.add_argument(
        "--every", type=_positive_int, default=100, metavar="N", help="steps between reads"
    )
    run.add_argument(
        "--no-activations",
        dest="activations",
        action="store_false",
        help="do not watch the activations of the trained models (dead ReLU units, saturated "
        "sigmoid/tanh), which a diagnostic run does by default",
    )
    # Kept for scripts written for gradguard 0.1, when watching activations was opt-in.
    run.add_argument(
        "--activations",
        dest="activations",
        action="store_true",
        default=True,
        help=argparse.SUPPRESS,
    )
    run.add_argument("script", help="the Python training script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")

    inspect = commands.add_parser(
        "inspect",
        help="read TensorBoard event files: a summary per run and the findings they imply",
    )
    inspect.add_argument("logdir", metavar="LOGDIR", help="log directory (runs found inside)")
    inspect.add_argument("--json", metavar="PATH", help="write the summary and findings as JSON")
    inspect.add_argument(
        "--plot", metavar="PNG", help="draw loss, gradient norms and update ratios (matplotlib)"
    )

    explain = commands.add_parser(
        "explain", help="print the troubleshooting guide's section for a finding code"
    )
    explain.add_argument("code", nargs="?", help="a finding code, e.g. missing-apply")

    ckpt = commands.add_parser(
        "ckpt", help="list a checkpoint's variables, verify it reads whole, or validate it"
    )
    ckpt.add_argument("path", help="a TF checkpoint prefix or directory, .weights.h5 or .keras")
    ckpt.add_argument(
        "--against",
        metavar="MODULE:FACTORY",
        help="validate against the model (and optimizer) that FACTORY() returns",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (steps between reads), got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gradguard` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    # Before TensorFlow is imported: its C++ start-up lines are noise here, unless asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "demo":
        from gradguard import demo

        return demo.main(epochs=args.epochs, log_dir=args.log_dir, out=print)
    if args.command == "run":
        return _run(args)
    if args.command == "explain":
        return _explain(args.code)
    if args.command == "inspect":
        return _inspect(args.logdir, args.json, args.plot)
    if args.command == "ckpt":
        if not glob.glob(glob.escape(args.path) + "*"):  # a typo answers before TF's start-up
            print(
                f"gradguard ckpt: no checkpoint at {args.path!r}: nothing there.", file=sys.stderr
            )
            return 2
        from gradguard.checkpoint import summary

        shown = summary.summarize(args.path, args.against)
        sys.stdout.write(shown.out)
        sys.stderr.write(shown.err)
        return shown.status
    raise AssertionError(f"unhandled command {args.command}")


def _run(args: argparse.Namespace) -> int:
    """``gradguard run``: the script's own exit status; 2 when it cannot be run."""
    from gradguard import runner

    try:
        plan = runner.prepare(
            args.script,
            args.args,
            json_path=args.json,
            log_dir=args.log_dir,
            every=args.every,
            activations=args.activations,
        )
    except runner.RunError as e:
        print(f"gradguard run: {e}", file=sys.stderr)
        return 2
    outcome = runner.run_script(plan)
    if outcome.crash:
        print(outcome.crash, file=sys.stderr, end="")
    if outcome.message:
        print(outcome.message, file=sys.stderr)
    if outcome.read_error:
        print(f"gradguard: {outcome.read_error}", file=sys.stderr)
    if not outcome.saw_training:
        print(
            "gradguard: no gradient computation or optimizer update completed in the script; "
            "nothing to diagnose.",
            file=sys.stderr,
        )
    print(str(outcome.report), file=sys.stderr)
    return outcome.status


def _explain(code: str | None) -> int:
    """``gradguard explain CODE``: the guide's section; 2 for an unknown code."""
    from gradguard.explain import guide_section
    from gradguard.findings import CODES

    if code is None or code not in CODES:
        stream = sys.stdout if code is None else sys.stderr
        if code is not None:
            print(f"gradguard explain: unknown finding code {code!r}.", file=stream)
        print("Finding codes (gradguard explain CODE):", file=stream)
        for known, info in CODES.items():
            print(f"  {known:42s} {info.severity.value:8s} {info.meaning}", file=stream)
        return 2 if code is not None else 0
    print(guide_section(code), end="")
    return 0


def _inspect(logdir: str, json_path: str | None, plot_path: str | None) -> int:
    """``gradguard inspect``; returns the exit status.

    0 when the runs were read (gradguard's or not), 2 when `logdir` does not exist or holds no
    event files, 1 when the plot could not be drawn.
    """
    from gradguard import inspect

    try:
        inspection = inspect.inspect(logdir)
    except inspect.LogDirError as e:
        print(f"gradguard inspect: {e}", file=sys.stderr)
        return 2
    for result in inspection.results:
        for warning in result.run.warnings:
            print(f"gradguard inspect: warning: {warning}", file=sys.stderr)
    print(inspect.format_inspection(inspection))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(inspection.to_dict(), f, indent=2)
            f.write("\n")
    if plot_path:
        try:
            inspect.plot(inspection, plot_path)
        except ImportError as e:
            print(f"gradguard inspect: {e}", file=sys.stderr)
            return 1
        print(f"plot written to {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
