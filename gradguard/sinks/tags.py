"""The stable TensorBoard tags of the step's statistics (the README lists them).

The part before the first ``/`` is the section TensorBoard groups cards by, so each kind of
statistic gets its own section:

* ``gradguard/loss``, ``gradguard/grad_norm``, ``gradguard/grad_norm_applied``,
  ``gradguard/learning_rate``, ``gradguard/clipped``, ``gradguard/clipped_steps``,
  ``gradguard/skipped``, ``gradguard/skipped_updates``: the whole step.
* ``gradguard_grad_norm/<layer>``, ``gradguard_weight_norm/<layer>``,
  ``gradguard_update_ratio/<layer>``: per layer (per variable, ``<layer>/<variable>``, on
  request). No ratio where the weights are zero, nor where a sampled variable's sample told
  nothing (`deltas.known`), as the live check judges none there.
* ``gradguard_findings/<code>`` (text): each finding, at the step it was first seen.
* ``gradguard/config`` (text, JSON): how the run was recorded, for ``gradguard inspect``.

Checks log their own scalars under tags they declare themselves (`checks.base.Check.scalars`).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CLIPPED",
    "CLIPPED_STEPS",
    "CONFIG",
    "DESCRIPTIONS",
    "FINDINGS",
    "GRAD_NORM",
    "GRAD_NORM_APPLIED",
    "LAYER_GRAD_NORM",
    "LAYER_SECTIONS",
    "LAYER_UPDATE_RATIO",
    "LAYER_WEIGHT_NORM",
    "LEARNING_RATE",
    "LOSS",
    "SKIPPED",
    "SKIPPED_UPDATES",
    "STEP_TAGS",
    "is_gradguard_tag",
]

# The whole step.
LOSS = "gradguard/loss"
GRAD_NORM = "gradguard/grad_norm"
GRAD_NORM_APPLIED = "gradguard/grad_norm_applied"
LEARNING_RATE = "gradguard/learning_rate"
CLIPPED = "gradguard/clipped"
CLIPPED_STEPS = "gradguard/clipped_steps"
SKIPPED = "gradguard/skipped"
SKIPPED_UPDATES = "gradguard/skipped_updates"
# Sections of per-layer (or per-variable) scalars: f"{LAYER_GRAD_NORM}/{layer}".
LAYER_GRAD_NORM = "gradguard_grad_norm"
LAYER_WEIGHT_NORM = "gradguard_weight_norm"
LAYER_UPDATE_RATIO = "gradguard_update_ratio"
# Texts.
FINDINGS = "gradguard_findings"
CONFIG = "gradguard/config"

# The whole-step scalars, in the order the recorder packs them.
STEP_TAGS = (
    LOSS,
    GRAD_NORM,
    GRAD_NORM_APPLIED,
    LEARNING_RATE,
    CLIPPED,
    CLIPPED_STEPS,
    SKIPPED,
    SKIPPED_UPDATES,
)
LAYER_SECTIONS = (LAYER_GRAD_NORM, LAYER_WEIGHT_NORM, LAYER_UPDATE_RATIO)

DESCRIPTIONS: Mapping[str, str] = {
    LOSS: "The step's loss (with regularization losses).",
    GRAD_NORM: "Global L2 norm of the gradients, before gradguard's transforms.",
    GRAD_NORM_APPLIED: "Global L2 norm of the gradients the optimizer got (after clipping).",
    LEARNING_RATE: "The optimizer's learning rate at this step (schedules resolved).",
    CLIPPED: "1 if a transform scaled the gradients down on this step, else 0.",
    CLIPPED_STEPS: "Steps so far on which a transform scaled the gradients down.",
    SKIPPED: "1 if this step's update was skipped (non-finite gradients), else 0.",
    SKIPPED_UPDATES: "Updates skipped so far (non-finite gradients).",
    LAYER_GRAD_NORM: "L2 norm of this layer's gradients, before gradguard's transforms.",
    LAYER_WEIGHT_NORM: "L2 norm of this layer's weights before the update.",
    LAYER_UPDATE_RATIO: "|update| / |weights| for this layer; healthy is about 1e-4 to 1e-2.",
}


def is_gradguard_tag(tag: str) -> bool:
    """Whether `tag` is one gradguard writes (its section starts with ``gradguard``)."""
    return tag.split("/", 1)[0].startswith("gradguard")
