"""gradguard: makes TensorFlow custom training loops safe to write.

A training loop that runs but does not learn is told why, in one sentence naming the variable
and the fix; what can be fixed (clipping, skipping non-finite updates) is fixed in-graph.

The public names are imported on first use, so that ``gradguard --help`` and ``--version`` do
not pay TensorFlow's import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gradguard.version import __version__

if TYPE_CHECKING:
    from gradguard import checkpoint, checks, inspect, sinks
    from gradguard.callback import GuardCallback
    from gradguard.decorator import guard, model_report
    from gradguard.errors import (
        ActivationError,
        CheckpointError,
        GradGuardError,
        GradientError,
        LossError,
        NonFiniteError,
        UpdateError,
    )
    from gradguard.findings import CODES, Finding, Report, Severity
    from gradguard.lr_range import LRFindResult, lr_find
    from gradguard.preflight_report import PreflightReport
    from gradguard.preflighting import preflight
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

# Public name -> the module that defines it (None: the name is a submodule).
_WHERE = {
    "CODES": "gradguard.findings",
    "ActivationError": "gradguard.errors",
    "CheckpointError": "gradguard.errors",
    "Finding": "gradguard.findings",
    "GradGuardError": "gradguard.errors",
    "GradientError": "gradguard.errors",
    "LossError": "gradguard.errors",
    "NonFiniteError": "gradguard.errors",
    "Report": "gradguard.findings",
    "Severity": "gradguard.findings",
    "UpdateError": "gradguard.errors",
    "TrainStep": "gradguard.train_step",
    "GuardCallback": "gradguard.callback",
    "LRFindResult": "gradguard.lr_range",
    "lr_find": "gradguard.lr_range",
    "PreflightReport": "gradguard.preflight_report",
    "preflight": "gradguard.preflighting",
    "guard": "gradguard.decorator",
    "model_report": "gradguard.decorator",
    "GradientTransform": "gradguard.transforms",
    "adaptive_clip": "gradguard.transforms",
    "chain": "gradguard.transforms",
    "clip_by_global_norm": "gradguard.transforms",
    "clip_by_norm": "gradguard.transforms",
    "clip_by_value": "gradguard.transforms",
    "identity": "gradguard.transforms",
    "skip_nonfinite": "gradguard.transforms",
    "checkpoint": None,
    "checks": None,
    "inspect": None,
    "sinks": None,
}

__all__ = [
    "ActivationError",
    "CODES",
    "CheckpointError",
    "Finding",
    "GradGuardError",
    "GradientError",
    "GradientTransform",
    "GuardCallback",
    "LRFindResult",
    "LossError",
    "NonFiniteError",
    "PreflightReport",
    "Report",
    "Severity",
    "TrainStep",
    "UpdateError",
    "adaptive_clip",
    "chain",
    "checkpoint",
    "checks",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "guard",
    "identity",
    "inspect",
    "lr_find",
    "model_report",
    "preflight",
    "sinks",
    "skip_nonfinite",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name, "")
    if module == "":
        raise AttributeError(f"module 'gradguard' has no attribute {name!r}")
    value = importlib.import_module(f"gradguard.{name}" if module is None else module)
    if module is not None:
        value = getattr(value, name)
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return __all__
