"""Several optimizers in one process: players of a game, or stages one after another.

A GAN's generator and discriminator update in turn, each trained to undo what the other
learns: their losses need not decrease (`Stages.in_turn`). Optimizers used one after the other
(a teacher trained, then its student; a head trained alone, then a new optimizer fine-tuning
the whole model) are each judged on their own steps, and a stage that starts from weights an
earlier one trained is a resumed run (``core.notes["resumed"]``): its loss may rightly hold
from its start, as a trained model's does.
"""

from __future__ import annotations

from typing import Any

from gradguard import _compat
from gradguard.ledger import key

__all__ = ["Stages"]


class Stages:
    """The guard's optimizers (their `StepCore`s) and the updates each had seen others make."""

    def __init__(self) -> None:
        self._cores: dict[int, Any] = {}
        self._started: dict[int, dict[int, int]] = {}  # per core, the others' updates then

    def add(self, core: Any) -> None:
        """A new optimizer's core, before its first update (possibly while tracing it)."""
        with _compat.outside_trace():
            started = {other: each.steps for other, each in self._cores.items()}
        mine = {key(v) for v in core.variables}
        if any(
            started[other] > 0 and mine & {key(v) for v in each.variables}
            for other, each in self._cores.items()
        ):
            core.notes["resumed"] = True  # weights an earlier optimizer trained
        self._started[id(core)] = started
        self._cores[id(core)] = core

    def in_turn(self) -> bool:
        """Whether two optimizers update in turn (a GAN's players), not one after the other."""
        return any(
            self._cores[other].steps > steps
            for started in self._started.values()
            for other, steps in started.items()
        )
