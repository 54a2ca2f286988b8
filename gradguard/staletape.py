"""Gradients of a tape recorded before an update, applied after it (`tape-reused-after-update`).

A tape records the forward pass once; each `tape.gradient` call on a persistent tape
differentiates that recording, the weights as they were then. A loop that updates several times
on one batch ("K epochs per batch", PPO-style) and takes each update's gradients from the one
tape applies the first step's gradients K times: the loss is never seen at the weights each
update makes, and momentum stacks the copies (hunt22 p14: held-out MSE 0.130 against 0.042 with
the loss recomputed per update). Nothing fails.

Told at the update that applies such gradients: they were taken from a tape that had given
gradients before, of variables an optimizer has updated since that tape's first gradient call.
Silent for several losses differentiated before any update (a GAN's two players from one
persistent tape, even with one player's update between: the other's variables did not change),
gradients accumulated over micro-batches (no update between), gradients taken again only to be
logged (not applied), and a new tape per update. In a traced step, stale gradients clipped or
scaled before the update still count (PPO-style loops clip them).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from gradguard.carried import carries
from gradguard.findings import Finding, listing

__all__ = ["StaleTapes"]


class StaleTapes:
    """Each tape's first gradient call, against the updates since."""

    def __init__(self) -> None:
        self._updates: dict[int, int] = {}  # each variable's update count, by id
        # Per tape, the update count of each variable at the tape's first gradient of it.
        self._first: weakref.WeakKeyDictionary[Any, dict[int, int]] = weakref.WeakKeyDictionary()
        self._stale: list[tuple[Any, Any]] = []  # (variable, gradient) taken from a stale tape
        self._reported = False

    def on_gradient(self, tape: Any, pairs: Sequence[tuple[Any, Any]]) -> None:
        """A `tape.gradient` call on `tape` gave `pairs` (variable, gradient)."""
        first = self._first.setdefault(tape, {})
        self._stale = [
            (v, g)
            for v, g in pairs
            if g is not None and self._updates.get(id(v), 0) > first.get(id(v), 1 << 62)
        ]
        for v, _ in pairs:
            first.setdefault(id(v), self._updates.get(id(v), 0))

    def on_apply(
        self,
        grads: Sequence[Any],
        variables: Sequence[Any],
        step: int,
        names: Callable[[list[Any]], list[str]],
    ) -> list[Finding]:
        """An update of `variables` by `grads`: `tape-reused-after-update` if stale (once).

        `names` gives variables their display names (the guard's `naming.VariableNames`).
        """
        stale = [v for v, g in self._stale if any(carries(applied, [g]) for applied in grads)]
        for v in variables:
            self._updates[id(v)] = self._updates.get(id(v), 0) + 1
        if not stale or self._reported:
            return []
        self._reported = True
        shown = names(stale)
        message = (
            f"The gradients applied to {listing(shown, 3)} come from a tape that recorded the "
            "forward pass before an earlier update changed them: a persistent tape "
            "differentiates its one recording, so each update on it repeats the first step's "
            "gradients, and the loss at the weights each update makes is never seen. Record the "
            "forward pass anew (a new tf.GradientTape, the loss recomputed) before each update."
        )
        return [Finding("tape-reused-after-update", message, step, tuple(shown))]
