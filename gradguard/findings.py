"""Findings: what gradguard tells the user, the catalog of codes, and the errors that carry them.

A `Finding` is one diagnosis: a stable `code` (see `CODES`), a `severity`, a one-sentence
`message` naming the variables, the numbers seen and the likely fix, the `step` it was first seen
at and the `variables` it concerns. A `Report` keeps findings deduplicated by code and variables
and serializes to the JSON contract of DESIGN.md.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from absl import logging

from gradguard.version import __version__

__all__ = [
    "CODES",
    "GUIDE",
    "ActivationError",
    "CheckpointError",
    "Finding",
    "GradGuardError",
    "GradientError",
    "LossError",
    "NonFiniteError",
    "Policies",
    "Policy",
    "Report",
    "Severity",
    "UpdateError",
    "guide_section",
    "listing",
    "names",
    "number",
    "pointer",
    "resolve_policy",
]

# The troubleshooting guide, shipped in the package: one section per code, headed by the code.
# `gradguard explain CODE` prints a section; every finding's message points there.
GUIDE = "guide.md"
_POINTER = re.compile(r" \(see: gradguard explain [a-z-]+\)")


def pointer(code: str) -> str:
    """The short pointer every finding's message ends with: ``(see: gradguard explain code)``."""
    return f"(see: gradguard explain {code})"


def guide_section(code: str) -> str:
    """The troubleshooting guide's section for `code` (what ``gradguard explain`` prints).

    Raises:
      KeyError: for a code the guide has no section for.
    """
    text = resources.files("gradguard").joinpath(GUIDE).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(code)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise KeyError(code)
    return match.group(0).rstrip() + "\n"


def _with_pointer(message: str, code: str) -> str:
    """`message` ending with the pointer to its guide section, exactly once.

    A pointer already in the message (a finding rebuilt with `dataclasses.replace`, or one with
    text added after it) is moved to the end. It goes before a final period, so the message
    still reads as one sentence: ``... after tape.gradient (see: gradguard explain missing-apply).``
    """
    text = _POINTER.sub("", message).rstrip()
    if text.endswith("."):
        return f"{text[:-1]} {pointer(code)}."
    return f"{text} {pointer(code)}" if text else pointer(code)


