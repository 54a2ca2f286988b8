"""A run's gradguard scalars aligned on the logged steps: what checks replay their state from.

`Logged` is what `checks.base.Check.replay` receives. It holds the step's statistics as the
recorder logged them (`sinks.tags`), one column per tag over the logged steps, grouped per layer
(or per variable) as the checks see them, and can be cut at any logged step (`upto`) to judge
the run as it stood then.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from gradguard.inspect.events import Run
from gradguard.sinks import tags
from gradguard.stats import Layout

__all__ = ["Logged", "Updates"]


class Logged:
    """A gradguard run's scalars aligned on the logged steps, grouped as the checks see them."""

    def __init__(self, run: Run):
        self.run = run
        config = run.config
        self.per_variable = config.get("scalars") == "variable"
        seen = []
        for tag in run.scalars:
            section, _, name = tag.partition("/")
            if section in tags.LAYER_SECTIONS and name and name not in seen:
                seen.append(name)
        order = config.get("variables" if self.per_variable else "layers") or []
        groups = [n for n in order if n in seen] + sorted(n for n in seen if n not in order)
        self.groups = groups
        if self.per_variable:
            self.layout = Layout.from_names(groups)
        else:
            self.layout = Layout.of_layers(groups)
        step_tags = [t for t in (tags.LOSS, tags.GRAD_NORM) if t in run.scalars]
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

    def upto(self, index: int) -> Logged:
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

    def latest_in(self, section: str) -> dict[str, float]:
        """Per name of a section (``section/<name>``), its value at its latest logged step."""
        prefix = section + "/"
        latest = {}
        for tag in self.run.scalars:
            if tag.startswith(prefix):
                values, present = self.column(tag)
                if present.any():
                    latest[tag[len(prefix) :]] = float(values[present][-1])
        return latest

    def layer_grad_norms(self) -> np.ndarray:
        """[layers, steps] gradient norms (0 where not logged)."""
        grad, present = self.groups_of(tags.LAYER_GRAD_NORM)
        return np.sqrt(self.per_layer(np.where(present, grad, 0.0) ** 2))

    def updates(self) -> Updates:
        """What the updates did at each logged step, per variable group and per layer."""
        grad, _ = self.groups_of(tags.LAYER_GRAD_NORM)
        weight, measured = self.groups_of(tags.LAYER_WEIGHT_NORM)
        ratio, known = self.groups_of(tags.LAYER_UPDATE_RATIO)
        grad = np.nan_to_num(grad, nan=0.0)
        # Weights are logged exactly on the cadence steps whose update ran.
        weight = np.where(measured, weight, 0.0)
        update = np.where(known, ratio * weight, 0.0)
        w_layer = np.sqrt(self.per_layer(weight**2))
        u_layer = np.sqrt(self.per_layer(update**2))
        layer_measured = self.per_layer(measured.astype(float)) > 0
        # Weights logged without a ratio: a sample that told nothing of its variable (a zero
        # weight has no ratio either, and is no evidence of anything).
        unknown = measured & (weight > 0) & ~known
        return Updates(
            grad=grad,
            measured=measured,
            known=known,
            unknown=unknown,
            update=update,
            layer_weight=w_layer,
            layer_ratio=u_layer / np.where(w_layer > 0, w_layer, 1.0),
            layer_valid=layer_measured & (w_layer > 0) & (self.per_layer(unknown * 1.0) == 0),
            layer_grad_sq=self.per_layer(grad**2),
        )


@dataclasses.dataclass(frozen=True)
class Updates:
    """Per variable group and per layer, at each logged step: what the update did."""

    grad: np.ndarray  # [groups, steps] gradient norms (0 where not logged)
    measured: np.ndarray  # [groups, steps] the update ran and was measured (weights logged)
    known: np.ndarray  # [groups, steps] the update norm is known (a ratio was logged)
    unknown: np.ndarray  # [groups, steps] weights logged but no ratio: a sample told nothing
    update: np.ndarray  # [groups, steps] update norms (0 where not known)
    layer_weight: np.ndarray  # [layers, steps] weight norms (0 where not measured)
    layer_ratio: np.ndarray  # [layers, steps]
    layer_valid: np.ndarray  # [layers, steps] measured, non-zero weights, no sample unknown
    layer_grad_sq: np.ndarray  # [layers, steps]
