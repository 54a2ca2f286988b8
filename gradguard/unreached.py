"""Variables read in the forward pass that never got a gradient, and why (`none-gradient`).

A variable the tape watched and the loss's graph read, but that never got a gradient, is cut
from the loss somewhere. A trace of the model it belongs to (`diagnose.model_breaks`) tells
where: cut inside the model, or its result discarded there. An output head the loss does not
use reaches the model's outputs: not reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gradguard import diagnose
from gradguard.findings import Finding
from gradguard.ledger import Ledger, key
from gradguard.tap import Tap

__all__ = ["Unreached"]


class Unreached:
    """Explains, once each, the variables read that never got a gradient.

    Args:
      tap: The layer calls the guard saw (the models traced).
      ledger: What the user's code did with the variables.
      names: Display names of variables.
    """

    def __init__(self, tap: Tap, ledger: Ledger, names: Callable[[list[Any]], list[str]]):
        self._tap, self._ledger, self._names = tap, ledger, names
        self._diagnosed: set[int] = set()  # variables whose missing gradient was explained

    def findings(self, step: int) -> list[Finding]:
        """`none-gradient` for variables read that never got a gradient, when it is known why."""
        ledger = self._ledger
        requested = list(ledger.requested.items())
        unreached = [
            i
            for i, (k, _) in enumerate(requested)
            if k in ledger.watched and k not in ledger.with_gradient and k not in self._diagnosed
        ]
        if not unreached or not ledger.with_gradient:
            return []
        self._diagnosed |= {requested[i][0] for i in unreached}
        causes: dict[int, str] = {}
        # The largest model first: the one whose outputs the loss is computed from.
        models = sorted(self._tap.models(), key=lambda m: -len(m[0].trainable_variables))
        for model, spec in models:
            members = {key(v) for v in model.trainable_variables}
            mine = [i for i in unreached if requested[i][0] in members and i not in causes]
            if mine:
                causes.update(_breaks(model, spec, [requested[i][1] for i in mine], mine))
        if not causes:
            return []
        names = self._names([v for _, v in requested])
        return [diagnose.none_gradient_finding(names, sorted(causes), causes, step)]


def _breaks(model: Any, spec: Any, variables: Sequence[Any], indices: list[int]) -> dict[int, str]:
    try:
        found = diagnose.model_breaks(model, spec, variables)
    except Exception:  # noqa: BLE001 - a model that cannot be traced alone says nothing
        return {}
    return {indices[j]: cause for j, cause in found.items()}
