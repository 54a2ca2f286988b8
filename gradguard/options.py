"""The options every entry point shares, validated once where they enter.

`TrainStep`, the guard decorator, ``gradguard run`` and `GuardCallback` take the same
user-facing arguments (``transform=``, ``checks=``, ``every=``, ``policy=``, ``log_dir=``,
``sink=``...). `Options.create` checks them once, with messages that say what was received and
what to pass instead, and the rest of the package receives the typed result.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import tensorflow as tf

from gradguard import checks as checks_lib
from gradguard import findings as findings_lib
from gradguard import transforms as transforms_lib
from gradguard.sinks import MultiSink, Sink, TensorBoardSink
from gradguard.stats import Every

__all__ = ["ChecksArg", "Options", "check_optimizer"]

# What ``checks=`` accepts: a list of checks, or a function returning a fresh list.
ChecksArg = Iterable[checks_lib.Check] | Callable[[], Iterable[checks_lib.Check]] | None


@dataclasses.dataclass(frozen=True)
class Options:
    """Validated options of one guarded training loop.

    Attributes:
      transform: The gradient transform applied before each update.
      every: Steps between update measurements and TensorBoard scalars.
      read_every: Steps between host reads (where checks are judged).
      policy: Per finding code, what to do with a finding.
      log_dir: TensorBoard directory, if any.
      sink: Other destinations for statistics and findings, if any.
      scalars_per_variable: Scalars per variable instead of per layer.
    """

    transform: transforms_lib.GradientTransform
    every: Every
    read_every: Every
    policy: findings_lib.Policies
    log_dir: str | None
    sink: Sink | None
    scalars_per_variable: bool
    _checks: Callable[[], list[checks_lib.Check]]
    _given: tuple[checks_lib.Check, ...] | None

    @classmethod
    def create(
        cls,
        *,
        transform: Any = None,
        checks: ChecksArg = None,
        every: Any = 100,
        read_every: Any = None,
        policy: Mapping[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        sink: Any = None,
        scalars_per_variable: bool = False,
        default_transform: Callable[[], transforms_lib.GradientTransform] = (
            transforms_lib.skip_nonfinite
        ),
    ) -> Options:
        """Validates the user's arguments and returns them typed.

        Raises:
          TypeError: for a transform, checks, sink or log_dir of the wrong type.
          ValueError: for `every` or `read_every` below 1, an unknown policy code or value, or
            a `log_dir` that is (or is under) an existing file.
        """
        if transform is None:
            transform = default_transform()
        elif not isinstance(transform, transforms_lib.GradientTransform):
            raise TypeError(
                "transform must be a gradguard GradientTransform, e.g. "
                "gradguard.chain(gradguard.clip_by_global_norm(1.0), gradguard.skip_nonfinite()); "
                f"got {type(transform).__name__}."
            )
        every = every if isinstance(every, Every) else Every(every)
        read_every = every if read_every is None else Every(read_every, "read_every")
        if log_dir is not None:
            if not isinstance(log_dir, (str, os.PathLike)):
                raise TypeError(
                    f"log_dir must be a directory's path (a str or os.PathLike); got "
                    f"{type(log_dir).__name__} {log_dir!r}."
                )
            log_dir = os.fspath(log_dir)
            blocking = _file_in_the_way(log_dir)
            if blocking is not None:
                where = "is a file" if blocking == log_dir else f"is under a file, {blocking!r}"
                raise ValueError(
                    f"log_dir {log_dir!r} {where}, not a directory: pass a directory for the "
                    "TensorBoard event files (it is created if missing)."
                )
        if sink is not None and not isinstance(sink, Sink):
            raise TypeError(
                f"sink must be a gradguard.sinks.Sink (TensorBoardSink, LoggingSink, "
                f"JsonLinesSink, MultiSink); got {type(sink).__name__}."
            )
        given, factory = _checks_factory(checks)
        return cls(
            transform=transform,
            every=every,
            read_every=read_every,
            policy=findings_lib.resolve_policy(policy),
            log_dir=log_dir,
            sink=sink,
            scalars_per_variable=bool(scalars_per_variable),
            _checks=factory,
            _given=given,
        )

    def new_checks(self, first: bool = True) -> list[checks_lib.Check]:
        """The checks for one step core: the user's own objects for the first core.

        Several cores (one per optimizer, e.g. a GAN's two) each need their own state: the
        later ones get fresh copies of the given checks (same thresholds, no state yet).
        """
        if self._given is not None:
            return list(self._given) if first else [copy.copy(c) for c in self._given]
        return self._checks()

    def watches_activations(self) -> bool:
        """Whether a check watches layer outputs (they must then be captured)."""
        checks = self._given if self._given is not None else ()
        return any(check.watches_activations for check in checks)

    def sink_for(self, subdirectory: str | None = None) -> Sink | None:
        """The sink a step core writes to; None when there is nothing to write to.

        TensorBoard under `log_dir` (or a subdirectory of it, one per optimizer), and the
        user's sink.
        """
        parts: list[Sink] = []
        if self.log_dir is not None:
            directory = self.log_dir
            if subdirectory:
                directory = os.path.join(directory, subdirectory)
            parts.append(TensorBoardSink(directory))
        if self.sink is not None:
            parts.append(self.sink)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else MultiSink(parts)

    def replace(self, **changes: Any) -> Options:
        """A copy with some fields changed (already validated values)."""
        return dataclasses.replace(self, **changes)


def _file_in_the_way(path: str) -> str | None:
    """`path`, or the nearest of its parents that exists, if that is a file (None otherwise)."""
    while path and not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path if path and os.path.isfile(path) else None


def check_execution(jit_compile: Any, run_eagerly: Any, strategy: Any) -> None:
    """Raises TypeError for execution options of the wrong type (`TrainStep`'s)."""
    for name, value in (("jit_compile", jit_compile), ("run_eagerly", run_eagerly)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r}.")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            "strategy must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()), "
            f"or None for the strategy whose scope the step is made in; got "
            f"{type(strategy).__name__} {strategy!r}."
        )


