"""Reading TensorBoard event files back into a diagnosis: the logic of ``gradguard inspect``.

`load_runs(logdir)` reads every run (a directory holding ``*tfevents*`` files) under `logdir`;
a file cut short by a crash is read up to the damage, with a warning. `inspect(logdir)` turns
each run's gradguard scalars into a summary and into findings. The findings come from the live
checks' own judging code: each check's state is rebuilt from the logged series and handed to
`Check.judge`, the function the live check calls on its variables' values. Dead units are the
exception: the per-unit state is not logged, so `ActivationHealth.judge_logged` judges the
logged dead share per layer, with the same message.

What inspect sees is what was logged: one sample every `every` steps, per layer (or per
variable). So the state it rebuilds is that of a check that ran on the logged steps only: exact
for the update-to-weight ratio (measured on those steps anyway), an estimate from samples for
the others (a spike between two samples is not seen; the loss averages are taken over samples).

Example:
  >>> result = inspect("/tmp/logs")  # doctest: +SKIP
  >>> print(format_inspection(result))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import numpy as np
from absl import logging

from gradguard import checks as checks_lib
from gradguard import sinks
from gradguard.findings import Report
from gradguard.version import __version__

__all__ = [
    "Inspection",
    "LogDirError",
    "Run",
    "RunResult",
    "Series",
    "format_inspection",
    "inspect",
    "load_runs",
    "main",
    "plot",
    "read_event_file",
]


class LogDirError(ValueError):
    """LOGDIR does not exist or holds no event files."""


@dataclasses.dataclass(frozen=True)
class Series:
    """One scalar tag's values, sorted by step (the last value written wins for a step)."""

    steps: np.ndarray
    values: np.ndarray

    def at(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values at `steps` (NaN where not logged) and whether each was logged."""
        index = np.searchsorted(self.steps, steps)
        index = np.minimum(index, max(len(self.steps) - 1, 0))
        present = (self.steps[index] == steps) if len(self.steps) else np.zeros(len(steps), bool)
        values = np.where(present, self.values[index] if len(self.steps) else np.nan, np.nan)
        return values.astype(np.float64), present


@dataclasses.dataclass
class Run:
    """What one run directory's event files hold.

    Attributes:
      name: The directory relative to LOGDIR (``.`` for LOGDIR itself).
      path: The directory.
      files: Its event files, in the order read.
      scalars: Tag -> series, for every scalar tag (gradguard's and others').
      texts: Tag -> (step, text) pairs.
      other_tags: Tags of other kinds (histograms, images, ...) -> plugin name.
      warnings: Problems met while reading (a damaged file).
    """

    name: str
    path: str
    files: list[str]
    scalars: dict[str, Series]
    texts: dict[str, list[tuple[int, str]]]
    other_tags: dict[str, str]
    warnings: list[str]

    @property
    def gradguard_tags(self) -> list[str]:
        """The tags written by gradguard."""
        return sorted(t for t in [*self.scalars, *self.texts] if sinks.is_gradguard_tag(t))

    @property
    def config(self) -> dict[str, Any]:
        """The recording's configuration (``gradguard/config``), or {} if not logged."""
        entries = self.texts.get(sinks.CONFIG)
        if not entries:
            return {}
        try:
            value = json.loads(entries[-1][1])
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def read_event_file(path: str) -> tuple[list[Any], str | None]:
    """Reads the events of one file, stopping at the first damaged record.

    Args:
      path: An event file.

    Returns:
      The `Event` protos read, and a warning if the file is damaged (else None).
    """
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2
    from tensorflow.python.lib.io import tf_record

    events: list[Any] = []
    reader = tf_record.tf_record_random_reader(path)
    offset = 0
    try:
        while True:
            try:
                record, end = reader.read(offset)
            except IndexError:  # end of file
                return events, None
            except tf.errors.DataLossError as e:
                size = os.path.getsize(path)
                cause = "truncated" if "truncated" in str(e) else "corrupted"
                return events, (
                    f"{path}: {cause} record at byte {offset} of {size}; read the {len(events)} "
                    f"event(s) before it (a run that crashed or is still writing leaves a partial "
                    f"last record)."
                )
            events.append(event_pb2.Event.FromString(record))
            offset = end
    finally:
        reader.close()


def _is_event_file(name: str) -> bool:
    # TensorBoard's own rule (tensorboard/backend/event_processing/io_wrapper.py).
    return "tfevents" in name


def _run_files(logdir: str) -> dict[str, list[str]]:
    if os.path.isfile(logdir):
        if not _is_event_file(os.path.basename(logdir)):
            raise LogDirError(
                f"{logdir!r} is a file, not a log directory or an event file "
                "(events.out.tfevents.*)."
            )
        return {os.path.dirname(os.path.abspath(logdir)): [logdir]}
    if not os.path.isdir(logdir):
        raise LogDirError(
            f"log directory {logdir!r} does not exist; pass the directory given to "
            "TrainStep(log_dir=...) or `tensorboard --logdir`."
        )
    runs: dict[str, list[str]] = {}
    for directory, subdirs, files in os.walk(logdir):
        subdirs.sort()
        events = sorted(f for f in files if _is_event_file(f))
        if events:
            runs[directory] = [os.path.join(directory, f) for f in events]
    if not runs:
        raise LogDirError(
            f"no TensorBoard event files (events.out.tfevents.*) under {logdir!r}; write some "
            "with gradguard.TrainStep(..., log_dir=DIR) or `gradguard run --log-dir DIR`."
        )
    return runs


def load_runs(logdir: str) -> list[Run]:
    """Reads every run under `logdir` (or the one event file `logdir` names).

    Args:
      logdir: A directory (searched recursively) or an event file.

    Returns:
      One `Run` per directory holding event files, sorted by name.

    Raises:
      LogDirError: if `logdir` does not exist or holds no event files.
    """
    from tensorboard.util import tensor_util

    runs = []
    root = logdir if os.path.isdir(logdir) else None
    for directory, files in sorted(_run_files(logdir).items()):
        name = os.path.relpath(directory, root) if root else os.path.basename(directory)
        points: dict[str, dict[int, float]] = {}
        texts: dict[str, dict[int, str]] = {}
        other: dict[str, str] = {}
        plugins: dict[str, str] = {}
        warnings = []
        for path in files:
            events, warning = read_event_file(path)
            if warning:
                logging.warning("gradguard inspect: %s", warning)
                warnings.append(warning)
            for event in events:
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    tag = value.tag
                    plugin = value.metadata.plugin_data.plugin_name
                    if plugin:
                        plugins[tag] = plugin
                    plugin = plugins.get(tag, "")
                    if value.HasField("simple_value"):
                        points.setdefault(tag, {})[event.step] = float(value.simple_value)
                        continue
                    if not value.HasField("tensor"):
                        other[tag] = plugin or value.WhichOneof("value") or "unknown"
                        continue
                    array = tensor_util.make_ndarray(value.tensor)
                    if plugin == "text" or array.dtype.kind in "OSU":
                        item = array.reshape(-1)[0] if array.size else b""
                        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                        texts.setdefault(tag, {})[event.step] = str(text)
                    elif plugin in ("scalars", "") and array.size == 1:
                        points.setdefault(tag, {})[event.step] = float(array.reshape(-1)[0])
                    else:
                        other[tag] = plugin or "tensor"
        scalars = {}
        for tag, by_step in points.items():
            steps = np.array(sorted(by_step), dtype=np.int64)
            scalars[tag] = Series(steps, np.array([by_step[s] for s in steps], np.float64))
        runs.append(
            Run(
                name=name,
                path=directory,
                files=files,
                scalars=scalars,
                texts={t: sorted(v.items()) for t, v in texts.items()},
                other_tags=other,
                warnings=warnings,
            )
        )
    return runs


# --- Rebuilding the checks' state from the logged series -------------------------------------


class _Table:
    """A gradguard run's scalars aligned on the logged steps, grouped as the checks see them."""

    def __init__(self, run: Run):
        self.run = run
        config = run.config
        self.per_variable = config.get("scalars") == "variable"
        sections = (sinks.LAYER_GRAD_NORM, sinks.LAYER_WEIGHT_NORM, sinks.LAYER_UPDATE_RATIO)
        seen = []
        for tag in run.scalars:
            section, _, name = tag.partition("/")
            if section in sections and name and name not in seen:
                seen.append(name)
        order = config.get("variables" if self.per_variable else "layers") or []
        groups = [n for n in order if n in seen] + sorted(n for n in seen if n not in order)
        self.groups = groups
        if self.per_variable:
            self.layout = checks_lib.Layout.from_names(groups)
        else:
            self.layout = checks_lib.Layout(tuple(groups), tuple(groups), tuple(range(len(groups))))
        step_tags = [t for t in (sinks.LOSS, sinks.GRAD_NORM) if t in run.scalars]
        steps = np.zeros(0, np.int64)
        if step_tags:
            steps = np.unique(np.concatenate([run.scalars[t].steps for t in step_tags]))
        self._all_steps = steps.astype(np.int64)
        self._end = len(self._all_steps)
        self._columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def steps(self) -> np.ndarray:
        """The logged steps (up to the end of this view)."""
        return self._all_steps[: self._end]

    def upto(self, index: int) -> _Table:
        """The same table as it stood when the step at `index` was logged."""
        view = copy.copy(self)  # shares the column cache
        view._end = index + 1
        return view

    def column(self, tag: str) -> tuple[np.ndarray, np.ndarray]:
        """A tag's values at the logged steps (NaN where not logged) and where it was logged."""
        if tag not in self._columns:
            series = self.run.scalars.get(tag)
            if series is None:
                n = len(self._all_steps)
                self._columns[tag] = (np.full(n, np.nan), np.zeros(n, bool))
            else:
                self._columns[tag] = series.at(self._all_steps)
        values, present = self._columns[tag]
        return values[: self._end], present[: self._end]

    def groups_of(self, section: str) -> tuple[np.ndarray, np.ndarray]:
        """[groups, steps] values and presence of one per-group section."""
        columns = [self.column(f"{section}/{name}") for name in self.groups]
        if not columns:
            n = len(self.steps)
            return np.zeros((0, n)), np.zeros((0, n), bool)
        return np.stack([c[0] for c in columns]), np.stack([c[1] for c in columns])

    def per_layer(self, per_group: np.ndarray) -> np.ndarray:
        """Sums [groups, steps] into [layers, steps] (identity when groups are layers)."""
        index = np.asarray(self.layout.layer_index, dtype=np.int64)
        out = np.zeros((len(self.layout.layers), per_group.shape[1]))
        np.add.at(out, index, per_group)
        return out

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else -1


def _first_step(steps: np.ndarray, bad: np.ndarray) -> int:
    hits = np.flatnonzero(bad)
    return int(steps[hits[0]]) if hits.size else -1


def _non_finite_state(check: checks_lib.Check, table: _Table) -> dict[str, Any]:
    loss, loss_present = table.column(sinks.LOSS)
    grad, grad_present = table.groups_of(sinks.LAYER_GRAD_NORM)
    weight, weight_present = table.groups_of(sinks.LAYER_WEIGHT_NORM)
    skipped, present = table.column(sinks.SKIPPED_UPDATES)
    return {
        "loss_first": np.int64(_first_step(table.steps, loss_present & ~np.isfinite(loss))),
        "grad_first": np.array(
            [_first_step(table.steps, p & ~np.isfinite(g)) for g, p in zip(grad, grad_present)],
            np.int64,
        ),
        "weight_first": np.array(
            [_first_step(table.steps, p & ~np.isfinite(w)) for w, p in zip(weight, weight_present)],
            np.int64,
        ),
        "skipped": np.int64(skipped[present][-1] if present.any() else 0),
        # The loss scale is not logged: inspect does not judge a collapsing one.
        "overflows": np.int64(0),
        "loss_scale_min": np.float32(1.0),
    }


def _zero_gradient_state(check: checks_lib.Check, table: _Table) -> dict[str, Any]:
    grad, present = table.groups_of(sinks.LAYER_GRAD_NORM)
    sq = np.where(np.isfinite(grad), grad**2, 1.0)
    return {"grad_sq_max": np.where(present, sq, 0.0).max(axis=1, initial=0.0)}


@dataclasses.dataclass(frozen=True)
class _Updates:
    """Per variable group and per layer, at each logged step: what the update did."""

    grad: np.ndarray  # [groups, steps] gradient norms (0 where not logged)
    measured: np.ndarray  # [groups, steps] the update ran and was measured (weights logged)
    known: np.ndarray  # [groups, steps] the update norm is known (a ratio was logged)
    update: np.ndarray  # [groups, steps] update norms (0 where not known)
    layer_ratio: np.ndarray  # [layers, steps]
    layer_valid: np.ndarray  # [layers, steps] measured, with non-zero weights
    layer_grad_sq: np.ndarray  # [layers, steps]


def _updates(table: _Table) -> _Updates:
    grad, _ = table.groups_of(sinks.LAYER_GRAD_NORM)
    weight, measured = table.groups_of(sinks.LAYER_WEIGHT_NORM)
    ratio, known = table.groups_of(sinks.LAYER_UPDATE_RATIO)
    grad = np.nan_to_num(grad, nan=0.0)
    # Weights are logged exactly on the cadence steps whose update ran.
    weight = np.where(measured, weight, 0.0)
    update = np.where(known, ratio * weight, 0.0)
    w_layer = np.sqrt(table.per_layer(weight**2))
    u_layer = np.sqrt(table.per_layer(update**2))
    layer_measured = table.per_layer(measured.astype(float)) > 0
    return _Updates(
        grad=grad,
        measured=measured,
        known=known,
        update=update,
        layer_ratio=u_layer / np.where(w_layer > 0, w_layer, 1.0),
        layer_valid=layer_measured & (w_layer > 0),
        layer_grad_sq=table.per_layer(grad**2),
    )


def _update_ratio_state(check: checks_lib.Check, table: _Table) -> dict[str, Any]:
    assert isinstance(check, checks_lib.UpdateRatio)
    u = _updates(table)
    # As the live check: a layer without gradient has no meaningful ratio.
    valid = u.layer_valid & (u.layer_grad_sq > 0)
    ratio = u.layer_ratio
    last = np.zeros(len(table.layout.layers))
    for li in range(len(last)):
        hits = np.flatnonzero(valid[li])
        if hits.size:
            last[li] = ratio[li, hits[-1]]
    eligible = u.measured & (u.grad > 0)
    # A variable whose ratio was not logged (zero weights) is not known to be unchanged.
    unchanged = eligible & u.known & (u.update == 0)
    return {
        "measured": valid.sum(axis=1),
        "below": (valid & (ratio < check.low)).sum(axis=1),
        "above": (valid & (ratio > check.high)).sum(axis=1),
        "last": last,
        "eligible": eligible.sum(axis=1),
        "unchanged": unchanged.sum(axis=1),
    }


def _layer_norms(table: _Table) -> np.ndarray:
    grad, present = table.groups_of(sinks.LAYER_GRAD_NORM)
    return np.sqrt(table.per_layer(np.where(present, grad, 0.0) ** 2))


def _exploding_state(check: checks_lib.Check, table: _Table) -> dict[str, Any]:
    norm, present = table.column(sinks.GRAD_NORM)
    finite = present & np.isfinite(norm)
    first = float(norm[finite][0]) if finite.any() else -1.0
    largest, largest_step = 0.0, -1
    for step, value, ok in zip(table.steps, norm, finite):
        if ok and value > largest:
            largest, largest_step = float(value), int(step)
    layer = _layer_norms(table)
    layer = np.where(np.isfinite(layer), layer, 0.0)
    return {
        "norm_first": np.float32(first),
        "norm_max": np.float32(largest),
        "norm_max_step": np.int64(largest_step),
        "layer_norm_max": layer.max(axis=1, initial=0.0),
    }


def _vanishing_state(check: checks_lib.Check, table: _Table) -> dict[str, Any]:
    norm, present = table.column(sinks.GRAD_NORM)
    finite = present & np.isfinite(norm)
    layer = _layer_norms(table)
    return {
        "layer_norm_sum": np.where(finite, layer, 0.0).sum(axis=1),
        "layer_norm_count": np.int64(finite.sum()),
    }


def _loss_state(check: checks_lib.Check, table: _Table) -> dict[str, Any]:
    assert isinstance(check, checks_lib.LossNotDecreasing)
    window = check.window
    loss, present = table.column(sinks.LOSS)
    finite = present & np.isfinite(loss)
    losses = loss[finite]
    if not losses.size:
        return {"loss_first_sum": 0.0, "loss_recent": 0.0, "loss_count": np.int64(0)}
    # The first window is the first `window` finite steps: a logged non-finite step pushes
    # its end one step later.
    finite_steps = table.steps - np.cumsum(present & ~finite)
    early = loss[finite & (finite_steps < window)]
    first_mean = float(early.mean() if early.size else losses[0])
    # The live moving average decays by `decay` per finite step; between two samples `gap`
    # finite steps apart it decays by (1 - decay) ** gap. A logged non-finite loss is a step
    # the live check skipped.
    decay = 2.0 / (window + 1)
    recent: float | None = None
    gap = 0
    previous = None
    for step, value, ok in zip(table.steps[present], loss[present], finite[present]):
        if previous is not None:
            gap += int(step - previous)
        previous = step
        if not ok:
            gap -= 1
        elif recent is None:
            recent, gap = float(value), 0
        else:
            recent += (1.0 - (1.0 - decay) ** gap) * (float(value) - recent)
            gap = 0
    seen = table.last_step + 1
    count = round(seen * finite.sum() / max(int(present.sum()), 1))
    return {
        "loss_first_sum": first_mean * window,
        "loss_recent": recent if recent is not None else 0.0,
        "loss_count": np.int64(count),
    }


_Rebuild = Callable[[checks_lib.Check, _Table], dict[str, Any]]
# Checks whose state can be rebuilt from the logged scalars. A check not listed here (a
# custom one, or one that needs statistics that are not logged) is reported as not judged.
_REBUILDERS: Mapping[type[checks_lib.Check], _Rebuild] = {
    checks_lib.NonFinite: _non_finite_state,
    checks_lib.ZeroGradient: _zero_gradient_state,
    checks_lib.UpdateRatio: _update_ratio_state,
    checks_lib.ExplodingGradient: _exploding_state,
    checks_lib.VanishingGradient: _vanishing_state,
    checks_lib.LossNotDecreasing: _loss_state,
}


# --- Summaries ---------------------------------------------------------------------------------


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
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)

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
                "scalars": sorted(t for t in run.scalars if not sinks.is_gradguard_tag(t)),
                "texts": sorted(t for t in run.texts if not sinks.is_gradguard_tag(t)),
                "other": sorted(t for t in run.other_tags if not sinks.is_gradguard_tag(t)),
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


