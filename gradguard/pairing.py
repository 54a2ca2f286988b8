"""Gradients handed to the wrong variables: `zip(grads, [b, w])` after the tape asked for [w, b].

`apply_gradients` pairs gradients with variables by position. When the list zipped with the
gradients is not in the order `tape.gradient` was asked for (and the shapes happen to agree, so
Keras does not raise), each variable is moved by another one's gradient: training diverges or
settles on wrong values, with nothing else to show for it.

The sign is exact and needs no statistics: a gradient object `tape.gradient` returned for one of
its sources is applied to another of the same call's sources. Applying a gradient to a variable
that was not a source is not flagged: A3C workers apply their local network's gradients to the
global network's variables on purpose. Judged when the code runs (at trace time inside a
`tf.function`): nothing is added to the step.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from gradguard.findings import Finding

__all__ = ["Pairing"]


class Pairing:
    """The latest gradient call's gradients and the variables they are of."""

    def __init__(self, key: Callable[[Any], int]) -> None:
        self._key = key  # one key per variable (`ledger.key`)
        # id(gradient) -> (a weak reference to it, its variable): no gradient is kept alive,
        # and an id reused by a later tensor is told by the reference.
        self._of: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def on_gradient(self, pairs: Sequence[tuple[Any, Any]]) -> None:
        """A `tape.gradient` call: (variable, gradient or None) per variable asked for."""
        self._of = {id(g): (weakref.ref(g), v) for v, g in pairs if g is not None}

    def misapplied(
        self,
        grads: Sequence[Any],
        variables: Sequence[Any],
        names: Callable[[list[Any]], list[str]],
        step: int,
    ) -> list[Finding]:
        """The finding (one) when an update hands a source's gradient to another source."""
        sources = {self._key(v) for _, v in self._of.values()}
        swapped = []  # (variable updated, variable whose gradient it got)
        for grad, variable in zip(grads, variables):
            grad_of = self._of.get(id(grad))
            if grad_of is None or grad_of[0]() is not grad:
                continue
            owner = grad_of[1]
            if self._key(owner) != self._key(variable) and self._key(variable) in sources:
                swapped.append((variable, owner))
        if not swapped:
            return []
        updated = names([v for v, _ in swapped])
        owners = names([o for _, o in swapped])
        moves = ", ".join(f"{u} got the gradient of {o}" for u, o in zip(updated, owners))
        finding = Finding(
            "gradient-misassigned",
            f"Gradients were applied to the wrong variables ({moves}): apply_gradients pairs "
            "gradients with variables by position, and the variables zipped with the gradients "
            "are not in the order tape.gradient was given; zip the gradients with the same list "
            "the tape was asked for.",
            step=step,
            variables=tuple(updated),
        )
        return [finding]