class Severity(str, enum.Enum):
    """How bad a finding is; the default policy follows from it."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Policy(str, enum.Enum):
    """What to do when a finding is made."""

    RAISE = "raise"
    WARN = "warn"
    IGNORE = "ignore"


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
    """A loss that does not decrease or that silently broadcasts its inputs."""


class ActivationError(GradGuardError):
    """Activations that make units useless (dead ReLUs)."""


class CheckpointError(GradGuardError):
    """A checkpoint that does not match the model or optimizer, or cannot be read."""


@dataclasses.dataclass(frozen=True)
class CodeInfo:
    """Catalog entry: default severity, the error class raised, and what the code means."""

    severity: Severity
    error: type[GradGuardError]
    meaning: str


_E, _W = Severity.ERROR, Severity.WARNING
CODES: Mapping[str, CodeInfo] = {
    "none-gradient": CodeInfo(_E, GradientError, "a trainable variable got a None gradient"),
    "zero-gradient": CodeInfo(_E, GradientError, "the gradient is exactly zero on every step"),
    "missing-apply": CodeInfo(_E, UpdateError, "gradients computed but no update applied"),
    "weights-unchanged": CodeInfo(_E, UpdateError, "an update was applied, weights unchanged"),
    "update-too-small": CodeInfo(_W, UpdateError, "update-to-weight ratio far below healthy"),
    "update-too-large": CodeInfo(_W, UpdateError, "update-to-weight ratio far above healthy"),
    "exploding-gradient": CodeInfo(_W, GradientError, "gradient norm very large or growing"),
    "vanishing-gradient": CodeInfo(_W, GradientError, "early-layer gradients far below later"),
    "non-finite": CodeInfo(_E, NonFiniteError, "NaN or Inf in the loss, a gradient or a weight"),
    "dead-units": CodeInfo(_W, ActivationError, "units that never activate"),
    "loss-not-decreasing": CodeInfo(_W, LossError, "the loss has not improved"),
    "variable-not-trained": CodeInfo(_W, UpdateError, "a trainable variable is never updated"),
    "loss-broadcast": CodeInfo(_W, LossError, "y_true and y_pred broadcast in the loss"),
    "checkpoint-shape-mismatch": CodeInfo(_E, CheckpointError, "saved shape differs"),
    "checkpoint-dtype-mismatch": CodeInfo(_E, CheckpointError, "saved dtype differs"),
    "checkpoint-missing-variables": CodeInfo(_E, CheckpointError, "variables with no value"),
    "checkpoint-unexpected-variables": CodeInfo(_W, CheckpointError, "values with no variable"),
    "checkpoint-corrupt": CodeInfo(_E, CheckpointError, "the checkpoint cannot be read whole"),
    "checkpoint-optimizer-config-changed": CodeInfo(
        _W, CheckpointError, "optimizer hyperparameters differ from save time"
    ),
    "checkpoint-optimizer-state-not-restored": CodeInfo(
        _E, CheckpointError, "saved optimizer slots did not reach the optimizer"
    ),
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosis.

    Attributes:
      code: A key of `CODES`.
      severity: `Severity`; defaults to the code's catalog severity.
      message: One sentence: what was seen (variables, numbers) and the likely fix. It is
        made to end with a pointer to the code's section of the troubleshooting guide,
        ``(see: gradguard explain <code>)``.
      step: The 0-based training step at which it was first seen (-1 if not tied to a step).
      variables: Names of the variables (or layers) concerned, e.g. ``("dense/kernel",)``.
      details: Numbers behind the message, JSON-serializable.
      count: How many times the same finding (code and variables) was made.
    """

    code: str
    message: str
    step: int = -1
    variables: tuple[str, ...] = ()
    severity: Severity | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    count: int = 1

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}; known: {sorted(CODES)}")
        if self.severity is None:
            object.__setattr__(self, "severity", CODES[self.code].severity)
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "message", _with_pointer(str(self.message), self.code))

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What makes two findings the same one."""
        return (self.code, self.variables)

    def error(self) -> GradGuardError:
        """The exception that carries this finding."""
        return CODES[self.code].error(self)

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN.md JSON form."""
        assert self.severity is not None
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "step": int(self.step),
            "variables": list(self.variables),
            "details": _jsonable(self.details),
            "count": int(self.count),
        }