def _summarize(table: _Table) -> dict[str, Any]:
    run = table.run
    steps = table.last_step + 1
    summary: dict[str, Any] = {
        "steps": steps,
        "last_step": table.last_step,
        "samples": len(table.steps),
    }
    if len(table.steps) > 1:
        summary["every"] = int(np.min(np.diff(table.steps)))
    loss = run.scalars.get(sinks.LOSS)
    if loss is not None and len(loss.steps):
        finite = np.isfinite(loss.values)
        summary["loss"] = {"first": float(loss.values[0]), "last": float(loss.values[-1])}
        if finite.any():
            best = int(np.argmin(np.where(finite, loss.values, np.inf)))
            summary["loss"]["best"] = float(loss.values[best])
            summary["loss"]["best_step"] = int(loss.steps[best])
        summary["loss"]["non_finite"] = int((~finite).sum())
    norm = run.scalars.get(sinks.GRAD_NORM)
    if norm is not None and _finite(norm.values).size:
        summary["grad_norm"] = {
            "min": float(_finite(norm.values).min()),
            "max": float(_finite(norm.values).max()),
        }
    u = _updates(table)
    summary["update_ratio_median"] = {}
    for li, layer in enumerate(table.layout.layers):
        ratios = u.layer_ratio[li][u.layer_valid[li]]
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            summary["update_ratio_median"][layer] = float(np.median(ratios))
    clipped = run.scalars.get(sinks.CLIPPED_STEPS)
    if clipped is not None and len(clipped.steps) and steps > 0:
        count = int(clipped.values[-1])
        summary["clipped_steps"] = count
        summary["clipping_rate"] = count / int(clipped.steps[-1] + 1)
    skipped = run.scalars.get(sinks.SKIPPED_UPDATES)
    if skipped is not None and len(skipped.steps):
        summary["skipped_updates"] = int(skipped.values[-1])
    lr = run.scalars.get(sinks.LEARNING_RATE)
    if lr is not None and len(lr.steps):
        summary["learning_rate"] = {"first": float(lr.values[0]), "last": float(lr.values[-1])}
    return summary


