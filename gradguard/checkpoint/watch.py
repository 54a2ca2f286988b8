"""Watching the restores an unmodified script makes (for `gradguard run`).

Each `tf.train.Checkpoint.restore` / `read` and `keras.Model.load_weights` call runs through a
hook (`hooks.watching_restores`): it is validated first, judged as that call restores (Keras
skips the state of an optimizer that has not been built yet; TensorFlow restores it when the
optimizer builds), and then runs unchanged. Restores of nothing, or into unbuilt models, are
`nothing`'s; resumes whose optimizer starts over, `resumes`'.

Some things wait for the end of `gradguard run`. Saved optimizer state that reaches no optimizer
(Keras skips it for one not built yet, or the model has none) is lost only if the model then
trains at the saved learning rate: restored to be evaluated or exported, it needs none. Weights
loaded into another model (`skip_mismatch`), or an optimizer at another rate (or on a schedule
where a rate was saved; made before the restore, or by a `compile` after it: hunt27 h10, b13),
are a new stage on purpose, whose optimizer starts anew. Values a `tf.train.Checkpoint` restore
leaves behind (``checkpoint-unexpected-variables``) wait too: ``expect_partial()`` drops them
(a backbone restored from a checkpoint with the old head), and what TensorFlow put since into
objects attached after the restore (deferred: the optimizer `compile` attaches) is not named.

And a restore puts the saved learning rate back over the one the code asked for (stage 2
fine-tunes at 1e-5 after stage 1 at 1e-3, and trains at 1e-3). Scripts that know this set it
again, so the watcher looks at the end of `gradguard run`: a rate still at the restored value,
above the one asked for, is reported if the optimizer made an update since. A model restored
before `compile` gets the saved rate in the optimizer `compile` attaches (deferred), so `compile`
is watched too (`compiles`). A restored rate below the one asked for is a resumed run whose rate
was lowered on the way (`ReduceLROnPlateau`): left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gradguard import updating
from gradguard.checkpoint import compiles, files, graph, messages, nothing, resumes
from gradguard.checkpoint.compare import check
from gradguard.checkpoint.hooks import watching_restores
from gradguard.checkpoint.values import Check, OptimizerState, is_optimizer
from gradguard.findings import Finding, Report

__all__ = ["watch_restores"]


def _objects_of(owner: Any) -> dict[str, Any]:
    """What a restore call restores into: a checkpoint's children, or the Keras model."""
    if isinstance(owner, tf.train.Checkpoint):
        return {k: v for k, v in graph.children(owner).items() if k != "save_counter"}
    return {"model": owner}


def _rate_changed(state: OptimizerState) -> bool:
    """Whether the optimizer restored into asks another learning rate than the saved one."""
    asked = compiles.rate(state.optimizer)
    if asked is None or state.learning_rate is None:
        return False
    return bool(np.float32(asked) != np.float32(state.learning_rate))


@dataclasses.dataclass
class _RestoredRate:
    """A learning rate a restore is about to put back over the one the code asked for."""

    path: str
    key: str
    optimizer: weakref.ref[Any]
    asked: float
    saved: float
    iterations: int | None
    deferred: bool = False  # put into the optimizer `compile` attached after the restore
    updates: int = 0  # the optimizer's update count once restored: later ones train at the rate

    def finding(self) -> Finding | None:
        """The finding, if the optimizer still trains at the restored rate, above the asked."""
        optimizer = self.optimizer()
        if optimizer is None or self.saved <= self.asked:
            return None
        if updating.updates_made(optimizer) <= self.updates:
            return None  # nothing trained at it (best weights reloaded to evaluate)
        now = compiles.rate(optimizer)
        if now is None or np.float32(now) != np.float32(self.saved):
            return None  # the script set the rate again after restoring
        count = (
            f" (and its iteration count, {self.iterations})" if self.iterations is not None else ""
        )
        how, after = ("restoring put", "restoring")
        if self.deferred:
            how, after = ("the restore made before compile put", "compile")
        return Finding(
            "checkpoint-optimizer-config-changed",
            f"{self.key} trains at learning_rate {self.saved:.6g}, the value saved in "
            f"{self.path}, not the {self.asked:.6g} the code asked for: {how} the saved "
            f"learning rate back{count}, since it is a variable of the optimizer; set "
            f"{self.key}.learning_rate = {self.asked:.6g} after {after} to train at the new "
            "rate.",
            # The variable, not the optimizer: not merged with what was found at the restore.
            variables=(f"{self.key}/learning_rate",),
            details={
                "path": self.path,
                "changed": {"learning_rate": {"saved": self.saved, "current": self.asked}},
                "restored_iterations": self.iterations,
            },
        )


