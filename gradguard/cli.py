"""Command line: ``gradguard demo`` (and, as they land, ``run``, ``inspect``, ``ckpt``)."""

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gradguard` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from gradguard import demo

        return demo.main(epochs=args.epochs)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
