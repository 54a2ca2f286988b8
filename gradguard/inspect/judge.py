"""``gradguard inspect``: each run's gradguard scalars turned into a summary and findings.

The findings come from the live checks' own judging code: each check rebuilds its state from
the logged series (`Check.replay`) and judges it with `Check.judge`, the function the live check
calls on its variables' values.

What inspect sees is what was logged: one sample every `every` steps, per layer (or per
variable). So the state it rebuilds is that of a check that ran on the logged steps only: exact
for the update-to-weight ratio (measured on those steps anyway), an estimate from samples for
the others (a spike between two samples is not seen; the loss averages are taken over samples).

Example:
  >>> result = inspect("/tmp/logs")  # doctest: +SKIP
  >>> print(gradguard.inspect.format_inspection(result))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from gradguard.checks import Check, all_checks
from gradguard.findings import Report
from gradguard.inspect.events import Run, load_runs
from gradguard.inspect.logged import Logged
from gradguard.sinks import tags
from gradguard.stats import LOGGED_NOTES, Context
from gradguard.updating import RateHistory
from gradguard.version import __version__

__all__ = ["Inspection", "RunResult", "inspect"]


@dataclasses.dataclass
class RunResult:
    """One run's summary and the findings its scalars imply.

    Attributes:
      run: The run read.
      summary: Steps seen, loss first/last/best, gradient norm range, median update ratio per
        layer, clipping rate, skipped updates ({} when the run has no gradguard scalars).
      report: The findings judged from the scalars.
      not_judged: Checks that could not be judged from the logged scalars.
      logged_findings: Findings the live run wrote as texts: (step, code, text).
    """

    run: Run
    summary: dict[str, Any]
    report: Report
    not_judged: list[str]
    logged_findings: list[tuple[int, str, str]]

    @property
    def has_gradguard(self) -> bool:
        """Whether the run holds gradguard scalars."""
        return bool(self.summary)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: run, summary, findings (as in the report format), warnings."""
        run = self.run
        return {
            "run": run.name,
            "path": run.path,
            "gradguard_tags": len(run.gradguard_tags),
            "summary": self.summary,
            "findings": self.report.to_dict()["findings"],
            "not_judged": self.not_judged,
            "logged_findings": [
                {"step": s, "code": c, "text": t} for s, c, t in self.logged_findings
            ],
            "other_tags": {
                "scalars": sorted(t for t in run.scalars if not tags.is_gradguard_tag(t)),
                "texts": sorted(t for t in run.texts if not tags.is_gradguard_tag(t)),
                "other": sorted(t for t in run.other_tags if not tags.is_gradguard_tag(t)),
            },
            "warnings": list(run.warnings),
        }


