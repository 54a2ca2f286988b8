"""A custom step whose logged loss is a tracker it never updates (`loss-not-logged`).

A `train_step` of the user's own returns ``{"loss": self.loss_tracker.result(), ...}`` and never
calls ``self.loss_tracker.update_state(loss)``: a `keras.metrics.Mean` that saw nothing is 0.0,
so `fit` logs a loss of 0.0 at every epoch while the model trains on its real loss. Callbacks
that watch ``loss`` see no change: `EarlyStopping` stops after its patience, `ReduceLROnPlateau`
lowers the rate, `ModelCheckpoint(save_best_only=True)` keeps the first epoch (hunt23 p02:
training stopped after 4 of 40 epochs, accuracy 0.53 against 0.87). The same in a `test_step`
(Keras resets the metrics before evaluating): ``val_loss`` is 0.0 at every epoch, and the
checkpoint kept is the first epoch's (hunt23 p17: MSE 0.24 against 0.05).

Told under ``gradguard run`` when `fit` returns, for a model whose class defines its own step
and a Keras callback that watched that loss: `fit` logged it as exactly 0.0 at each of two or
more epochs, while the loss the train step differentiated, at its latest update, was not near
0. (Without such a callback the 0.0 only shows in the logs, which the user reads: a step that
returns its batch's loss is logged so too, Keras logging the model's metrics instead.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradguard import _compat, monitors
from gradguard.findings import Finding, number

__all__ = ["never_updated"]

_STEPS = {"loss": "train_step", "val_loss": "test_step"}  # what logs each, in the model
_EFFECTS = {  # what a constant 0.0 makes of each callback that watches it
    "EarlyStopping": "stops after its patience",
    "ModelCheckpoint": "keeps the first epoch (save_best_only)",
    "ReduceLROnPlateau": "lowers the rate after each patience",
}


def never_updated(
    model: Any, history: Any, callbacks: Any, trained: float, step: int
) -> list[Finding]:
    """`loss-not-logged` for a loss `fit` logged as 0.0 at every epoch that a callback watched."""
    if not np.isfinite(trained) or abs(trained) < 1e-6:
        return []  # (a loss that really is 0: fitted exactly)
    found = []
    for key, method in _STEPS.items():
        logged = (getattr(history, "history", None) or {}).get(key) or []
        if len(logged) < 2 or any(float(v) != 0.0 for v in logged):
            continue
        owner = next(c for c in type(model).__mro__ if method in vars(c))
        misled = [
            f"{type(c).__name__}(monitor={key!r}) {_EFFECTS[kind]}"
            for c in getattr(callbacks, "callbacks", callbacks) or ()
            if (kind := monitors.keeps_best(c)) and getattr(c, "monitor", None) == key
        ]
        if owner is _compat.KERAS_TRAINER or not misled:  # (Keras' own step updates it)
            continue
        message = (
            f"fit logged a {key} of 0.0 at each of its {len(logged)} epochs, while the loss "
            f"the train step differentiated was {number(trained)} at its latest update: "
            f"{type(model).__name__}.{method} never updates the tracker fit logs as {key!r} "
            f"(Keras logs the model's metrics, not what the step returns), so "
            f"{'; '.join(misled)}. Update it in {method}: self.loss_tracker.update_state(loss) "
            "for a tracker of your own listed in metrics (for the model's own, the metric "
            "named 'loss' in self.metrics)."
        )
        details = {"logged": key, "epochs": len(logged), "trained_loss": float(trained)}
        found.append(Finding("loss-not-logged", message, step, details=details))
    return found
