"""gradguard: makes TensorFlow custom training loops safe to write.

A training loop that runs but does not learn is told why, in one sentence naming the variable
and the fix; what can be fixed (clipping, skipping non-finite updates) is fixed in-graph.
"""

from gradguard import checkpoint, checks, sinks
from gradguard.decorator import guard, model_report
from gradguard.findings import (
    CODES,
    ActivationError,
    CheckpointError,
    Finding,
    GradGuardError,
    GradientError,
    LossError,
    NonFiniteError,
    Report,
    Severity,
    UpdateError,
)
from gradguard.train_step import TrainStep
from gradguard.transforms import (
    GradientTransform,
    adaptive_clip,
    chain,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    identity,
    skip_nonfinite,
)
from gradguard.version import __version__

__all__ = [
    "CODES",
    "ActivationError",
    "CheckpointError",
    "Finding",
    "GradGuardError",
    "GradientError",
    "GradientTransform",
    "LossError",
    "NonFiniteError",
    "Report",
    "Severity",
    "TrainStep",
    "UpdateError",
    "__version__",
    "adaptive_clip",
    "chain",
    "checkpoint",
    "checks",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "guard",
    "identity",
    "model_report",
    "sinks",
    "skip_nonfinite",
]
