"""What `fit`'s own arguments show once it returned (under ``gradguard run``, which wraps it).

Its held-out data against its history (`heldout`), its `class_weight` (`classweights`) and its
`sample_weight` (`lossmask`), each judged from what `fit` was given; the weights `fit` put into
the model at its end, an optimizer's moving average (`ema`); a metric that cannot score
probabilities (`exactaccuracy`); and the model's predictions on `fit`'s arrays, the same for
every example (`collapsed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradguard import classweights, collapsed, ema, exactaccuracy, heldout, lossmask, output_layer
from gradguard.findings import Finding

__all__ = ["judge"]


def judge(
    model: Any, notes: Mapping[str, Any], history: Any, arguments: Mapping[str, Any], step: int
) -> list[Finding]:
    """The findings `fit`'s arguments (by name) and `history` give about `model`, at `step`.

    `notes` are the optimizer's `StepCore` notes (the losses `heldout` compares).
    """
    found = heldout.after_fit(notes, history, arguments, step)
    output = output_layer.of(model)
    misnumbered = classweights.misnumbered(arguments, output and output[1][-1], step)
    found += misnumbered or classweights.inverted(arguments, step)
    found += ema.stale(model.optimizer, step)
    found += exactaccuracy.always_zero(model, history, arguments.get("callbacks"), step)
    kept = lossmask.fit_weights_keep_one_label(arguments, step)
    found += collapsed.after_fit(model, arguments, step)
    return found + ([] if kept is None else [kept])