def check_optimizer(optimizer: Any) -> None:
    """Raises TypeError unless `optimizer` is a Keras 3 optimizer."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"optimizer must be a Keras optimizer such as keras.optimizers.Adam(1e-3); got "
            f"{type(optimizer).__module__}.{type(optimizer).__name__}. Legacy tf_keras and "
            "tf.compat.v1 optimizers are not supported."
        )


def _checks_factory(
    checks: ChecksArg,
) -> tuple[tuple[checks_lib.Check, ...] | None, Callable[[], list[checks_lib.Check]]]:
    """(the given checks, or None) and a function returning a fresh list for a core."""
    if checks is None:
        return None, checks_lib.default_checks
    if isinstance(checks, checks_lib.Check):
        raise TypeError(
            f"checks must be a list of Checks; got a single {type(checks).__name__}: pass "
            f"checks=[{type(checks).__name__}(...)], or add it to the defaults with "
            f"checks=[*gradguard.checks.default_checks(), {type(checks).__name__}(...)]."
        )
    if callable(checks):
        function = checks

        def fresh() -> list[checks_lib.Check]:
            return _validated(function(), "the list returned by checks()")

        return None, fresh
    if isinstance(checks, (str, bytes, Mapping)) or not isinstance(checks, Iterable):
        raise TypeError(
            "checks must be a list of gradguard.checks.Check objects, e.g. "
            f"checks=gradguard.checks.default_checks(); got {type(checks).__name__}."
        )
    given = tuple(_validated(checks, "checks"))
    return given, lambda: list(given)


def _validated(checks: Any, what: str) -> list[checks_lib.Check]:
    checks = list(checks)
    for check in checks:
        if not isinstance(check, checks_lib.Check):
            raise TypeError(
                f"{what} must hold gradguard.checks.Check instances; got "
                f"{type(check).__name__} ({check!r:.60}). Build checks from "
                "gradguard.checks, e.g. gradguard.checks.UpdateRatio(low=1e-8)."
            )
    return checks