def _jsonable(value: Any) -> Any:
    """Converts numpy scalars and tuples in details to plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class Policies(dict[str, Policy]):
    """The policy for every code, and which codes the user set.

    Indexing by code gives the code's policy (its default follows the code's catalog
    severity); `of` gives the policy for one finding: the user's for its code if set, else one
    that follows the finding's own severity, so that a finding of a code that is an error by
    default but made as a warning (a partly unused head's `none-gradient`) is only logged.
    """

    def __init__(self, policies: Mapping[str, Policy], explicit: Iterable[str] = ()):
        super().__init__(policies)
        self.explicit = frozenset(explicit)

    def of(self, finding: Finding) -> Policy:
        """The policy that applies to `finding`."""
        if finding.code in self.explicit:
            return self[finding.code]
        return Policy.RAISE if finding.severity is Severity.ERROR else Policy.WARN

    def overriding(self, code: str, policy: Policy) -> Policies:
        """A copy in which `code` has `policy`, as if the user had set it."""
        return Policies({**self, code: policy}, self.explicit | {code})


def resolve_policy(policy: Mapping[str, str | Policy] | None) -> Policies:
    """Returns the policy for every code: user overrides on top of severity defaults.

    Errors raise, warnings and infos are logged.

    Raises:
      ValueError: for an unknown code or policy name.
    """
    resolved = {
        code: Policy.RAISE if info.severity is Severity.ERROR else Policy.WARN
        for code, info in CODES.items()
    }
    for code, value in (policy or {}).items():
        if code not in CODES:
            raise ValueError(f"policy names unknown finding code {code!r}; known: {sorted(CODES)}")
        try:
            resolved[code] = Policy(value)
        except ValueError:
            raise ValueError(
                f"policy for {code!r} is {value!r}; use one of 'raise', 'warn', 'ignore'."
            ) from None
    return Policies(resolved, explicit=(policy or {}).keys())


class Report:
    """Findings deduplicated by code and variables, in the order first seen.

    Example:
      >>> report = Report()
      >>> report.add(Finding("zero-gradient", "dense/bias got a zero gradient.", step=3))
      True
      >>> report.to_dict()["findings"][0]["code"]
      'zero-gradient'
    """

    def __init__(self, findings: Iterable[Finding] = (), steps_observed: int = 0):
        self._findings: dict[tuple[str, tuple[str, ...]], Finding] = {}
        self.steps_observed = steps_observed
        for finding in findings:
            self.add(finding)

    @property
    def findings(self) -> list[Finding]:
        """All findings, in the order they were first made."""
        return list(self._findings.values())

    def codes(self) -> set[str]:
        """The set of codes found."""
        return {f.code for f in self._findings.values()}

    def add(self, finding: Finding) -> bool:
        """Adds a finding; returns whether it is new.

        A finding with the code of one already kept and overlapping variables is the same
        finding seen again (e.g. one more layer crossed a threshold): it is merged into the kept
        one (variables joined, message and details updated, first step kept, count raised).
        """
        for key, seen in self._findings.items():
            if key[0] == finding.code and (
                key[1] == finding.variables or set(key[1]) & set(finding.variables)
            ):
                variables = seen.variables + tuple(
                    v for v in finding.variables if v not in seen.variables
                )
                merged = dataclasses.replace(
                    finding, step=seen.step, variables=variables, count=seen.count + 1
                )
                del self._findings[key]
                self._findings[merged.key] = merged
                return False
        self._findings[finding.key] = finding
        return True

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN.md report: version, findings, steps observed."""
        return {
            "gradguard_version": __version__,
            "findings": [f.to_dict() for f in self._findings.values()],
            "steps_observed": int(self.steps_observed),
        }

    def to_json(self, path: str | None = None) -> str:
        """Returns the report as JSON text, also writing it to `path` if given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def __len__(self) -> int:
        return len(self._findings)

    def __str__(self) -> str:
        if not self._findings:
            return f"gradguard: no findings in {self.steps_observed} steps."
        lines = [f"gradguard: {len(self._findings)} finding(s) in {self.steps_observed} steps:"]
        for f in self._findings.values():
            assert f.severity is not None
            seen = f" (x{f.count})" if f.count > 1 else ""
            at = f" at step {f.step}" if f.step >= 0 else ""
            lines.append(f"  {f.severity.value:7s} {f.code}{at}{seen}: {f.message}")
        return "\n".join(lines)


def emit(report: Report, found: Iterable[Finding], policy: Policies, *, raise_errors: bool) -> None:
    """Keeps findings and acts on their policies (`Policies.of`).

    A new finding is logged once (absl); repeats only raise its count. After all are kept, the
    first new finding whose policy is `raise` is raised, if `raise_errors`.
    """
    to_raise = None
    for finding in found:
        if policy.of(finding) is Policy.IGNORE or not report.add(finding):
            continue
        log = logging.error if finding.severity is Severity.ERROR else logging.warning
        log("gradguard [%s] step %d: %s", finding.code, finding.step, finding.message)
        if policy.of(finding) is Policy.RAISE and to_raise is None:
            to_raise = finding
    if to_raise is not None and raise_errors:
        raise to_raise.error()


def listing(items: Sequence[str], limit: int = 4) -> str:
    """Names for a message: the first `limit`, then how many more (``a, b and 3 more``)."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def number(x: float) -> str:
    """A number for a message, to three significant digits."""
    return f"{x:.3g}"


def names(variables: Sequence[Any], model_name: str = "") -> list[str]:
    """Display names of variables: Keras paths (``dense/kernel``) or tf.Variable names.

    The model's own name is dropped from the front of Keras paths
    (``sequential/dense/kernel`` -> ``dense/kernel``): it is the same for every variable.
    """
    prefix = f"{model_name}/" if model_name else None
    result = []
    for v in variables:
        name = getattr(v, "path", None) or v.name.split(":")[0]
        if prefix and name.startswith(prefix):
            name = name[len(prefix) :]
        result.append(name)
    return result
