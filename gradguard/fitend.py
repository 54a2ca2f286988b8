"""What `fit`'s own arguments show once it returned (under ``gradguard run``, which wraps it).

Its held-out data against its history (`heldout`), its `class_weight` (`classweights`) and its
`sample_weight` (`lossmask`), each judged from what `fit` was given; the weights `fit` put into
the model at its end, an optimizer's moving average (`ema`); a metric that cannot score
probabilities (`exactaccuracy`); the model's predictions on `fit`'s arrays, the same for every
example (`collapsed`); and a loss logged as 0.0 while the step trained on another
(`loggedloss`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gradguard import (
    classweights,
    collapsed,
    ema,
    exactaccuracy,
    heldout,
    loggedloss,
    lossmask,
    output_layer,
)
from gradguard.findings import Finding

if TYPE_CHECKING:
    from gradguard.core import StepCore

__all__ = ["judge"]


def judge(model: Any, core: StepCore, history: Any, arguments: Mapping[str, Any]) -> list[Finding]:
    """The findings `fit`'s arguments (by name) and `history` give about `model`.

    `core` is its optimizer's `StepCore`: its notes (the losses `heldout` compares), its latest
    loss, and its step count, at which the findings are dated.
    """
    step = core.steps - 1
    found = heldout.after_fit(core.notes, history, arguments, step)
    output = output_layer.of(model)
    misnumbered = classweights.misnumbered(arguments, output and output[1][-1], step)
    found += misnumbered or classweights.inverted(arguments, step)
    found += ema.stale(model.optimizer, step)
    found += exactaccuracy.always_zero(model, history, arguments.get("callbacks"), step)
    kept = lossmask.fit_weights_keep_one_label(arguments, step)
    found += collapsed.after_fit(model, arguments, step)
    callbacks, latest = arguments.get("callbacks"), core.statistics()["loss"]
    found += loggedloss.never_updated(model, history, callbacks, latest, step)
    return found + ([] if kept is None else [kept])
