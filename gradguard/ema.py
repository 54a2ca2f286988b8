"""An optimizer's `use_ema` average too slow for the run: `fit` ends on the first weights.

A Keras optimizer with ``use_ema=True`` keeps a moving average of the weights, and `fit` puts
that average into the model when it returns (`finalize_variable_values`). The average starts at
the weights after the first update and moves ``1 - ema_momentum`` of the way each update, so
after ``n`` updates the first step's weights still make up ``ema_momentum ** (n - 1)`` of it.
With an ``ema_momentum`` meant for a run 100 times longer (0.9999 on a few thousand steps) the
model `fit` leaves is mostly its first step's weights: evaluated or saved after `fit`, it is
nearly untrained, while `fit`'s own loss and metrics, taken on the live weights, look trained.
"""

from __future__ import annotations

from typing import Any

from gradguard import _compat, updating
from gradguard.findings import Finding

__all__ = ["STALE", "stale"]

STALE = 0.5  # the first step's weights' share of the average above which it is reported


def stale(optimizer: Any, step: int) -> list[Finding]:
    """`ema-weights-stale` if `optimizer`'s EMA (swapped in by `fit`) is mostly its first step's.

    Args:
      optimizer: The model's optimizer after `fit` returned (a loss scaler's inner one is read).
      step: The step to date the finding at.
    """
    optimizer = _compat.inner_optimizer(optimizer)
    if not getattr(optimizer, "use_ema", False):
        return []
    momentum, updates = float(optimizer.ema_momentum), updating.updates_made(optimizer)
    first = momentum ** max(updates - 1, 0)
    if updates == 0 or first <= STALE:
        return []
    message = (
        f"{type(optimizer).__name__}(use_ema=True, ema_momentum={momentum:g}) averages the "
        f"weights over about {1 / max(1 - momentum, 1e-12):,.0f} updates, but it has made "
        f"{updates}: the average fit put into the model when it returned is still {first:.0%} "
        "the weights of the first step, so the model is nearly untrained after fit (and in "
        "evaluate, predict or a save), while fit's own loss and metrics, taken on the live "
        "weights, look trained. Lower ema_momentum so that 1 / (1 - ema_momentum) is well "
        "below the updates of the run (0.99 averages about 100), or leave use_ema off."
    )
    details = {"ema_momentum": momentum, "updates": updates, "first_step_share": first}
    return [Finding("ema-weights-stale", message, step, details=details)]
