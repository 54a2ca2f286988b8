"""What validation compares: each saved value beside the live variable it restores into."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard.findings import Report

__all__ = [
    "NAMED",
    "Check",
    "OptimizerState",
    "Spec",
    "Value",
    "fmt",
    "is_optimizer",
    "natural",
    "spec",
]

# Shown in messages; more are counted ("and 12 more"), the table lists them all.
NAMED = 4

Spec = tuple[tuple[int, ...], str]


@dataclasses.dataclass
class Value:
    """One saved value and the live variable it restores into; either side may be absent."""

    name: str
    key: str = ""
    saved: Spec | None = None
    variable: Any = None
    current: Spec | None = None
    optimizer: bool = False
    problem: str | None = None
    # What to do about it, where the code's usual advice does not fit this value.
    fix: str | None = None


@dataclasses.dataclass
class OptimizerState:
    """An optimizer a checkpoint restores into, beside what the checkpoint holds for it.

    Attributes:
      key: Its name in messages (``optimizer``, ``model/optimizer``).
      optimizer: The live optimizer.
      built: What it is compared through: itself, or a built copy of an optimizer that has not
        taken a step yet (whose slots do not exist yet).
      learning_rate: The learning rate saved as a value (None if not saved as one, e.g. a
        schedule); a restore puts it back.
      iterations: The saved iteration count (None if not saved).
      slots: The saved optimizer's slot lists (``_momentums``, ``momentums``), None where the
        format does not record them (Keras weights files).
      config: Its configuration at save time (flat fields, as `config.optimizer_config`), None
        where nothing recorded it.
      config_source: The file the configuration was read from, for messages.
      restored: False when the restore gives it none of its saved values (Keras skips an
        optimizer whose variable count differs from the file's).
    """

    key: str
    optimizer: Any
    built: Any
    learning_rate: float | None = None
    iterations: int | None = None
    slots: frozenset[str] | None = None
    config: dict[str, Any] | None = None
    config_source: str = ""
    restored: bool = True


@dataclasses.dataclass
class Check:
    """What validation found: each value side by side, and the findings."""

    path: str
    values: list[Value]
    report: Report
    # What restore needs afterwards: how to read the saved arrays back.
    read: Callable[[str], np.ndarray] | None = None
    optimizers: list[OptimizerState] = dataclasses.field(default_factory=list)


def is_optimizer(obj: Any) -> bool:
    """Whether `obj` is a Keras 3 optimizer."""
    return isinstance(obj, keras.optimizers.Optimizer)


def spec(variable: Any) -> Spec:
    """The shape and dtype name of a live variable."""
    return tuple(int(d) for d in variable.shape), tf.as_dtype(variable.dtype).name


def fmt(value_spec: Spec | None) -> str:
    """``(3, 2) float32``, or ``-`` for a side that is absent."""
    if value_spec is None:
        return "-"
    shape, dtype = value_spec
    return f"{shape} {dtype}"


def natural(key: str) -> list[Any]:
    """A sort key that orders ``vars/10`` after ``vars/9``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]