# The live checks are judged at every host read; inspect judges at (at most) this many logged
# steps, evenly spread, so each finding is dated near where the live run would have seen it.
_JUDGE_POINTS = 64


def _judge(table: _Table, checks: Sequence[checks_lib.Check]) -> tuple[Report, list[str]]:
    """Judges `checks` on the table as it stood at successive logged steps.

    As the live run's host reads did; a finding keeps the first step it was made at.
    """
    judged = []
    not_judged = []
    # Dead units are judged from the logged per-layer fractions, not from a rebuilt state
    # (that holds the last step each unit fired, which is not logged).
    activation_checks = [c for c in checks if isinstance(c, checks_lib.ActivationHealth)]
    for check in checks:
        rebuild = next((f for t, f in _REBUILDERS.items() if isinstance(check, t)), None)
        if isinstance(check, checks_lib.ActivationHealth):
            check.layout = table.layout
        elif rebuild is None:
            not_judged.append(type(check).__name__)
        else:
            check.layout = table.layout
            judged.append((check, rebuild))
    report = Report(steps_observed=table.last_step + 1)
    n = len(table.steps)
    points = np.unique(np.linspace(0, n - 1, min(n, _JUDGE_POINTS)).round().astype(int))
    lr, lr_present = table.column(sinks.LEARNING_RATE)
    for index in points if n else []:
        view = table.upto(int(index))
        rate = float(lr[index]) if lr_present[index] and math.isfinite(lr[index]) else None
        context = checks_lib.Context(
            steps=view.last_step + 1, step=view.last_step, learning_rate=rate
        )
        for check, rebuild in judged:
            for finding in check.judge(rebuild(check, view), context):
                report.add(finding)
        fractions = _dead_fractions(view) if activation_checks else {}
        for check in activation_checks:
            for finding in check.judge_logged(fractions, context):
                report.add(finding)
    return report, not_judged


