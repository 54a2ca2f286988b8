"""Several optimizers in one process: players of a game, or stages one after another.

A GAN's generator and discriminator update in turn, each trained to undo what the other
learns: their losses need not decrease (`Stages.in_turn`). Optimizers used one after the other
(a teacher trained, then its student; a head trained alone, then a new optimizer fine-tuning
the whole model) are each judged on their own steps, and a stage that starts from weights an
earlier one trained is a resumed run (``core.notes["resumed"]``): its loss may rightly hold
from its start, as a trained model's does.

An optimizer made anew for every update (``optimizer = keras.optimizers.Adam()`` inside an eager
loop, or ``model.compile(optimizer="adam")`` before each `train_on_batch`) is no stage: each
starts with no state, so Adam's moments and step count restart at every update (each about lr *
sign(gradient)) and a momentum never builds. The one it replaces (the same class, the same
variables, exactly one update made) hands it its core (`Stages.replaced`): one record of the
training, no new core and traced fold at every step; `optimizer-recreated` once `MIN_MADE` were
made so, for an optimizer that keeps state. A meta-learning inner loop's optimizer, made anew
for each task's few updates (Reptile, MAML: `MAX_HANDED` at most), hands its core on the same
way, without the finding: a core per task made a run of 300 tasks 12 times slower. The loss of
such a run moves from task to task and falls within each: `loss-not-decreasing` does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradguard import _compat
from gradguard.findings import Finding
from gradguard.ledger import key

__all__ = ["MAX_HANDED", "MIN_MADE", "Stages"]

MIN_MADE = 10  # optimizers made one per update before `optimizer-recreated`
MAX_HANDED = 10  # updates of an optimizer whose successor on its variables takes its core


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

    def replaced(
        self, optimizer: Any, apply_fn: Any, variables: list[Any], cores: Mapping[int, Any]
    ) -> int | None:
        """Hands a new `optimizer` the core of the one it replaces after its few updates, if any.

        Args:
          optimizer: The new optimizer, before its first update.
          apply_fn: Its own update method (`StepCore`'s `apply_fn`).
          variables: The variables it updates.
          cores: The guard's cores, by the `id` of their optimizer (not earlier guards').

        Returns:
          The `id` of the optimizer replaced (its key in `cores`), or None.
        """
        ids = [id(v) for v in variables]
        for core in cores.values():
            old = core.optimizer
            if type(old) is type(optimizer) and [id(v) for v in core.variables] == ids:
                with _compat.outside_trace():  # (`compile` in the loop: met in a new trace)
                    updates = int(old.iterations.numpy()), int(optimizer.iterations.numpy())
                if updates[1] == 0 and 1 <= updates[0] <= MAX_HANDED:
                    if updates[0] == 1:  # (made for each update: counted for the finding)
                        core.notes["optimizers_made"] = core.notes.get("optimizers_made", 1) + 1
                    else:  # one per task: the loss moves from task to task, down none of them
                        core.ignore("loss-not-decreasing")
                    core.rebind(optimizer, apply_fn)
                    return id(old)
        return None

    def findings(self, step: int) -> list[Finding]:
        """`optimizer-recreated` for the cores whose optimizer was made anew for each update."""
        found = []
        for core in self._cores.values():
            made, optimizer = core.notes.get("optimizers_made", 1), core.optimizer
            if made >= MIN_MADE and _keeps_state(optimizer):
                message = (
                    f"A new {type(optimizer).__name__} was made for each of {made} updates: each "
                    "starts with no state (the moment estimates and step count of Adam, "
                    "RMSprop's average, a momentum's velocity), so no update builds on the ones "
                    "before (Adam's is about learning_rate * sign(gradient) every time). Create "
                    "the optimizer once, before the training loop."
                )
                details = {"optimizers": made, "optimizer": type(optimizer).__name__}
                found.append(Finding("optimizer-recreated", message, step, details=details))
        return found


def _keeps_state(optimizer: Any) -> bool:
    """Whether an optimizer keeps state between updates beyond its step count and rate."""
    optimizer = _compat.inner_optimizer(optimizer)
    kept = [v for v in optimizer.variables if not v.path.endswith(("iteration", "learning_rate"))]
    return bool(kept)
