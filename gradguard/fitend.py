"""What `fit`'s own arguments show once it returned (under ``gradguard run``, which wraps it).

Its held-out data against its history (`heldout`), its `class_weight` (`classweights`), its
`sample_weight` (`lossmask`), each judged from what `fit` was given, and the model's
BatchNormalization statistics on its training examples (`bnstats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradguard import bnstats, classweights, heldout, lossmask
from gradguard.findings import Finding

__all__ = ["judge"]


def judge(
    model: Any, notes: Mapping[str, Any], history: Any, arguments: Mapping[str, Any], step: int
) -> list[Finding]:
    """The findings a `fit` of `model` on `arguments` (by name) that returned `history` gives.

    Dated at `step`.

    `notes` are the optimizer's `StepCore` notes (the losses `heldout` compares).
    """
    found = heldout.after_fit(notes, history, arguments, step)
    found += classweights.inverted(arguments, step)
    kept = lossmask.fit_weights_keep_one_label(arguments, step)
    stale = bnstats.stale_statistics(model, arguments, history, step)
    return found + [f for f in (kept, stale) if f is not None]