def _dead_fractions(table: _Table) -> dict[str, float]:
    """Per layer, the logged ``gradguard_dead_units/<layer>`` at its latest logged step."""
    prefix = sinks.DEAD_UNITS + "/"
    fractions = {}
    for tag in table.run.scalars:
        if tag.startswith(prefix):
            values, present = table.column(tag)
            if present.any():
                fractions[tag[len(prefix) :]] = float(values[present][-1])
    return fractions


def _logged_findings(run: Run) -> list[tuple[int, str, str]]:
    prefix = sinks.FINDINGS + "/"
    return sorted(
        (step, tag[len(prefix) :], text)
        for tag, entries in run.texts.items()
        if tag.startswith(prefix)
        for step, text in entries
    )


def inspect(logdir: str, checks: Iterable[checks_lib.Check] | None = None) -> Inspection:
    """Reads the runs under `logdir` and judges each from its gradguard scalars.

    Args:
      logdir: A log directory (searched recursively) or one event file.
      checks: Checks to judge with (their thresholds apply); default `default_checks()` and
        `ActivationHealth()` (dead units, from ``gradguard_dead_units/<layer>`` where logged).

    Returns:
      An `Inspection`: per run, a summary, the findings and any reading warnings.

    Raises:
      LogDirError: if `logdir` does not exist or holds no event files.
    """
    if checks is None:
        checks = [*checks_lib.default_checks(), checks_lib.ActivationHealth()]
    checks = list(checks)
    ratio_check = next(
        (c for c in checks if isinstance(c, checks_lib.UpdateRatio)), checks_lib.UpdateRatio()
    )
    results = []
    for run in load_runs(logdir):
        if not any(sinks.is_gradguard_tag(t) for t in run.scalars):
            results.append(RunResult(run, {}, Report(), [], _logged_findings(run)))
            continue
        table = _Table(run)
        report, not_judged = _judge(table, checks)
        summary = _summarize(table)
        results.append(
            RunResult(
                run,
                summary,
                report,
                not_judged,
                _logged_findings(run),
                thresholds={"low": ratio_check.low, "high": ratio_check.high},
            )
        )
    return Inspection(logdir, results)


