"""How a guard names the variables in its findings.

Keras paths with the model's name dropped (`stats.names`): the model named to the guard, or,
under ``gradguard run``, the root every variable seen shares (`stats.shared_root`). A variable
the user's code labelled (`Ledger.labels`: an accumulator, a hand-made `tf.Variable`) keeps
that label.
"""

from __future__ import annotations

from typing import Any

from gradguard import stats
from gradguard.ledger import Ledger, key

__all__ = ["VariableNames"]


class VariableNames:
    """Display names of variables, for the model named to the guard (or None) and its ledger."""

    def __init__(self, model: Any, ledger: Ledger):
        self._model, self._ledger = model, ledger

    def model_name(self, variables: list[Any]) -> str:
        """The model's name, dropped from the front of its variables' paths."""
        if self._model is not None:
            return str(getattr(self._model, "name", ""))
        seen = {**self._ledger.requested, **self._ledger.applied}.values()
        return stats.shared_root(seen or variables)

    def __call__(self, variables: list[Any]) -> list[str]:
        shown = stats.names(variables, self.model_name(variables))
        labels = self._ledger.labels
        return [labels.get(key(v), name) for v, name in zip(variables, shown)]