def _trainers(owner: Any) -> list[Any]:
    """The models and optimizers a restore restores into."""
    objects = _objects_of(owner).values()
    return [obj for obj in objects if is_optimizer(obj) or isinstance(obj, keras.Model)]


def _skipped(found: list[Finding], checked: Check) -> list[Finding]:
    """`found` without the shapes `load_weights(..., skip_mismatch=True)` was asked to skip.

    Unless it skips every weight it could load (hunt27 b11: hidden layers widened, nothing
    loaded): a new head is skipped on purpose, a whole model is not.
    """
    weights = [v for v in checked.values if not v.optimizer and v.variable is not None]
    if any(v.saved is not None and v.problem is None for v in weights):
        return [f for f in found if f.code != "checkpoint-shape-mismatch"]
    return [
        dataclasses.replace(
            f,
            message=f"load_weights(..., skip_mismatch=True) loaded none of the model's weights: "
            f"every one of them differs in shape from the file's, and the model goes on with its "
            f"initial values. {f.message}",
        )
        if f.code == "checkpoint-shape-mismatch"
        else f
        for f in found
    ]


def _optimizers_of(trainers: list[Any]) -> list[Any]:
    """The optimizers that train `trainers` (a model's, once compiled)."""
    found = []
    for obj in trainers:
        if is_optimizer(obj):
            found.append(obj)
        elif isinstance(obj, keras.Model) and getattr(obj, "optimizer", None) is not None:
            found.append(obj.optimizer)
    return found


def _optimizer_values(finding: Finding) -> bool:
    """Whether the finding names optimizer values only (its own or a compiled model's)."""
    return all(value["optimizer"] for value in finding.details["values"])


def _about_the_optimizer_only(finding: Finding) -> bool:
    """Saved optimizer state that reaches no optimizer (lost only if the model then trains)."""
    if finding.code == "checkpoint-optimizer-state-not-restored":
        return True
    return finding.code == "checkpoint-unexpected-variables" and _optimizer_values(finding)


def _left_behind(coordinator: Any, findings: list[Finding], checked: Check) -> list[Finding]:
    """The `findings` for the values a TF checkpoint restore has still not put anywhere.

    TensorFlow restores saved values into objects made after the restore as they are attached
    (deferred): the optimizer `compile` gives a model restored before it (the saved step count
    and some slots, hunt27 b13), a layer built later. `coordinator` (the restore's, None for
    others) records every saved object matched so far; `checked`, the values as validated.
    """
    proto = getattr(coordinator, "object_graph_proto", None)
    if proto is None:
        return findings
    matched: set[int] = getattr(coordinator, "matched_proto_ids", set())
    restored = {a.checkpoint_key for i in matched for a in proto.nodes[i].attributes}
    values = {value.key: value for value in checked.values}
    left = []
    for finding in findings:
        keys = [v["key"] for v in finding.details["values"]]
        if all(key not in restored for key in keys):
            left.append(finding)
        elif any(key not in restored for key in keys):  # named again without those restored
            where = finding.details["path"]
            left += messages.findings([values[k] for k in keys if k not in restored], where)
    return left


@dataclasses.dataclass
class _UntrainedYet:
    """Findings about saved optimizer state, standing once what was restored trains."""

    trainers: list[weakref.ref[Any]]  # (not the checkpoint: often made for the restore only)
    updates: dict[int, int]  # each optimizer's update count at the restore, by id
    findings: list[Finding]
    checked: Check  # what they were found in
    coordinator: Any  # a TF checkpoint restore's (see `_left_behind`), or None
    rates: set[np.float32]  # the learning rates saved among the values

    def trained(self) -> bool:
        """Whether an optimizer trained since, at a saved rate (at another: a new stage).

        A schedule's rate is not told apart from a saved schedule's (none is saved as a value),
        but a schedule where a rate was saved is another set-up: a new stage too.
        """
        optimizers = _optimizers_of([t for ref in self.trainers if (t := ref()) is not None])
        moved = [o for o in optimizers if updating.updates_made(o) > self.updates.get(id(o), 0)]
        rates = [compiles.rate(o) for o in moved]
        return any(not self.rates or r is not None and np.float32(r) in self.rates for r in rates)


