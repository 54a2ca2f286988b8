"""tf.keras 2 names set on a Keras 3 optimizer, never read (`optimizer-setting-ignored`).

A learning-rate callback written for tf.keras 2 sets ``model.optimizer.lr = new_rate``. Keras 3
optimizers have no ``lr``: the assignment makes a new Python attribute, nothing fails, and the
learning rate stays where it was (a step decay that never decays: held-out R² 0.81 against
0.85, and a run started at 0.1 diverges). ``decay`` (tf.keras 2's per-step decay) is the same.
Setting ``lr.assign(...)`` or ``K.set_value(optimizer.lr, ...)`` raises instead: those are found
by the user.

Read at every host read (`StepCore.read`, so by every entry point): Keras' own optimizer
classes holding one of these names as an instance attribute. A user's optimizer class may keep
its own ``lr`` and read it: not judged.
"""

from __future__ import annotations

from typing import Any

from gradguard import _compat, updating
from gradguard.findings import Finding, number

__all__ = ["ignored_settings"]

# tf.keras 2 names Keras 3 optimizers do not have, and what to set instead.
_OLD_NAMES = {
    "lr": "optimizer.learning_rate = new_rate",
    "decay": "a schedule, keras.optimizers.schedules.InverseTimeDecay, as the learning_rate",
}


def ignored_settings(optimizer: Any, step: int) -> list[Finding]:
    """`optimizer-setting-ignored` for each tf.keras 2 name set on Keras' own `optimizer`."""
    found = []
    for each in dict.fromkeys([optimizer, _compat.inner_optimizer(optimizer)]):
        if not type(each).__module__.startswith("keras."):
            continue  # (a user's class may read its own `lr`)
        kept = getattr(each, "__dict__", {})
        for name in (name for name in _OLD_NAMES if name in kept):
            rate = updating.learning_rate_value(each)
            now = "" if rate is None else f" (its learning rate is {number(rate)})"
            value = kept[name]
            shown = number(value) if isinstance(value, (int, float)) else repr(value)
            message = (
                f"optimizer.{name} was set (to {shown}) on the "
                f"{type(each).__name__} optimizer: a tf.keras 2 name that Keras 3 optimizers "
                f"do not read, so nothing changed{now}. Set "
                f"{_OLD_NAMES[name]} instead (keras.callbacks.LearningRateScheduler does it "
                "each epoch)."
            )
            details = {"attribute": name, "optimizer": type(each).__name__}
            found.append(Finding("optimizer-setting-ignored", message, step, details=details))
    return found