# --- Output -------------------------------------------------------------------------------------


def _g(x: float) -> str:
    return f"{x:.4g}"


def _listing(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def format_inspection(inspection: Inspection) -> str:
    """The per-run summary table and findings, as printed by ``gradguard inspect``."""
    results = inspection.results
    lines = [f"gradguard inspect {inspection.logdir}: {len(results)} run(s)"]
    for result in results:
        run = result.run
        lines.append("")
        lines.append(f"run {run.name}  ({len(run.files)} event file(s))")
        for warning in run.warnings:
            lines.append(f"  warning: {warning}")
        if not result.has_gradguard:
            lines.extend(_format_foreign(run))
            continue
        s = result.summary
        rows = [
            (
                "steps seen",
                f"0..{s['last_step']} ({s['samples']} logged"
                + (f", every {s['every']} steps)" if "every" in s else ")"),
            )
        ]
        if "loss" in s:
            loss = s["loss"]
            text = f"first {_g(loss['first'])}  last {_g(loss['last'])}"
            if "best" in loss:
                text += f"  best {_g(loss['best'])} (step {loss['best_step']})"
            if loss["non_finite"]:
                text += f"  non-finite {loss['non_finite']}x"
            rows.append(("loss", text))
        if "grad_norm" in s:
            rows.append(
                ("gradient norm", f"{_g(s['grad_norm']['min'])} .. {_g(s['grad_norm']['max'])}")
            )
        if "learning_rate" in s:
            lr = s["learning_rate"]
            text = (
                _g(lr["first"])
                if lr["first"] == lr["last"]
                else (f"{_g(lr['first'])} -> {_g(lr['last'])}")
            )
            rows.append(("learning rate", text))
        if "clipping_rate" in s:
            rows.append(
                ("clipping", f"{100 * s['clipping_rate']:.1f}% of steps ({s['clipped_steps']})")
            )
        if "skipped_updates" in s:
            rows.append(("skipped updates", str(s["skipped_updates"])))
        lines.extend(f"  {name:<18}{value}" for name, value in rows)
        if s["update_ratio_median"]:
            lines.append("  update ratio (median per layer; healthy 1e-4 .. 1e-2)")
            width = max(len(n) for n in s["update_ratio_median"])
            for layer, ratio in s["update_ratio_median"].items():
                lines.append(f"    {layer:<{max(width, 16)}}  {ratio:.2e}")
        findings = result.report.findings
        if findings:
            lines.append(f"  findings judged from the scalars ({len(findings)}):")
            for f in findings:
                assert f.severity is not None
                lines.append(f"    {f.severity.value} {f.code} at step {f.step}: {f.message}")
        else:
            lines.append("  findings judged from the scalars: none")
        if result.not_judged:
            lines.append(
                f"  not judged (state not in the logged scalars): {', '.join(result.not_judged)}"
            )
        if result.logged_findings:
            codes = sorted({c for _, c, _ in result.logged_findings})
            lines.append(
                f"  findings the run logged itself: {len(result.logged_findings)} "
                f"({', '.join(codes)})"
            )
    return "\n".join(lines)


def _format_foreign(run: Run) -> list[str]:
    scalars = sorted(run.scalars)
    lines = []
    if scalars:
        lo = min(int(s.steps[0]) for s in run.scalars.values() if len(s.steps))
        hi = max(int(s.steps[-1]) for s in run.scalars.values() if len(s.steps))
        lines.append(f"  {len(scalars)} scalar tag(s), steps {lo}..{hi}: {_listing(scalars)}")
    if run.texts:
        lines.append(f"  {len(run.texts)} text tag(s): {_listing(sorted(run.texts))}")
    if run.other_tags:
        kinds = sorted(set(run.other_tags.values()))
        lines.append(
            f"  {len(run.other_tags)} other tag(s) ({', '.join(kinds)}): "
            f"{_listing(sorted(run.other_tags))}"
        )
    if not lines:
        lines.append("  no summaries (the files hold only file headers or graphs)")
    lines.append(
        "  no gradguard tags found: this run was not written by gradguard (gradguard's tags "
        "start with 'gradguard'); log with gradguard.TrainStep(..., log_dir=DIR) to inspect it."
    )
    return lines


def plot(inspection: Inspection, path: str) -> None:
    """Draws a PNG: per run, the loss, gradient norms and update ratios against the step.

    Gradient norms and update ratios are drawn per layer, the ratios against the healthy band;
    findings are marked at the steps they were seen.

    Args:
      inspection: What `inspect` returned.
      path: The PNG to write.

    Raises:
      ImportError: if matplotlib is not installed (``pip install 'gradguard[plot]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "gradguard inspect --plot needs matplotlib: pip install 'gradguard[plot]'."
        ) from e

    results = [r for r in inspection.results if r.has_gradguard]
    rows = max(len(results), 1)
    # Figure, not pyplot: no global state, no display needed.
    figure = Figure(figsize=(15, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 3, squeeze=False)
    if not results:
        axes[0][1].text(0.5, 0.5, "no gradguard scalars", ha="center", va="center")
    for row, result in zip(axes, results):
        _plot_run(row, result)
    figure.savefig(path, dpi=90)


def _plot_run(axes: Any, result: RunResult) -> None:
    run, table = result.run, _Table(result.run)
    loss_ax, grad_ax, ratio_ax = axes
    loss = run.scalars.get(sinks.LOSS)
    if loss is not None:
        loss_ax.plot(loss.steps, loss.values, color="black", lw=1.2, label="loss")
    loss_ax.set_title(f"{run.name}: loss")
    norm = run.scalars.get(sinks.GRAD_NORM)
    if norm is not None:
        grad_ax.plot(norm.steps, _positive(norm.values), color="black", lw=1.5, label="global")
    for name in table.groups:
        series = run.scalars.get(f"{sinks.LAYER_GRAD_NORM}/{name}")
        if series is not None:
            grad_ax.plot(series.steps, _positive(series.values), lw=0.9, label=name)
    grad_ax.set_yscale("log")
    grad_ax.set_title("gradient norm per layer")
    low, high = result.thresholds.get("low", 1e-7), result.thresholds.get("high", 0.5)
    ratio_ax.axhspan(1e-4, 1e-2, color="tab:green", alpha=0.15, label="healthy 1e-4..1e-2")
    ratio_ax.axhline(low, color="tab:red", ls=":", lw=0.8)
    ratio_ax.axhline(high, color="tab:red", ls=":", lw=0.8)
    for name in table.groups:
        series = run.scalars.get(f"{sinks.LAYER_UPDATE_RATIO}/{name}")
        if series is not None:
            ratio_ax.plot(series.steps, _positive(series.values), lw=0.9, marker=".", label=name)
    ratio_ax.set_yscale("log")
    ratio_ax.set_title("update / weight ratio per layer")
    marks: dict[int, set[str]] = {}
    for f in result.report.findings:
        marks.setdefault(f.step, set()).add(f.code)
    for ax in axes:
        ax.set_xlabel("step")
        for step, codes in sorted(marks.items()):
            ax.axvline(step, color="tab:red", ls="--", lw=0.8)
            ax.annotate(
                ", ".join(sorted(codes)),
                (step, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="tab:red",
            )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")


def _positive(values: np.ndarray) -> np.ndarray:
    # A log axis cannot show 0, NaN or Inf: leave a gap there.
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def main(
    logdir: str,
    json_path: str | None = None,
    plot_path: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``gradguard inspect``: prints the summary and findings; returns the exit status.

    Returns:
      0 when the runs were read (gradguard's or not), 2 when `logdir` does not exist or holds
      no event files, 1 when the plot could not be drawn.
    """
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        inspection = inspect(logdir)
    except LogDirError as e:
        print(f"gradguard inspect: {e}", file=err)
        return 2
    for result in inspection.results:
        for warning in result.run.warnings:
            print(f"gradguard inspect: warning: {warning}", file=err)
    print(format_inspection(inspection), file=out)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(inspection.to_dict(), f, indent=2)
            f.write("\n")
    if plot_path:
        try:
            plot(inspection, plot_path)
        except ImportError as e:
            print(f"gradguard inspect: {e}", file=err)
            return 1
        print(f"plot written to {plot_path}", file=out)
    return 0
