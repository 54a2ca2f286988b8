"""Outputs compiled with loss weight 0: the layers feeding only them get no gradient by choice.

``compile(loss_weights={"aux": 0.0})`` switches an output off: the layers feeding only that
output (in a functional model's graph) get exactly zero gradients by the user's choice, so
`zero-gradient` leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradguard import _compat
from gradguard.ledger import key

__all__ = ["variables"]


def variables(model: Any, trained: Sequence[Any]) -> frozenset[int] | None:
    """The indices among `trained` of `model`'s variables feeding only outputs switched off.

    None when no output of `model` is switched off (or its outputs are not known).
    """
    weights = _compat.output_loss_weights(model)
    outputs = getattr(model, "outputs", None) or []
    if not weights or len(outputs) != len(weights) or all(weights.values()):
        return None
    by_name = dict(zip(model.output_names, outputs))
    off = _compat.layers_feeding(by_name[n] for n, w in weights.items() if w == 0)
    on = _compat.layers_feeding(by_name[n] for n, w in weights.items() if w != 0)
    keys = {key(v) for layer in model.layers if id(layer) in off - on for v in layer.weights}
    return frozenset(i for i, v in enumerate(trained) if key(v) in keys)
