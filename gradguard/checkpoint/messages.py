"""What checkpoint validation says: one finding per code, the table, the error that carries them."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable

from gradguard.checkpoint.values import NAMED, Check, Value, fmt
from gradguard.errors import CheckpointError
from gradguard.findings import Finding, Report, Severity

__all__ = ["CheckpointMismatchError", "findings", "findings_text", "table", "text"]


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that cannot be restored as asked; nothing was changed.

    Attributes:
      report: Every finding, not only the first error.
      finding: The first error finding (as for every `GradGuardError`).
    """

    def __init__(self, report: Report, text: str | None = None):
        errors = [f for f in report.findings if f.severity is Severity.ERROR]
        super().__init__((errors or report.findings)[0])
        self.report = report
        self.text = text if text is not None else findings_text(report)

    def __str__(self) -> str:
        return self.text


def _listing(values: list[Value], detail: Callable[[Value], str]) -> str:
    shown = ", ".join(f"{v.name} {detail(v)}".strip() for v in values[:NAMED])
    more = len(values) - NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _versus(value: Value, index: int) -> str:
    """``(saved (3, 2), now (3, 4))`` for index 0 (shape) or 1 (dtype)."""
    saved = value.saved[index] if value.saved else "?"
    current = value.current[index] if value.current else "?"
    return f"(saved {saved}, now {current})"


def _mismatch(code: str, group: list[Value], where: str) -> str:
    what = "shape" if code == "checkpoint-shape-mismatch" else "dtype"
    listing = _listing(group, functools.partial(_versus, index=int(what == "dtype")))
    if all(v.optimizer for v in group):
        # Only slots differ: the model fits, the optimizer is another class or built otherwise.
        fix = (
            "only optimizer values differ, so the model fits: the optimizer is not the one "
            "saved (another class, or built for other variables); restore with the optimizer "
            "it was saved with, or restore the model alone (model=...) and let the optimizer "
            "start fresh"
        )
    elif what == "shape":
        fix = "build the model as it was when saved (same layers and units)"
    else:
        fix = (
            "create the model with the dtype it was saved with (set dtype= or the "
            "mixed-precision policy before building) and cast after restoring"
        )
    return f"{len(group)} variable(s) differ in {what} from {where}: {listing}; {fix}."


def _missing(group: list[Value], where: str) -> tuple[str, Severity | None]:
    if all(v.optimizer for v in group):
        return (
            f"{len(group)} optimizer variable(s) have no saved value in {where}: "
            f"{_listing(group, lambda v: '')}; they keep their current values (the "
            "optimizer starts fresh), which is fine only if that is intended.",
            Severity.WARNING,
        )
    return (
        f"{len(group)} variable(s) have no saved value in {where}: "
        f"{_listing(group, lambda v: f'{fmt(v.current)}')}; they would keep their "
        "initial values (was a layer added or renamed after saving?); restore into "
        "the model as it was saved, or with strict=False to start them fresh.",
        None,
    )


def findings(values: list[Value], where: str) -> list[Finding]:
    """One finding per code, naming the variables with saved and current shape and dtype."""
    by_code: dict[str, list[Value]] = collections.defaultdict(list)
    for value in values:
        if value.problem:
            by_code[value.problem].append(value)
    found = []
    for code, group in by_code.items():
        # Model variables first: they are what the user changed; slots follow from them.
        group.sort(key=lambda v: v.optimizer)
        severity = None
        if code in ("checkpoint-shape-mismatch", "checkpoint-dtype-mismatch"):
            message = _mismatch(code, group, where)
        elif code == "checkpoint-missing-variables":
            message, severity = _missing(group, where)
        elif code == "checkpoint-unexpected-variables":
            message = (
                f"{len(group)} saved value(s) in {where} have no variable to go into: "
                f"{_listing(group, lambda v: fmt(v.saved))}; they will not be restored (was "
                "a layer removed or renamed, or an object such as optimizer= not passed?)."
            )
        else:  # checkpoint-optimizer-state-not-restored
            fixes = {v.fix for v in group}
            fix = (
                fixes.pop()
                if len(fixes) == 1 and None not in fixes
                else "its state (e.g. Adam's moments) would silently start from zero; use the "
                "optimizer class and variables it was saved with"
            )
            message = (
                f"{len(group)} saved optimizer value(s) in {where} do not reach the optimizer: "
                f"{_listing(group, lambda v: fmt(v.saved))}; {fix}."
            )
        details = {
            "path": where,
            "values": [
                {
                    "name": v.name,
                    "key": v.key,
                    "saved": fmt(v.saved),
                    "current": fmt(v.current),
                    "optimizer": v.optimizer,
                }
                for v in group
            ],
        }
        found.append(
            Finding(
                code,
                message,
                variables=tuple(v.name for v in group),
                severity=severity,
                details=details,
            )
        )
    return found


def table(values: list[Value], all_rows: bool = False) -> str:
    """Saved against current shape and dtype, a row per value (only the problems by default)."""
    rows = [
        (v.name, fmt(v.saved), fmt(v.current), v.problem or "ok")
        for v in sorted(values, key=lambda v: v.optimizer)  # model first, then its slots
        if all_rows or v.problem
    ]
    if not rows:
        return ""
    header = ("variable", "saved", "current", "problem")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def findings_text(report: Report) -> str:
    """The findings one per line; checkpoint findings belong to no step, so none is shown."""
    if not report.findings:
        return "gradguard: no findings."
    lines = [f"gradguard: {len(report)} finding(s):"]
    lines += [
        f"  {f.severity.value:7s} {f.code}: {f.message}" for f in report.findings if f.severity
    ]
    return "\n".join(lines)


def text(check: Check) -> str:
    """What a CheckpointMismatchError says: the table of what differs, then the findings."""
    rows = table(check.values)
    report = findings_text(check.report)
    return f"checkpoint {check.path}:\n{rows}\n{report}" if rows else report
