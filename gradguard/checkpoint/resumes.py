"""Resumed runs whose optimizer starts over, while the model goes on from the checkpoint.

Two ways, both judged when `gradguard run` ends (`watch`):

* The restored optimizer is thrown away (`checkpoint-optimizer-state-not-restored`): the resume
  restores ``Checkpoint(model=..., optimizer=opt)`` and then trains with a new optimizer,
  ``model.compile(optimizer=Adam(schedule))`` given a fresh Adam instead of `opt`, or one made
  again for the loop. The restored one, with its step count and slots (Adam's moments), never
  makes an update (hunt27 b04: held-out MSE 0.038 against 0.032). Told apart from a new stage
  on purpose (fine-tuning with a fresh optimizer): the new one is of the restored one's class
  and asks for its rate (the same value, or a schedule of the same configuration).
* The optimizer was never saved (`checkpoint-missing-variables`): the checkpoint holds the model
  and the script's own progress counter (``Checkpoint(model=..., epoch=epoch)``, restored above
  0: a resume), but no optimizer, and the model then trains with an optimizer that starts from
  step 0 on a learning-rate schedule, back at its start (hunt27 b03: 0.036 against 0.029). A
  checkpoint without a counter (pretrained weights) starts a new stage: silent.

In both, the optimizer that starts over trains the variables of a model the restore reached.

And the opposite (`late_schedule`, `checkpoint-optimizer-config-changed`): a model restored from
the checkpoint of a compiled model, then compiled with a new optimizer of another set-up for a
new stage, gets the saved step count anyway: TensorFlow's deferred restore puts it into the
optimizer `compile` attaches. On a schedule, that optimizer starts where the old run ended
(hunt27 b13: a cosine decay past its end, the whole stage at its floor rate; 0.072 against
0.035 with the count reset).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gradguard import _compat, updating
from gradguard.checkpoint import compiles
from gradguard.checkpoint.values import Check
from gradguard.findings import Finding, Severity

__all__ = ["Resumes"]


@dataclasses.dataclass
class _Restored:
    """An optimizer a restore gave its saved step count."""

    key: str
    optimizer: weakref.ref[Any]
    iterations: int  # saved
    updates: int  # its update count just after the restore


@dataclasses.dataclass
class _Resume:
    """A restore into models, and what it tells about the run it resumes."""

    path: str
    variables: set[int]  # the trainable variables of the models it reached, by id
    before: dict[int, int]  # the update count of every optimizer known then, by id
    optimizers: list[_Restored]
    progress: tuple[str, int] | None  # a counter of the script's own restored above 0
    optimizer_saved: bool  # whether the checkpoint holds any optimizer value


class Resumes:
    """Restores whose models then train with an optimizer that starts over (`finish`).

    Args:
      trainers: The optimizers that have trained so far (`gradguard run`'s guard knows them).
    """

    def __init__(self, trainers: Callable[[], Iterable[Any]]):
        self._trainers = trainers
        self._resumes: list[_Resume] = []

    def restored(self, path: str, checked: Check | None, objects: dict[str, Any]) -> None:
        """Notes a restore of `path` into `objects`, as validated (`checked`), after it ran.

        Never raises: the user's script goes on.
        """
        try:
            if checked is not None:
                self._note(path, checked, objects)
        except Exception as e:  # noqa: BLE001 - the user's script must go on
            logging.warning("gradguard: could not note the restore of %s: %s", path, e)

    def _note(self, path: str, checked: Check, objects: dict[str, Any]) -> None:
        models = [obj for obj in objects.values() if isinstance(obj, keras.Model)]
        variables = {id(v) for m in models for v in m.trainable_variables}
        if not variables:
            return
        optimizers = [
            _Restored(
                s.key, weakref.ref(s.optimizer), s.iterations, updating.updates_made(s.optimizer)
            )
            for s in checked.optimizers
            if s.restored and s.iterations
        ]
        counters = [(name, _count(obj)) for name, obj in objects.items() if _count(obj)]
        self._resumes.append(
            _Resume(
                path,
                variables,
                {id(o): updating.updates_made(o) for o in self._trainers()},
                optimizers,
                counters[0] if counters else None,
                any(v.optimizer and v.saved is not None for v in checked.values),
            )
        )

    def finish(self, add: Callable[[Finding], None]) -> None:
        """Adds a finding for each resume whose model trained with an optimizer started over."""
        try:
            trainers = list(self._trainers())
            for resume in self._resumes:
                for finding in _judged(resume, trainers):
                    add(finding)
        except Exception as e:  # noqa: BLE001 - never break the end of the run
            logging.warning("gradguard: could not judge the resumed optimizers: %s", e)
        self._resumes = []


def _count(obj: Any) -> int:
    """A scalar integer variable's value (a step or epoch counter), else 0."""
    if isinstance(obj, tf.Variable) and obj.shape.rank == 0 and obj.dtype.is_integer:
        return int(obj.numpy())
    return 0


def _judged(resume: _Resume, trainers: list[Any]) -> list[Finding]:
    # The optimizers that trained the restored models since, from a step count of 0 then.
    fresh = [
        o
        for o in trainers
        if resume.before.get(id(o), 0) == 0
        and updating.updates_made(o) > 0
        and {id(v) for v in _compat.optimizer_variables(o)} & resume.variables
    ]
    found = []
    for restored in resume.optimizers:
        optimizer = restored.optimizer()
        if optimizer is None or updating.updates_made(optimizer) > restored.updates:
            continue
        if any(o is not optimizer and _same_set_up(o, optimizer) for o in fresh):
            found.append(_thrown_away(resume.path, restored, optimizer))
    if resume.progress and not resume.optimizer_saved and not resume.optimizers:
        scheduled = [o for o in fresh if _schedule(o) is not None]
        found += [_never_saved(resume.path, resume.progress, o) for o in scheduled[:1]]
    return found


def _same_set_up(other: Any, optimizer: Any) -> bool:
    """Whether `other` is of `optimizer`'s class and asks for its learning rate."""
    return type(other) is type(optimizer) and _rate(other) == _rate(optimizer)


def _schedule(optimizer: Any) -> Any:
    rate = _compat.learning_rate_object(optimizer)
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


def _rate(optimizer: Any) -> Any:
    """What the optimizer was asked to train at: a value, or a schedule's configuration."""
    if (schedule := _schedule(optimizer)) is not None:
        return type(schedule).__name__, schedule.get_config()
    value = compiles.rate(optimizer)  # (a value's; else a callable's, told by identity)
    return np.float32(value) if value is not None else id(_compat.learning_rate_object(optimizer))


def _thrown_away(path: str, restored: _Restored, optimizer: Any) -> Finding:
    kind = type(optimizer).__name__
    message = (
        f"The optimizer restored from {path} into {restored.key} ({kind}, {restored.iterations} "
        f"saved steps and their slots) made no update after the restore, while another {kind} "
        f"asking the same learning rate trained the model that restore reached, from step 0: "
        f"the resumed run threw the optimizer's state away (its slots start from zero, its "
        f"schedule from the start). Train with the restored optimizer "
        f"(model.compile(optimizer=<the one restored>), or the same object in the loop); if a "
        f"fresh optimizer is meant, leave it out of the checkpoint you restore."
    )
    variables = (restored.key,)
    return Finding(
        "checkpoint-optimizer-state-not-restored", message, -1, variables, Severity.ERROR
    )


def _never_saved(path: str, progress: tuple[str, int], optimizer: Any) -> Finding:
    name, count = progress
    kind = type(optimizer).__name__
    schedule = type(_schedule(optimizer)).__name__
    message = (
        f"The checkpoint {path} holds no optimizer, yet the run restored from it resumes ({name} "
        f"restored at {count}): the model goes on from the checkpoint while its {kind} starts "
        f"from step 0, its {schedule} schedule back at its start and its slots "
        f"at zero. Save the optimizer with the model, "
        f"tf.train.Checkpoint(model=model, optimizer=optimizer, {name}={name})."
    )
    return Finding("checkpoint-missing-variables", message, -1, ("optimizer",), Severity.ERROR)


def late_schedule(key: str, optimizer: Any, start: float | None, left: int) -> Finding | None:
    """The finding for a new optimizer whose schedule a deferred restore started late.

    `optimizer` (`key`) was attached after a restore that left `left` of its saved optimizer
    values behind (another set-up), and started at learning rate `start`. None if that is
    near its step-0 rate.
    """
    schedule = updating.schedule_start(optimizer)  # (its class name, its step-0 rate)
    if schedule is None or start is None or not start < schedule[1] / 2:
        return None
    name, first = schedule
    message = (
        f"{key} ({type(optimizer).__name__} on a {name} schedule) started at learning rate "
        f"{start:.3g}, not its step-0 rate {first:.3g}: it was attached to a model restored "
        f"before from the checkpoint of another optimizer ({left} of whose saved values fit "
        f"nowhere in it), and TensorFlow's deferred restore put that optimizer's step count "
        f"into it. If this is a new stage, set {key}.iterations.assign(0) after compile, or "
        f"restore a checkpoint of the model's layers only."
    )
    return Finding(
        "checkpoint-optimizer-config-changed",
        message,
        -1,
        (f"{key}/iteration",),
        Severity.WARNING,
        details={"changed": {"learning_rate": {"saved": start, "current": first}}},
    )
