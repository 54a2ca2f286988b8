"""`frozen-untrained`: frozen layers that still hold exactly what their initializers drew.

The transfer-learning recipe (freeze the base, train a new head) applied to a base that was
never trained: ``keras.applications.MobileNetV2(weights=None)``, a ``load_weights`` that was
skipped or failed, a base built from scratch. The head then learns from fixed random features,
and nothing else looks wrong: gradients flow, updates are healthy, the loss falls a little.

A Keras initializer seeded at construction (an integer, or none: Keras picks one then) draws
the same values on every call, so a variable that was never trained nor loaded is, bit for
bit, a fresh call of its layer's initializer; any update, load or assignment changes it. Only
random initializers count (a `Constant` or `Identity` kernel is a fixed transform on purpose),
and only in layers that feed a trained layer of a functional or Sequential model (a frozen
random target, as random network distillation's, is compared with, not read by, the trained
layers; nor is a GAN's discriminator frozen inside the combined model, which reads the
generator). Judged once per model, at the first read from `AFTER` steps on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from gradguard import _compat
from gradguard.findings import Finding, listing

__all__ = ["AFTER", "FrozenUntrained"]

AFTER = 20  # steps before a model's frozen layers are judged
MIN_LAYERS = 2  # a frozen base, not one random-feature layer (an extreme learning machine)
MAX_DRAWN = 1 << 22  # larger variables (a vocabulary's embeddings) are not drawn again
# A layer's variables and the attributes holding their initializers.
_INITIALIZED = {
    "kernel": "kernel_initializer",
    "recurrent_kernel": "recurrent_initializer",
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
    "embeddings": "embeddings_initializer",
}


def _untouched(layer: Any, trainable: set[int]) -> bool:
    """Whether `layer` has frozen variables of random initializers, all exactly as drawn."""
    drawn = []
    for name, initializer_name in _INITIALIZED.items():
        variable, initializer = getattr(layer, name, None), getattr(layer, initializer_name, None)
        if variable is None or initializer is None or id(variable) in trainable:
            continue
        if np.prod(variable.shape) > MAX_DRAWN:
            return False  # (not known: not claimed)
        config = initializer.get_config() if hasattr(initializer, "get_config") else {}
        if "seed" not in config:  # not a random initializer
            continue
        drawn.append((variable, initializer))
    return bool(drawn) and all(
        np.array_equal(np.asarray(v), np.asarray(initializer(v.shape, v.dtype)))
        for v, initializer in drawn
    )


class FrozenUntrained:
    """Judges each model's frozen layers once (`frozen-untrained`)."""

    def __init__(self) -> None:
        self._judged: set[int] = set()

    def judge(self, models: Iterable[Any], step: int, final: bool = False) -> list[Finding]:
        """`frozen-untrained` for each of `models` (None: none), judged once from `AFTER` steps on.

        A run shorter than that is judged at its last read (`final`).
        """
        if step < AFTER and not final:
            return []
        found = [self._judge(model, step) for model in models if model is not None]
        return [finding for finding in found if finding is not None]

    def _judge(self, model: Any, step: int) -> Finding | None:
        if id(model) in self._judged:
            return None
        self._judged.add(id(model))
        if not getattr(model, "inputs", None):  # a subclassed model: what feeds what is unknown
            return None
        trainable = {id(v) for v in model.trainable_variables}
        fed = set()  # the top-level layers that feed a trained one: only those are drawn again
        for top in model.layers:
            if any(id(v) in trainable for v in top.weights) and top._inbound_nodes:
                fed |= _compat.layers_feeding(top._inbound_nodes[0].input_tensors)
        names = [
            sub.name if sub is top else f"{top.name}/{sub.name}"
            for top in model.layers
            if id(top) in fed
            for sub in _compat.flatten_layers(top)
            if _untouched(sub, trainable)
        ]
        if len(names) < MIN_LAYERS:
            return None
        message = (
            f"The frozen layers {listing(names)} hold exactly the values their initializers "
            f"drew, after {step + 1} steps: they were never trained nor loaded, so the layers "
            "after them learn from fixed random features. Load the pretrained weights before "
            "freezing (weights='imagenet', load_weights, and check that it matched the "
            "layers), or let these layers train (trainable=True)."
        )
        return Finding("frozen-untrained", message, step, details={"layers": names})
