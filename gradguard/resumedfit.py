"""A resumed `fit` whose epoch-indexed learning-rate schedule starts over.

`keras.callbacks.LearningRateScheduler` sets the rate from the epoch number, and `fit` numbers
epochs from `initial_epoch` (0 unless given). A job restarted from a saved model
(`keras.models.load_model`, a restored checkpoint) whose `fit` leaves out `initial_epoch` trains
at epoch 0's rate again: hunt27 b07, 1e-2 after twelve epochs decayed to 2.2e-5 (held-out MSE
0.062 against 0.036 with ``initial_epoch=12``).

Told at `fit`'s start (`gradguard run`), on the first `fit` of a model: its optimizer has made
updates already (restored), `initial_epoch` is 0, and a scheduler's epoch-0 rate is at least
`RAISED` times the optimizer's rate now. A new stage compiles a fresh optimizer (no updates); a
model fitted again in the same script numbers its epochs as the script asks: both silent.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import keras

from gradguard import updating
from gradguard.findings import Finding, Severity

__all__ = ["RAISED", "ResumedFits"]

RAISED = 10.0  # a scheduler's epoch-0 rate this many times the rate the optimizer resumes at


class ResumedFits:
    """The first `fit` of each model: does it restart an epoch-indexed schedule?"""

    def __init__(self) -> None:
        self._fitted: weakref.WeakSet[Any] = weakref.WeakSet()

    def given(self, model: Any, arguments: Mapping[str, Any]) -> list[Finding]:
        """`fit` starts on `arguments`: the finding if it restarts a resumed schedule."""
        first = model not in self._fitted
        self._fitted.add(model)
        optimizer = getattr(model, "optimizer", None)
        if not first or arguments.get("initial_epoch") or optimizer is None:
            return []
        updates = updating.updates_made(optimizer)
        rate = updating.learning_rate_value(optimizer)
        if updates <= 0 or not rate:
            return []
        for callback in arguments.get("callbacks") or ():
            if isinstance(callback, keras.callbacks.LearningRateScheduler):
                first_rate = _epoch_zero_rate(callback, rate)
                if first_rate is not None and first_rate >= RAISED * rate:
                    return [_finding(model, optimizer, updates, rate, first_rate)]
        return []


def _epoch_zero_rate(scheduler: Any, rate: float) -> float | None:
    """What the scheduler sets at epoch 0 (called as Keras calls it); None if it fails."""
    try:
        try:
            return float(scheduler.schedule(0, rate))
        except TypeError:  # (an old-style schedule of the epoch alone)
            return float(scheduler.schedule(0))
    except Exception:  # noqa: BLE001 - the user's function: never break the script
        return None


def _finding(model: Any, optimizer: Any, updates: int, rate: float, first_rate: float) -> Finding:
    message = (
        f"fit resumes {model.name}, whose {type(optimizer).__name__} has made {updates} "
        f"updates already, with initial_epoch=0: its LearningRateScheduler starts again at "
        f"epoch 0's rate {first_rate:.3g}, {first_rate / rate:.0f}x the rate it resumes at "
        f"({rate:.3g}). Pass initial_epoch=<the epochs already trained> to fit so that the "
        f"schedule goes on."
    )
    return Finding(
        "checkpoint-optimizer-config-changed",
        message,
        -1,  # (at a fit's start, not at a step)
        ("learning_rate",),
        Severity.WARNING,
        details={"changed": {"learning_rate": {"saved": rate, "current": first_rate}}},
    )
