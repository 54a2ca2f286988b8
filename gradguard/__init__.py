"""gradguard: makes TensorFlow custom training loops safe to write."""

from gradguard.findings import (
    CODES,
    Finding,
    GradGuardError,
    Report,
    Severity,
)

__version__ = "0.1.0"

__all__ = [
    "CODES",
    "Finding",
    "GradGuardError",
    "Report",
    "Severity",
    "__version__",
]