@dataclasses.dataclass
class Inspection:
    """What `inspect` found under a log directory."""

    logdir: str
    results: list[RunResult]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form (strict JSON: non-finite numbers as "nan", "inf", "-inf")."""
        return _json_safe(
            {
                "gradguard_version": __version__,
                "logdir": self.logdir,
                "runs": [r.to_dict() for r in self.results],
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _summarize(logged: Logged) -> dict[str, Any]:
    run = logged.run
    steps = logged.last_step + 1
    summary: dict[str, Any] = {
        "steps": steps,
        "last_step": logged.last_step,
        "samples": len(logged.steps),
    }
    if len(logged.steps) > 1:
        summary["every"] = int(np.min(np.diff(logged.steps)))
    loss = run.scalars.get(tags.LOSS)
    if loss is not None and len(loss.steps):
        finite = np.isfinite(loss.values)
        summary["loss"] = {"first": float(loss.values[0]), "last": float(loss.values[-1])}
        if finite.any():
            best = int(np.argmin(np.where(finite, loss.values, np.inf)))
            summary["loss"]["best"] = float(loss.values[best])
            summary["loss"]["best_step"] = int(loss.steps[best])
        summary["loss"]["non_finite"] = int((~finite).sum())
    norm = run.scalars.get(tags.GRAD_NORM)
    if norm is not None and _finite(norm.values).size:
        summary["grad_norm"] = {
            "min": float(_finite(norm.values).min()),
            "max": float(_finite(norm.values).max()),
        }
    u = logged.updates()
    summary["update_ratio_median"] = {}
    for li, layer in enumerate(logged.layout.layers):
        ratios = u.layer_ratio[li][u.layer_valid[li]]
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            summary["update_ratio_median"][layer] = float(np.median(ratios))
    clipped = run.scalars.get(tags.CLIPPED_STEPS)
    if clipped is not None and len(clipped.steps) and steps > 0:
        count = int(clipped.values[-1])
        summary["clipped_steps"] = count
        summary["clipping_rate"] = count / int(clipped.steps[-1] + 1)
    skipped = run.scalars.get(tags.SKIPPED_UPDATES)
    if skipped is not None and len(skipped.steps):
        summary["skipped_updates"] = int(skipped.values[-1])
    lr = run.scalars.get(tags.LEARNING_RATE)
    if lr is not None and len(lr.steps):
        summary["learning_rate"] = {"first": float(lr.values[0]), "last": float(lr.values[-1])}
    return summary


# The live checks are judged at every host read; inspect judges at (at most) this many logged
# steps, evenly spread, so each finding is dated near where the live run would have seen it.
_JUDGE_POINTS = 64


def _judge(
    logged: Logged, checks: Sequence[Check], notes: Mapping[str, Any]
) -> tuple[Report, list[str]]:
    """Judges `checks` on the run as it stood at successive logged steps.

    As the live run's host reads did; a finding keeps the first step it was made at. A check
    that cannot be judged from what was logged (`Check.judge_logged` returns None) is named.
    """
    for check in checks:
        check.use_layout(logged.layout)
    report = Report(steps_observed=logged.last_step + 1)
    judged = [True] * len(checks)
    n = len(logged.steps)
    points = np.unique(np.linspace(0, n - 1, min(n, _JUDGE_POINTS)).round().astype(int))
    lr, lr_present = logged.column(tags.LEARNING_RATE)
    rates = RateHistory(notes.get("lr_start"))  # (as the live reads: a rate being raised)
    for index in points if n else []:
        view = logged.upto(int(index))
        rate = float(lr[index]) if lr_present[index] and math.isfinite(lr[index]) else None
        seen = {**notes, "lr_before": rates.before(view.last_step + 1, rate)}
        context = Context(
            steps=view.last_step + 1, step=view.last_step, learning_rate=rate, notes=seen
        )
        for k, check in enumerate(checks):
            found = check.judge_logged(view, context)
            if found is None:
                judged[k] = False
                continue
            for finding in found:
                report.add(finding)
    not_judged = [type(check).__name__ for check, ok in zip(checks, judged) if not ok]
    return report, not_judged


def _logged_findings(run: Run) -> list[tuple[int, str, str]]:
    prefix = tags.FINDINGS + "/"
    return sorted(
        (step, tag[len(prefix) :], text)
        for tag, entries in run.texts.items()
        if tag.startswith(prefix)
        for step, text in entries
    )


def inspect(logdir: str, checks: Iterable[Check] | None = None) -> Inspection:
    """Reads the runs under `logdir` and judges each from its gradguard scalars.

    Args:
      logdir: A log directory (searched recursively) or one event file.
      checks: Checks to judge with (their thresholds apply); default every built-in check
        (`checks.all_checks()`).

    Returns:
      An `Inspection`: per run, a summary, the findings and any reading warnings.

    Raises:
      LogDirError: if `logdir` does not exist or holds no event files.
    """
    checks = all_checks() if checks is None else list(checks)
    results = []
    for run in load_runs(logdir):
        if not any(tags.is_gradguard_tag(t) for t in run.scalars):
            results.append(RunResult(run, {}, Report(), [], _logged_findings(run)))
            continue
        logged = Logged(run)
        # Codes the live run's policy ignored (a GAN player's loss): not judged here either.
        ignored = set(run.config.get("ignored", ()))
        # What the live run's owner told its judgment (the chance level), when it was logged.
        notes = {k: run.config[k] for k in LOGGED_NOTES if run.config.get(k) is not None}
        report, not_judged = _judge(logged, checks, notes)
        report = Report(
            [f for f in report.findings if f.code not in ignored], report.steps_observed
        )
        results.append(
            RunResult(run, _summarize(logged), report, not_judged, _logged_findings(run))
        )
    return Inspection(logdir, results)
