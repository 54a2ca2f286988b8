"""The errors gradguard raises: one class per family of findings, each carrying its finding.

`findings.CODES` says which class each code raises when its policy is `raise`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradguard.findings import Finding

__all__ = [
    "ActivationError",
    "CheckpointError",
    "GradGuardError",
    "GradientError",
    "LossError",
    "NonFiniteError",
    "UpdateError",
]


class GradGuardError(Exception):
    """Raised for a finding whose policy is `raise`; `.finding` holds it."""

    # Raised while a tf.function traces, it reaches the caller as itself, not as autograph's
    # StagingError (tensorflow/python/autograph/impl/api.py).
    ag_pass_through = True

    def __init__(self, finding: Finding):
        super().__init__(f"[{finding.code}] {finding.message}")
        self.finding = finding


class GradientError(GradGuardError):
    """Gradients that cannot train the model: missing, zero, exploding or vanishing."""


class UpdateError(GradGuardError):
    """Optimizer updates that are missing, ineffective, too small or too large."""


class NonFiniteError(GradGuardError):
    """NaN or Inf in the loss, a gradient or a weight."""


class LossError(GradGuardError):
    """A loss that does not decrease, silently broadcasts its inputs, or cannot learn from them.

    Also `preflight`'s loss findings: an unexpected initial loss, outputs that disagree with
    `from_logits`, a batch the model cannot overfit, labels that carry no information.
    """


class ActivationError(GradGuardError):
    """Activations that make units useless (dead ReLUs)."""


class CheckpointError(GradGuardError):
    """A checkpoint that does not match the model or optimizer, or cannot be read."""
