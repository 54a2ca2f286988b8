"""Command line: a thin argparse layer over the public functions (``gradguard --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradguard",
        description="Finds why a TensorFlow training loop runs but does not learn.",
    )
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
        "--activations",
        action="store_true",
        help="also watch the activations of the trained models: dead ReLU units, saturated "
        "sigmoid/tanh (off by default: up to ~10%% slower per step on a CNN)",
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
    if args.command == "demo":
        from gradguard import demo

        return demo.main(epochs=args.epochs, log_dir=args.log_dir)
    if args.command == "run":
        from gradguard import runner

        return runner.run_script(
            args.script,
            args.args,
            json_path=args.json,
            log_dir=args.log_dir,
            every=args.every,
            activations=args.activations,
        )
    if args.command == "inspect":
        from gradguard import events

        return events.main(args.logdir, json_path=args.json, plot_path=args.plot)
    if args.command == "ckpt":
        from gradguard.checkpoint import summary

        shown = summary.summarize(args.path, args.against)
        sys.stdout.write(shown.out)
        sys.stderr.write(shown.err)
        return shown.status
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
