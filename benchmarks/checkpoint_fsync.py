"""What durability costs per checkpoint save: `checkpoint.Manager` with and without fsync.

`Manager.save` stages each checkpoint, reads it back whole, fsyncs every file and the
directory, and only then lets it count (issue #18). This measures, per save and per checkpoint
size, in one process and taking turns so that disk noise hits every variant alike:

- `tf-manager`: `tf.train.CheckpointManager.save` (the anchor: no verification, no fsync);
- `gradguard-nosync`: `Manager.save` with `os.fsync` made a no-op (staging and read-back only);
- `gradguard`: `Manager.save` as shipped.

Usage: python benchmarks/checkpoint_fsync.py [--sizes small,mlp,large] [--saves 10] [--dir DIR]

Prints a table (median milliseconds per save, and ratios) and writes it, with the machine and the
filesystem, to results/<date>-checkpoint-fsync.{json,md}. Run it on the filesystem your
checkpoints go to: on tmpfs fsync costs nothing, on a network filesystem far more.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gradguard.checkpoint import Manager  # noqa: E402

# Dense stacks: inputs, then layer widths. Adam doubles the weights (two slots each).
SIZES = {
    "small": (64, [256, 10]),  # ~19K parameters, ~0.2 MB a checkpoint
    "mlp": (784, [512, 512, 10]),  # the overhead benchmark's MLP: ~670K, ~8 MB
    "large": (2048, [2048, 2048, 10]),  # ~8.4M, ~100 MB
}
VARIANTS = ("tf-manager", "gradguard-nosync", "gradguard")


def _filesystem(path: str) -> str:
    """The filesystem type holding `path`, from /proc/mounts (Linux), else "unknown"."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                _, point, fstype, *_ = line.split()
                if os.path.realpath(path).startswith(point) and len(point) > len(best):
                    best, kind = point, fstype
    except OSError:
        pass
    return kind


def _objects(size: str) -> dict:
    inputs, widths = SIZES[size]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((inputs,)), *[keras.layers.Dense(w) for w in widths]])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)  # slots exist, as after the first step
    return {"model": model, "optimizer": optimizer, "nbytes": _nbytes(model, optimizer)}


def _nbytes(*objects: object) -> int:
    return sum(int(np.prod(v.shape)) * 4 for o in objects for v in o.variables)


def _no_fsync(fd: int) -> None:
    """Stands in for os.fsync in the `gradguard-nosync` variant."""


def measure(size: str, saves: int, root: str) -> dict:
    """Median milliseconds per save of each variant for one checkpoint size."""
    objects = _objects(size)
    nbytes = objects.pop("nbytes")
    savers = {}
    for variant in VARIANTS:
        directory = os.path.join(root, f"{size}-{variant}")
        if variant == "tf-manager":
            manager = tf.train.CheckpointManager(
                tf.train.Checkpoint(**objects), directory, max_to_keep=2
            )
        else:
            manager = Manager(directory, max_to_keep=2, **objects)
        savers[variant] = manager.save
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    real_fsync = os.fsync
    for variant in VARIANTS:  # warm-up: first saves build the save functions
        savers[variant]()
    for round_ in range(saves):
        order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]
        for variant in order:
            os.fsync = _no_fsync if variant == "gradguard-nosync" else real_fsync
            try:
                start = time.perf_counter()
                savers[variant]()
                times[variant].append((time.perf_counter() - start) * 1000)
            finally:
                os.fsync = real_fsync
    medians = {v: statistics.median(t) for v, t in times.items()}
    return {
        "size": size,
        "checkpoint_mb": round(nbytes / 2**20, 2),
        "saves": saves,
        "ms": {v: round(m, 2) for v, m in medians.items()},
        "fsync_ms": round(medians["gradguard"] - medians["gradguard-nosync"], 2),
        "fsync_ratio": round(medians["gradguard"] / medians["gradguard-nosync"], 2),
        "vs_tf_manager": round(medians["gradguard"] / medians["tf-manager"], 2),
    }


def table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| size | checkpoint MB | tf-manager ms | gradguard, no fsync, ms | gradguard ms "
        "| fsync ms | with/without fsync | gradguard/tf-manager |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ms = r["ms"]
        lines.append(
            f"| {r['size']} | {r['checkpoint_mb']} | {ms['tf-manager']} | "
            f"{ms['gradguard-nosync']} | {ms['gradguard']} | {r['fsync_ms']} | "
            f"{r['fsync_ratio']}x | {r['vs_tf_manager']}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the measurement and writes the results; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="small,mlp,large", help="comma-separated: " + ",".join(SIZES)
    )
    parser.add_argument("--saves", type=int, default=10, help="timed saves per variant and size")
    parser.add_argument("--dir", help="where to save (default: a temporary directory)")
    parser.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
        help="where to write the results (.json and .md); '' to write nothing",
    )
    args = parser.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = set(sizes) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}; known: {sorted(SIZES)}")
    root = tempfile.mkdtemp(prefix="gradguard-fsync-", dir=args.dir)
    try:
        rows = [measure(size, args.saves, root) for size in sizes]
        filesystem = _filesystem(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpu"
    text = (
        f"Checkpoint save cost, median of {args.saves} saves per variant, on {filesystem} "
        f"({machine}; TensorFlow {tf.__version__}):\n\n{table(rows)}\n"
    )
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.join(args.out, f"{datetime.date.today()}-checkpoint-fsync")
        with open(stem + ".json", "w", encoding="utf-8") as f:
            json.dump(
                {
                    "filesystem": filesystem,
                    "machine": machine,
                    "python": sys.version.split()[0],
                    "tensorflow": tf.__version__,
                    "results": rows,
                },
                f,
                indent=2,
            )
            f.write("\n")
        with open(stem + ".md", "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
