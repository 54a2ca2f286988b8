"""A custom `train_step` whose logged loss is a tracker it never updates (`loss-not-logged`).

A `train_step` of the user's own returns ``{"loss": self.loss_tracker.result(), ...}`` and never
calls ``self.loss_tracker.update_state(loss)``: a `keras.metrics.Mean` that saw nothing is 0.0,
so `fit` logs a loss of 0.0 at every epoch while the model trains on its real loss. Callbacks
that watch ``loss`` see no change: `EarlyStopping` stops after its patience, `ReduceLROnPlateau`
lowers the rate, `ModelCheckpoint(save_best_only=True)` keeps the first epoch (hunt23 p02:
training stopped after 4 of 40 epochs, accuracy 0.53 against 0.87).

Told under ``gradguard run`` when `fit` returns, for a model whose class defines its own
`train_step`: `fit` logged a loss of exactly 0.0 at each of two or more epochs, while the loss
the step differentiated, at its latest update, was not near 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradguard import _compat
from gradguard.findings import Finding, number

__all__ = ["never_updated"]


def never_updated(model: Any, history: Any, trained: float, step: int) -> list[Finding]:
    """`loss-not-logged` if `fit` logged 0.0 at every epoch while `trained` was the loss."""
    logged = (getattr(history, "history", None) or {}).get("loss") or []
    if len(logged) < 2 or any(float(v) != 0.0 for v in logged):
        return []
    if not np.isfinite(trained) or abs(trained) < 1e-6:
        return []  # (a loss that really is 0: fitted exactly)
    owner = next(c for c in type(model).__mro__ if "train_step" in vars(c))
    if owner is _compat.KERAS_TRAINER:  # (Keras' own step updates its tracker)
        return []
    message = (
        f"fit logged a loss of 0.0 at each of its {len(logged)} epochs, while the loss "
        f"{type(model).__name__}.train_step differentiated was {number(trained)} at its latest "
        "update: it returns a loss tracker it never updates. Callbacks that watch 'loss' "
        "see no change (EarlyStopping stops, ReduceLROnPlateau lowers the rate). Call "
        "self.loss_tracker.update_state(loss) in train_step before returning its result."
    )
    details = {"epochs": len(logged), "trained_loss": float(trained)}
    return [Finding("loss-not-logged", message, step, details=details)]
