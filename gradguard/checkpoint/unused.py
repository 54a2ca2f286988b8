"""Restored optimizer state that another optimizer throws away.

A resumed run restores the optimizer with the model (``Checkpoint(model=..., optimizer=opt)``)
and then trains with a new one: ``model.compile(optimizer=Adam(schedule))`` given a fresh Adam
instead of `opt`, or a custom loop that makes its optimizer again after the restore. The
restored optimizer, with its step count and its slots (Adam's moments), never makes an update;
the new one starts from step 0, its schedule back at its peak rate (hunt27 b04: held-out MSE
0.038 against 0.032 with the restored optimizer).

Told apart from a new stage on purpose (fine-tuning with a fresh optimizer): the new optimizer is
of the restored one's class and asks for its rate (the same value, or a schedule of the same
configuration), and it trains the variables of the models that restore reached. Judged when
`gradguard run` ends (`watch`), as `checkpoint-optimizer-state-not-restored`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
from absl import logging

from gradguard import _compat, updating
from gradguard.checkpoint.values import OptimizerState
from gradguard.findings import Finding, Severity

__all__ = ["ThrownAway"]


@dataclasses.dataclass
class _Restored:
    path: str
    key: str
    optimizer: weakref.ref[Any]
    iterations: int  # saved
    updates: int  # its update count just after the restore
    variables: set[int]  # the trainable variables of the models the restore reached, by id
    before: dict[int, int]  # the update count of every optimizer known then, by id


class ThrownAway:
    """Optimizers a restore filled that never trained, while a new one trained their models.

    Args:
      trainers: The optimizers that have trained so far (`gradguard run`'s guard knows them).
    """

    def __init__(self, trainers: Callable[[], Iterable[Any]]):
        self._trainers = trainers
        self._restored: list[_Restored] = []

    def restored(self, path: str, states: list[OptimizerState], objects: Iterable[Any]) -> None:
        """Notes the optimizers a restore of `path` gave a saved step count (after it ran).

        Never raises: the user's script goes on.
        """
        try:
            self._note(path, states, objects)
        except Exception as e:  # noqa: BLE001 - the user's script must go on
            logging.warning(
                "gradguard: could not note the optimizers restored from %s: %s", path, e
            )

    def _note(self, path: str, states: list[OptimizerState], objects: Iterable[Any]) -> None:
        models = [obj for obj in objects if isinstance(obj, keras.Model)]
        variables = {id(v) for m in models for v in m.trainable_variables}
        if not variables:
            return
        before = {id(o): updating.updates_made(o) for o in self._trainers()}
        for state in states:
            if state.restored and state.iterations:
                optimizer = state.optimizer
                updates = updating.updates_made(optimizer)
                self._restored.append(
                    _Restored(
                        path,
                        state.key,
                        weakref.ref(optimizer),
                        state.iterations,
                        updates,
                        variables,
                        before,
                    )
                )

    def finish(self, add: Callable[[Finding], None]) -> None:
        """Adds a finding for each restored optimizer that another one replaced in training."""
        try:
            trainers = list(self._trainers())
            for restored in self._restored:
                optimizer = restored.optimizer()
                if optimizer is None or updating.updates_made(optimizer) > restored.updates:
                    continue
                if any(o is not optimizer and _replaces(o, optimizer, restored) for o in trainers):
                    add(_finding(restored, optimizer))
        except Exception as e:  # noqa: BLE001 - never break the end of the run
            logging.warning("gradguard: could not judge the restored optimizers: %s", e)
        self._restored = []


def _replaces(other: Any, optimizer: Any, restored: _Restored) -> bool:
    """Whether `other` trained the restored models since, as `optimizer` was set up to."""
    if updating.updates_made(other) <= restored.before.get(id(other), 0):
        return False
    if not {id(v) for v in _compat.optimizer_variables(other)} & restored.variables:
        return False
    return type(other) is type(optimizer) and _rate(other) == _rate(optimizer)


def _rate(optimizer: Any) -> Any:
    """What the optimizer was asked to train at: a value, or a schedule's configuration."""
    rate = _compat.learning_rate_object(optimizer)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return type(rate).__name__, rate.get_config()
    return np.float32(np.asarray(rate)) if isinstance(rate, keras.Variable) else id(rate)


def _finding(restored: _Restored, optimizer: Any) -> Finding:
    kind = type(optimizer).__name__
    message = (
        f"The optimizer restored from {restored.path} into {restored.key} ({kind}, "
        f"{restored.iterations} saved steps and their slots) made no update after the restore, "
        f"while another {kind} at the same learning rate trained the model that restore "
        f"reached, from step 0: the resumed run threw the optimizer's state away (its slots "
        f"start from zero, its schedule from the start). Train with the restored optimizer "
        f"(model.compile(optimizer=<the one restored>), or the same object in the loop); if a "
        f"fresh optimizer is meant, leave it out of the checkpoint you restore."
    )
    return Finding(
        "checkpoint-optimizer-state-not-restored",
        message,
        -1,
        (restored.key,),
        Severity.ERROR,
    )