def _saved_rates(checked: Check, findings: list[Finding]) -> set[np.float32]:
    """The learning rates saved among the optimizer values `findings` name (read as validated)."""
    values = [v for f in findings for v in f.details.get("values", ())]
    keys = {v["key"] for v in values if v["name"].endswith("learning_rate")}
    return {np.float32(checked.read(key)) for key in keys} if checked.read else set()


class _Watcher:
    """The hook `watching_restores` calls for each restore: validate, then restore."""

    def __init__(
        self,
        report: Report,
        trainers: Callable[[], Iterable[Any]],
        start_rates: Callable[[], dict[int, float | None]],
    ):
        self.report = report
        self.start_rates = start_rates
        self.rates: list[_RestoredRate] = []
        self.waiting: list[_UntrainedYet] = []
        # Values a checkpoint's restore leaves behind, with its restore's coordinator (None:
        # no status came back), whose `expect_partial` the status's `expect_partial()` sets.
        self.partial: list[tuple[Any, list[Finding], Check]] = []
        self.compiles = compiles.CompileWatch(self._compiled)
        self.nothing = nothing.RestoredNothing(trainers)  # of no checkpoint, or unbuilt models
        self.resumes = resumes.Resumes(trainers)  # whose optimizer starts over

    def __call__(self, owner: Any, path: Any, restore: Callable[[], Any], skip: bool) -> Any:
        partial: list[Finding] = []
        rates: list[_RestoredRate] = []
        waiting, checked = None, None
        root = owner if isinstance(owner, tf.train.Checkpoint) else None
        if self.nothing.restored(path, _objects_of(owner)):  # (no checkpoint, or not built)
            return restore()
        try:
            resolved = files.resolve(path)
            checked = check(
                resolved,
                _objects_of(owner),
                build=False,
                root=root,
                plain=True,
                learning_rate=False,
            )
            found = checked.report.findings
            if skip:  # the script asked Keras to skip what does not fit (skip_mismatch)
                found = _skipped(found, checked)
            # Weights put into another model (`skip_mismatch`), or an optimizer made at another
            # rate than the saved one's, are a new stage on purpose (fine-tuning): its
            # optimizer starts anew, and the saved one's state has nowhere to go.
            lost = [s for s in checked.optimizers if not s.restored]
            if skip or (lost and all(_rate_changed(s) for s in lost)):
                found = [f for f in found if not _about_the_optimizer_only(f)]
            # Saved before the optimizer's first update: it had no slots to save, and those it
            # makes start from zero whether restored or not.
            if checked.optimizers and all(s.iterations == 0 for s in checked.optimizers):
                found = [
                    f
                    for f in found
                    if not (f.code == "checkpoint-missing-variables" and _optimizer_values(f))
                ]
            now = [f for f in found if not _about_the_optimizer_only(f)]
            later = [f for f in found if f not in now]
            # A checkpoint's restore returns a status whose `expect_partial()` says leaving
            # saved values behind is meant: those wait for the status (see `finish`).
            partial = [f for f in now if f.code == "checkpoint-unexpected-variables" and root]
            for finding in now:
                if finding not in partial:
                    self._add(finding)
            if later:
                trainers = _trainers(owner)
                updates = {id(o): updating.updates_made(o) for o in _optimizers_of(trainers)}
                refs = [weakref.ref(t) for t in trainers]
                rates_saved = _saved_rates(checked, later)
                waiting = _UntrainedYet(refs, updates, later, checked, None, rates_saved)
                self.waiting.append(waiting)
            rates += [r for s in checked.optimizers if (r := self._rate(resolved, s))]
            self.rates += rates
            self.compiles.restored(_objects_of(owner), resolved)
        except Exception as e:  # noqa: BLE001 - the user's script must go on
            logging.warning("gradguard: could not validate checkpoint %s: %s", path, e)
        status = restore()
        self.resumes.restored(path, checked, _objects_of(owner))
        for rate in rates:
            rate.updates = updating.updates_made(rate.optimizer())
        coordinator = getattr(status, "_checkpoint", None) if root else None
        if partial and checked is not None:
            self.partial.append((coordinator, partial, checked))
        if waiting is not None:
            waiting.coordinator = coordinator
        return status

    @staticmethod
    def _rate(path: str, state: OptimizerState) -> _RestoredRate | None:
        if not state.restored or not _rate_changed(state):
            return None
        asked, saved = compiles.rate(state.optimizer), state.learning_rate
        assert asked is not None and saved is not None  # (as `_rate_changed` read them)
        optimizer = weakref.ref(state.optimizer)
        return _RestoredRate(path, state.key, optimizer, asked, saved, state.iterations)

    def _compiled(
        self, path: str, key: str, optimizer: Any, asked: float, saved: float, iterations: int
    ) -> None:
        """`compile` put the rate a restore saved into the optimizer (`CompileWatch`)."""
        ref = weakref.ref(optimizer)
        rate = _RestoredRate(path, key, ref, asked, saved, iterations, True, iterations)
        self.rates.append(rate)

    def _late_schedules(self, waiting: _UntrainedYet, left: int) -> None:
        """The optimizers `compile` attached since to the models restored, started late."""
        starts = self.start_rates()
        for model in [t for ref in waiting.trainers if isinstance(t := ref(), keras.Model)]:
            optimizer = getattr(model, "optimizer", None)
            if optimizer is not None and id(optimizer) not in waiting.updates:
                start = starts.get(id(optimizer))
                late = resumes.late_schedule("model.optimizer", optimizer, start, left)
                if late is not None:
                    self._add(late)

    def _add(self, finding: Finding) -> None:
        if self.report.add(finding):
            logging.warning("gradguard [%s]: %s", finding.code, finding.message)

    def finish(self) -> None:
        """Judges what waited till the end: lost optimizer state and restored learning rates.

        Lost state stands if what was restored trained since at a saved rate; a restored rate,
        if the script did not set it again; values left behind, unless `expect_partial()`.
        """
        for coordinator, left, checked in self.partial:
            if not getattr(coordinator, "expect_partial", False):
                for left_behind in _left_behind(coordinator, left, checked):
                    self._add(left_behind)
        self.partial = []
        self.nothing.finish(self._add)
        self.resumes.finish(self._add)
        for waiting in self.waiting:
            try:
                trained = waiting.trained()
                lost = _left_behind(waiting.coordinator, waiting.findings, waiting.checked)
                for left_behind in lost if trained else ():
                    self._add(left_behind)
                if lost:  # (a new stage may still have been given the old run's step count)
                    self._late_schedules(waiting, sum(len(f.details["values"]) for f in lost))
            except Exception as e:  # noqa: BLE001 - never break the end of the run
                logging.warning("gradguard: could not judge the optimizer state left: %s", e)
        self.waiting = []
        for rate in self.rates:
            try:
                finding = rate.finding()
            except Exception as e:  # noqa: BLE001 - never break the end of the run
                logging.warning(
                    "gradguard: could not read the learning rate of %s: %s", rate.key, e
                )
                continue
            if finding is not None:
                self._add(finding)
        self.rates = []


def watch_restores(
    report: Report,
    trainers: Callable[[], Iterable[Any]] = tuple,
    start_rates: Callable[[], dict[int, float | None]] = dict,
) -> Callable[[], None]:
    """Validates every checkpoint restore and `load_weights` call made from now on.

    `tf.train.Checkpoint.restore` / `read` and `keras.Model.load_weights` are wrapped: before each
    call the checkpoint is validated against the objects it restores into, as that call restores
    them, and the findings are added to `report` (and logged); the call itself then runs
    unchanged, so the script behaves exactly as without gradguard. A validation that fails is
    logged and never breaks the script. A learning rate the restore put back over the one the
    code asked for is judged when the watch ends (see the module's docstring).

    Args:
      report: Where the findings go.
      trainers: The optimizers that have trained so far (`gradguard run`'s guard's).
      start_rates: Their learning rates at their first update, by id.

    Returns:
      A function that judges what is left to judge and removes the wrappers.
    """
    watcher = _Watcher(report, trainers, start_rates)
    stack = contextlib.ExitStack()
    stack.enter_context(watching_restores(watcher))
    stack.enter_context(watcher.compiles.patch)
    stack.callback(watcher.finish)
    return stack.close
