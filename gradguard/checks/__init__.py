"""Checks: fold each step's statistics into small state in-graph, judge them on the host.

Each check is one class in one module of this package (`base` holds what they share;
`stalled` is the part of `updates` that judges a run which stopped partway). A new
check is a new module and one line in `BUILT_IN`: the core, the sinks and ``gradguard inspect``
learn everything else from the check itself (`checks.base.Check`).

Example:
  >>> checks = [*default_checks(), ActivationHealth()]
  >>> step = gradguard.TrainStep(model, optimizer, loss_fn, checks=checks)  # doctest: +SKIP
"""

from __future__ import annotations

from gradguard.checks.activations import ActivationHealth
from gradguard.checks.base import Check, Scalar, StateSpec
from gradguard.checks.gradients import ExplodingGradient, VanishingGradient, ZeroGradient
from gradguard.checks.loss import LossNotDecreasing
from gradguard.checks.nonfinite import NonFinite
from gradguard.checks.symmetry import IdenticalUnits
from gradguard.checks.updates import UpdateRatio
from gradguard.stats import Context, Layout, Stats

__all__ = [
    "BUILT_IN",
    "ActivationHealth",
    "Check",
    "Context",
    "ExplodingGradient",
    "IdenticalUnits",
    "Layout",
    "LossNotDecreasing",
    "NonFinite",
    "Scalar",
    "StateSpec",
    "Stats",
    "UpdateRatio",
    "VanishingGradient",
    "ZeroGradient",
    "all_checks",
    "default_checks",
]

# The built-in checks, in the order they are judged, and whether each is on by default in
# `TrainStep`, the guard and `GuardCallback`. (`gradguard run` and `gradguard inspect`, which
# diagnose, use all of them.)
BUILT_IN: tuple[tuple[type[Check], bool], ...] = (
    (NonFinite, True),
    (ZeroGradient, True),
    (UpdateRatio, True),
    (IdenticalUnits, True),
    (ExplodingGradient, True),
    (VanishingGradient, True),
    (LossNotDecreasing, True),
    (ActivationHealth, False),
)


def default_checks() -> list[Check]:
    """A fresh list of the checks on by default, with default thresholds."""
    return [check() for check, on in BUILT_IN if on]


def all_checks() -> list[Check]:
    """A fresh list of every built-in check, with default thresholds."""
    return [check() for check, _ in BUILT_IN]
