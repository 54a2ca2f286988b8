"""What `gradguard ckpt PATH [--against MODULE:FACTORY]` shows; `cli.py` prints it."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from typing import Any

from gradguard.checkpoint import files
from gradguard.checkpoint.compare import check
from gradguard.checkpoint.messages import CheckpointMismatchError, findings_text, table
from gradguard.findings import Severity

__all__ = ["Summary", "summarize"]


@dataclasses.dataclass(frozen=True)
class Summary:
    """What to show for a checkpoint.

    Attributes:
      out: Text for standard output (the listing, the validation), each line ending in a newline.
      err: Text for standard error (why the input is bad).
      status: The exit status: 0 healthy, 1 error findings, 2 bad input.
    """

    out: str
    err: str
    status: int


def _load_factory(against: str) -> dict[str, Any]:
    """Builds the objects from ``MODULE:FACTORY`` (a module name or a ``.py`` file)."""
    module_name, _, attr = against.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"--against must look like MODULE:FACTORY; got {against!r}.")
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("_gradguard_factory", module_name)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module_name}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would, for a module beside the user
        module = importlib.import_module(module_name)
    built = getattr(module, attr)()
    if isinstance(built, Mapping):
        return dict(built)
    if isinstance(built, (tuple, list)):
        return dict(zip(("model", "optimizer"), built, strict=False))
    return {"model": built}


def _size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} B"


def summarize(path: str, against: str | None = None) -> Summary:
    """Lists a checkpoint's values, checks it reads whole, and optionally validates it.

    Args:
      path: As for `validate`.
      against: ``MODULE:FACTORY`` (or ``path/to/file.py:FACTORY``): a function taking no
        arguments that returns the model, a ``(model, optimizer)`` tuple, or a dict of objects
        as passed to `tf.train.Checkpoint` (``{"model": m, "optimizer": opt}``). Build the model
        in it (call it on a batch) so that it has its variables.

    Returns:
      The `Summary`: what to print, and the exit status (0 if healthy, 1 if there are error
      findings, 2 for bad input: no such checkpoint, a factory that cannot be loaded).
    """
    try:
        resolved = files.resolve(path)
        infos = files.list_variables(resolved)
    except FileNotFoundError as e:
        return Summary("", f"gradguard ckpt: {e}\n", 2)
    except CheckpointMismatchError as e:
        return Summary(f"{e}\n", "", 1)
    rows = [(i.name, str(i.shape), i.dtype, _size(i.size)) for i in infos]
    header = ("variable", "shape", "dtype", "size")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    out = [f"checkpoint {resolved}: {len(infos)} values, {_size(sum(i.size for i in infos))}"]
    for row in [header, *rows]:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    objects: dict[str, Any] = {}
    if against:
        try:
            objects = _load_factory(against)
        except Exception as e:  # noqa: BLE001 - any failure of user code is bad input here
            err = f"gradguard ckpt: cannot build objects from {against}: {e}\n"
            return Summary(_lines(out), err, 2)
    try:
        checked = check(resolved, objects, build=False)
    except ValueError as e:
        return Summary(_lines(out), f"gradguard ckpt: {e}\n", 2)
    out.append("")
    if against:
        described = ", ".join(f"{k}={type(v).__name__}" for k, v in objects.items())
        out.append(f"validation against {described}:")
        out.append(table(checked.values, all_rows=True))
    if checked.report.findings:
        out.append(findings_text(checked.report))
    else:
        out.append(f"ok: every value reads whole{' and fits' if against else ''}.")
    errors = [f for f in checked.report.findings if f.severity is Severity.ERROR]
    return Summary(_lines(out), "", 1 if errors else 0)


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)
