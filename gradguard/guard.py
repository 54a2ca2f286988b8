"""The guard decorator, and the optimizer and tape instrumentation it shares with `gradguard run`.

`Guard` watches code gradguard did not write. While it is active, every
`tf.GradientTape.gradient` call and every optimizer update (`apply_gradients` / `apply`) goes
through it:

* the gradients the user passes to the optimizer go through the same `StepCore` as in
  `TrainStep` (transforms, then the real update, then the checks), one core per optimizer;
* what the user's code did is recorded: which variables got gradients, which were passed to an
  optimizer, how many gradient calls and updates ran. From that the host judges `missing-apply`,
  `variable-not-trained` and `none-gradient`.

Inside a `tf.function` all of this is traced into the user's graph once: counters are variables
created outside the trace, and no retrace is added.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import activations as activations_lib
from gradguard import checks as checks_lib
from gradguard import diagnose, replicas
from gradguard import findings as findings_lib
from gradguard import transforms as transforms_lib
from gradguard.core import Every, StepCore, check_optimizer

__all__ = ["Guard", "guard", "model_report"]

_ORIGINAL_GRADIENT = tf.GradientTape.gradient
_BASE_OPTIMIZER = keras.optimizers.Optimizer.__mro__[-3]  # keras BaseOptimizer
_ORIGINAL_APPLY = _BASE_OPTIMIZER.apply
# The guards listening now, innermost last. A list, not one global, so a guarded function can
# call another.
_ACTIVE: list[Guard] = []

# `missing-apply` needs this many gradient calls with no update: at the end of a run, a few;
# while it runs, more, so that gradient accumulation over up to that many calls stays silent.
MISSING_APPLY_CALLS_AT_END = 3
MISSING_APPLY_CALLS_WHILE_RUNNING = 32


def _inner(optimizer: Any) -> Any:
    """The optimizer that sees unscaled gradients (the inner one of a LossScaleOptimizer)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _is_variable(x: Any) -> bool:
    return isinstance(x, (tf.Variable, keras.Variable))


def _shared_root(variables: Iterable[Any]) -> str:
    """The model name at the front of every Keras path (``sequential/dense/kernel``), if shared.

    Under `gradguard run` the model is unknown; its name is the first of three or more path
    components common to all variables. Different roots (a GAN's two models) are kept.
    """
    roots = set()
    for v in variables:
        parts = str(getattr(v, "path", "")).split("/")
        if len(parts) < 3:
            return ""
        roots.add(parts[0])
    return roots.pop() if len(roots) == 1 else ""


def _fingerprint(variable: Any) -> tf.Tensor:
    """Sum and sum of squares, in float64: changes when the variable is updated."""
    value = tf.cast(tf.convert_to_tensor(variable), tf.float64)
    return tf.stack([tf.reduce_sum(value), tf.reduce_sum(tf.square(value))])


class Guard:
    """Instruments optimizers and gradient tapes, and diagnoses what it sees.

    Args:
      model: The model being trained, if known: its trainable variables are expected to be
        updated, and its name is dropped from variable names.
      optimizer: The optimizer to instrument (decorator mode). `None` with `process_wide`.
      transform: Gradient transform applied to the gradients the user passes, before the
        update. Default: `skip_nonfinite()`; `identity()` only observes.
      checks: The checks, as a list (one optimizer) or a function returning a fresh list per
        optimizer; default `checks.default_checks()`.
      every: Host reads happen every `every` guarded calls.
      policy: Per finding code, ``"raise"``, ``"warn"`` or ``"ignore"``.
      raise_errors: Whether findings with policy `raise` raise (False under `gradguard run`,
        which must not change how the script ends).
      log_dir: TensorBoard directory for the statistics.
    """

    def __init__(
        self,
        model: Any = None,
        optimizer: Any = None,
        *,
        transform: transforms_lib.GradientTransform | None = None,
        checks: Callable[[], Iterable[checks_lib.Check]] | Iterable[checks_lib.Check] | None = None,
        every: int = 100,
        policy: Mapping[str, str] | None = None,
        raise_errors: bool = True,
        log_dir: str | None = None,
    ):
        if optimizer is not None:
            check_optimizer(optimizer)
        transforms_lib.check_transform(transform)
        self.cadence = Every(every)
        self.model = model
        self.optimizer = optimizer
        self.policy = findings_lib.resolve_policy(policy)
        self.raise_errors = raise_errors
        self.report = findings_lib.Report()
        self._core_options: dict[str, Any] = {
            "transform": transform,
            "every": every,
            "policy": policy,
            "log_dir": log_dir,
        }
        if checks is not None and not callable(checks):
            checks = list(checks)
        self._checks = checks
        # Watched layer outputs of the model, when a check watches them (a list of checks).
        self._recorder = (
            activations_lib.Recorder(model, str(getattr(model, "name", "")))
            if model is not None
            and not callable(checks)
            and any(getattr(c, "watches_activations", False) for c in checks or ())
            else None
        )
        # Under `instrument_process` with a check that watches activations: the process-wide
        # layer tap, and per optimizer the layers and sites its checks watch.
        self._tap: activations_lib.Tap | None = None
        self._tapped: dict[int, tuple[list[Any], list[activations_lib.Site]]] = {}
        self._cores: dict[int, StepCore] = {}
        self._calls = 0  # host-side calls of the guarded function
        self._pending: list[findings_lib.Finding] = []
        # What the user's code did, by id of the variable (kept alive by the dicts): variables
        # expected to train (the model's), asked a gradient for, given one, passed to an update.
        self._expected: dict[int, Any] = {}
        self._requested: dict[int, Any] = {}
        self._with_gradient: dict[int, Any] = {}
        self._applied: dict[int, Any] = {}
        # Fingerprints of variables when first seen, to tell "updated by hand" from "never
        # updated". Variables holding NaN until the first run of the step that saw them.
        self._baseline: dict[int, tf.Variable] = {}
        self._last_loss: tf.Tensor | None = None
        with tf.init_scope():
            self._gradient_calls = replicas.state_variable(0, tf.int64)
            self._updates = replicas.state_variable(0, tf.int64)
        if model is not None:
            self._expect_model(model)
        inner = _inner(optimizer) if optimizer is not None else None
        if inner is not None and inner.built:
            # Its variables now, not in the user's first trace: creating variables there makes
            # tf.function trace the step a second time.
            self._core(inner, inner.apply, list(inner._trainable_variables))

    # -- instrumentation -----------------------------------------------------------------------

    @contextlib.contextmanager
    def instrument(self) -> Iterator[Guard]:
        """Routes gradient calls and this guard's optimizer's updates through it, for a block."""
        optimizer = _inner(self.optimizer) if self.optimizer is not None else None
        patched = optimizer is not None and "apply" not in vars(optimizer)
        if patched:
            assert optimizer is not None
            original = optimizer.apply  # the bound method of the class

            def apply(grads: Any, trainable_variables: Any = None) -> Any:
                return self._on_apply(optimizer, original, grads, trainable_variables)

            # An instance attribute shadows the method, so apply_gradients() comes here too.
            object.__setattr__(optimizer, "apply", apply)
        _ACTIVE.append(self)
        tf.GradientTape.gradient = _gradient
        recording = self._recorder.recording() if self._recorder else contextlib.nullcontext()
        try:
            with recording:
                yield self
        finally:
            _ACTIVE.remove(self)
            if not _ACTIVE and not _PROCESS_WIDE:
                tf.GradientTape.gradient = _ORIGINAL_GRADIENT
            if patched:
                object.__delattr__(optimizer, "apply")

    def instrument_process(self) -> None:
        """Routes every gradient call and every Keras optimizer update through this guard.

        With a check that watches activations (`checks.ActivationHealth`), the outputs of
        activation-bearing layers are also recorded process-wide in the training forward pass
        (`activations.Tap`), and each optimizer's checks see those of the model it trains.
        """
        global _PROCESS_WIDE
        _PROCESS_WIDE = True
        checks = self._checks() if callable(self._checks) else self._checks
        if any(getattr(c, "watches_activations", False) for c in checks or ()):
            self._tap = activations_lib.Tap()
            self._tap.install()
        _ACTIVE.insert(0, self)
        tf.GradientTape.gradient = _gradient

        def apply(optimizer: Any, grads: Any, trainable_variables: Any = None) -> Any:
            guard = _listener()
            original = functools.partial(_ORIGINAL_APPLY, optimizer)
            if guard is None:
                return original(grads, trainable_variables)
            return guard._on_apply(optimizer, original, grads, trainable_variables)

        _BASE_OPTIMIZER.apply = apply

    def _expect_model(self, model: Any) -> None:
        """Remembers the model's trainable variables as ones that should be updated."""
        self.model = model
        variables = list(getattr(model, "trainable_variables", []))
        for v in variables:
            self._expected.setdefault(id(v), v)
        self._take_baselines(variables)

    def _take_baselines(self, variables: list[Any]) -> None:
        """Records the fingerprints of `variables` not seen before, once, at their first run.

        While tracing, a variable created in the same trace has no value yet, so the
        fingerprint is taken in-graph, under a `tf.cond` that runs it only the first time.
        """
        new = [v for v in variables if id(v) not in self._baseline]
        if not new:
            return
        with tf.init_scope():
            baselines = [replicas.state_variable([np.nan, np.nan], tf.float64) for _ in new]
        for v, baseline in zip(new, baselines):
            self._baseline[id(v)] = baseline

        def take() -> None:
            for v, baseline in zip(new, baselines):
                baseline.assign(_fingerprint(v))

        if tf.inside_function():
            replicas.run_if(tf.math.is_nan(baselines[0][0]), take)
        else:
            take()

    def _on_gradient(self, tape: Any, target: Any, sources: Any, result: Any) -> None:
        if self._tap is not None:
            self._tap.on_gradient()
        flat_sources = tf.nest.flatten(sources)
        flat_result = tf.nest.flatten(result) if result is not None else [None] * len(flat_sources)
        pairs = [(s, g) for s, g in zip(flat_sources, flat_result) if _is_variable(s)]
        if not pairs:
            return
        self._gradient_calls.assign_add(1)
        if isinstance(target, tf.Tensor) and target.shape.rank == 0:
            self._last_loss = target
            if tf.inside_function() and hasattr(target, "graph"):  # traced once: read the graph
                finding = diagnose.graph_loss_broadcast(target, self._calls)
                if finding is not None:
                    self._pending.append(finding)
        self._take_baselines([v for v, _ in pairs])
        for variable, grad in pairs:
            key = id(variable)
            self._requested.setdefault(key, variable)
            if grad is not None:
                self._with_gradient.setdefault(key, variable)
        if all(g is None for _, g in pairs):
            variables = [v for v, _ in pairs]
            finding = diagnose.none_gradient_finding(
                self._names(variables),
                range(len(variables)),
                self._why_no_gradient(tape, target, variables),
                self._calls,
            )
            self._pending.append(finding)
            if self.raise_errors and self.policy["none-gradient"] == "raise":
                raise finding.error()  # before the optimizer fails on it with less to say

    def _why_no_gradient(self, tape: Any, target: Any, variables: list[Any]) -> dict[int, str]:
        watched = {id(v) for v in tape.watched_variables()}
        handles = {id(getattr(v, "value", v)) for v in variables} | {id(v) for v in variables}
        if not watched & handles:
            cause = (
                "the tape, because the forward pass ran outside the `with tf.GradientTape()` "
                "block (nothing was recorded)"
            )
            return dict.fromkeys(range(len(variables)), cause)
        if isinstance(target, tf.Tensor) and hasattr(target, "graph") and tf.inside_function():
            return diagnose.graph_breaks(target, variables)
        cause = (
            "an op without gradient (a .numpy() or NumPy round trip, a cast to an integer, "
            "argmax or round, or tf.stop_gradient)"
        )
        return dict.fromkeys(range(len(variables)), cause)

    def _on_apply(self, optimizer: Any, original: Any, grads: Any, variables: Any) -> Any:
        grads = list(grads)
        variables = list(optimizer._trainable_variables if variables is None else variables)
        self._updates.assign_add(1)
        for v in variables:
            self._applied.setdefault(id(v), v)
        explicit_none = [v for g, v in zip(grads, variables) if g is None]
        if explicit_none and len(explicit_none) < len(variables):
            self._note_partial_none(variables, explicit_none)
        if len(explicit_none) == len(variables):
            return original(grads, variables)  # the optimizer says what is wrong with that
        core = self._core(optimizer, original, variables)
        index = {id(v): i for i, v in enumerate(core.variables)}
        if any(id(v) not in index for v in variables):
            return original(grads, variables)  # Keras names the unknown variable itself
        full: list[Any] = [None] * len(core.variables)
        absent = set(range(len(core.variables)))
        for g, v in zip(grads, variables):
            i = index[id(v)]
            full[i] = g
            if g is not None:
                absent.discard(i)
        absent -= {index[id(v)] for v in explicit_none}
        loss = self._last_loss
        if loss is None or (
            tf.inside_function()
            and getattr(loss, "graph", None) is not tf.compat.v1.get_default_graph()
        ):
            loss = tf.constant(0.0)  # not known: the loss checks see a constant and stay silent
        core.update(loss, full, absent, self._activations(optimizer))
        return None

    def _activations(self, optimizer: Any) -> tuple[Any, ...]:
        """The watched layer outputs of the forward pass before this update, one per site."""
        if self._recorder is not None and optimizer is _inner(self.optimizer):
            return self._recorder.take()
        tapped = self._tapped.get(id(optimizer))
        if self._tap is not None and tapped is not None and tapped[1]:
            return self._tap.take(*tapped)
        return ()

    def _note_partial_none(self, variables: list[Any], without: list[Any]) -> None:
        """`none-gradient` for None gradients passed to the optimizer, when a break is known.

        A variable that is simply not used by the loss (an output head trained elsewhere or
        not at all) is not reported: the optimizer skips it, and so does gradguard.
        """
        loss = self._last_loss
        if loss is None or not tf.inside_function() or not hasattr(loss, "graph"):
            return
        positions = [i for i, v in enumerate(variables) if any(v is w for w in without)]
        found = diagnose.graph_breaks(loss, [variables[i] for i in positions])
        causes = {positions[j]: cause for j, cause in found.items()}
        cut = [i for i, cause in causes.items() if cause != diagnose.NOT_USED]
        if cut:
            self._pending.append(
                diagnose.none_gradient_finding(self._names(variables), cut, causes, self._calls)
            )

    def _core(self, optimizer: Any, original: Any, variables: list[Any]) -> StepCore:
        core = self._cores.get(id(optimizer))
        if core is None:
            if optimizer.built:
                variables = list(optimizer._trainable_variables)
            if self._cores and self._checks is not None and not callable(self._checks):
                raise TypeError(
                    "a second optimizer needs checks of its own: pass checks as a function "
                    "returning a fresh list, e.g. checks=gradguard.checks.default_checks."
                )
            checks = self._checks() if callable(self._checks) else self._checks
            watchers = [c for c in checks or () if getattr(c, "watches_activations", False)]
            if watchers and self._recorder is not None:
                sites = self._recorder.fix_sites()
            elif watchers and self._tap is not None and not _multi_replica():
                layers, sites = self._tap.sites(variables, self._model_name(variables))
                self._tapped[id(optimizer)] = (layers, sites)
            else:
                sites = []  # nothing to capture: the check stays silent
            for check in watchers:
                check.watch(sites)
            options = dict(self._core_options)
            if options["log_dir"] is not None and (self.optimizer is None or self._cores):
                options["log_dir"] = f"{options['log_dir']}/{optimizer.name}"
            core = StepCore(
                optimizer,
                variables,
                checks=None if checks is None else list(checks),
                model_name=self._model_name(variables),
                apply_fn=original,
                report=self.report,
                **options,
            )
            self._cores[id(optimizer)] = core
            if len(self._cores) > 1:
                # Several optimizers (a GAN): their losses fight each other by design, so a loss
                # that does not decrease says nothing.
                for each in self._cores.values():
                    each.policy = {**each.policy, "loss-not-decreasing": findings_lib.Policy.IGNORE}
        return core

    # -- host side -----------------------------------------------------------------------------

    def after_call(self) -> None:
        """Counts one guarded call and reads on the cadence (host side)."""
        self._calls += 1
        if self._pending or self.cadence(self._calls - 1):
            self.read()

    def read(self, *, final: bool = False) -> findings_lib.Report:
        """Judges everything seen so far; raises per policy unless `final` or not raising.

        Returns:
          The report with all findings so far.
        """
        raise_errors = self.raise_errors and not final
        known = {f.key for f in self.report.findings}
        found, self._pending = self._pending + self._judge_calls(final), []
        findings_lib.emit(self.report, found, self.policy, raise_errors=False)
        for core in self._cores.values():
            core.read(int(core._step.numpy()), raise_errors=False)
        steps = self._steps_seen()
        self.report.steps_observed = steps
        if raise_errors:
            for finding in self.report.findings:
                if finding.key not in known and self.policy[finding.code] == "raise":
                    raise finding.error()
            for core in self._cores.values():
                core.check_transform(steps - 1)
        return self.report

    def _steps_seen(self) -> int:
        """Guarded calls, or gradient calls and updates where no call is counted (run, fit)."""
        counts = [self._calls] + [int(c._step.numpy()) for c in self._cores.values()]
        if not self._cores:
            counts.append(int(self._gradient_calls.numpy()))
        return max(counts)

    def saw_training(self) -> bool:
        """Whether any gradient was computed or any update applied under this guard."""
        return bool(self._gradient_calls.numpy() or self._updates.numpy())

    def _judge_calls(self, final: bool) -> list[findings_lib.Finding]:
        """`missing-apply` and `variable-not-trained`, from what the user's code did."""
        gradient_calls = int(self._gradient_calls.numpy())
        updates = int(self._updates.numpy())
        step = max(self._steps_seen() - 1, 0)
        watched = {**self._expected, **self._requested}
        enough = MISSING_APPLY_CALLS_AT_END if final else MISSING_APPLY_CALLS_WHILE_RUNNING
        if gradient_calls >= enough and updates == 0:
            if not any(self._changed(k) for k in watched):
                variables = list(self._with_gradient.values()) or list(self._requested.values())
                return [
                    findings_lib.Finding(
                        "missing-apply",
                        f"Gradients were computed in {gradient_calls} calls but no optimizer "
                        "update was applied and the weights did not change: call "
                        "optimizer.apply_gradients(zip(grads, model.trainable_variables)) "
                        "after tape.gradient.",
                        step,
                        tuple(self._names(variables)),
                        details={"gradient_calls": gradient_calls, "updates": 0},
                    )
                ]
        if updates == 0:
            return []
        # Given a gradient, or expected (the model's) but never asked one, and never passed to
        # an optimizer nor updated by hand. Variables whose gradient was always None are left
        # out: an unused output head is not a bug.
        candidates = {**self._with_gradient}
        candidates.update((k, v) for k, v in self._expected.items() if k not in self._requested)
        left_out = [
            v for k, v in candidates.items() if k not in self._applied and not self._changed(k)
        ]
        if not left_out:
            return []
        names = self._names(left_out)
        total = len(watched)
        return [
            findings_lib.Finding(
                "variable-not-trained",
                f"{', '.join(names[:4])}{' and more' if len(names) > 4 else ''} never "
                f"reached an optimizer ({total - len(left_out)} of {total} trainable variables "
                "did), so they never learn: compute gradients for all of "
                "model.trainable_variables and pass them to apply_gradients, each zipped with "
                "its own gradient.",
                step,
                tuple(names),
            )
        ]

    def _changed(self, key: int) -> bool:
        variable = self._requested.get(key, self._expected.get(key))
        baseline = self._baseline.get(key)
        if variable is None or baseline is None:
            return False
        before = baseline.numpy()
        return not np.isnan(before[0]) and not np.array_equal(
            before, _fingerprint(variable).numpy()
        )

    def _model_name(self, variables: list[Any]) -> str:
        if self.model is not None:
            return str(getattr(self.model, "name", ""))
        return _shared_root({**self._requested, **self._applied}.values() or variables)

    def _names(self, variables: list[Any]) -> list[str]:
        return findings_lib.names(variables, self._model_name(variables))


_PROCESS_WIDE = False


def _multi_replica() -> bool:
    """Whether the update runs under a strategy with several replicas.

    Each replica would see only its slice of the batch: activations are not watched there.
    """
    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


def _listener() -> Guard | None:
    return _ACTIVE[-1] if _ACTIVE else None


def _gradient(tape: Any, target: Any, sources: Any, *args: Any, **kwargs: Any) -> Any:
    """tf.GradientTape.gradient, reported to the active guard."""
    result = _ORIGINAL_GRADIENT(tape, target, sources, *args, **kwargs)
    guard = _listener()
    if guard is not None:
        guard._on_gradient(tape, target, sources, result)
    return result


def guard(
    model: Any = None,
    optimizer: Any = None,
    *,
    transform: transforms_lib.GradientTransform | None = None,
    checks: Callable[[], Iterable[checks_lib.Check]] | Iterable[checks_lib.Check] | None = None,
    every: int = 100,
    policy: Mapping[str, str] | None = None,
    log_dir: str | None = None,
) -> Any:
    """Guards a user's own train step: the same checks and transforms as `TrainStep`.

    Two forms:

    * ``@gradguard.guard(model, optimizer, ...)`` over ``train_step(...)``, eager or
      `tf.function` (either decorator order). While it runs, the optimizer's updates go through
      gradguard: the transform (e.g. clipping) is applied to the gradients passed, the checks
      measure them, and gradguard sees if gradients were computed but never applied
      (`missing-apply`), if part of the model was left out (`variable-not-trained`), or if
      `None` gradients were passed (`none-gradient`).
    * bare ``@gradguard.guard`` over ``def train_step(self, data)`` in a `keras.Model`
      subclass: model and optimizer are taken from `self`, and `model.fit` is guarded too.

    The host reads every `every` calls (when `guard` is the outer decorator; under an outer
    `tf.function`, at `train_step.report()`). The wrapped function gets `.report()` and
    `.guard`.

    Example:
      >>> @gradguard.guard(model, optimizer, transform=gradguard.clip_by_global_norm(1.0))
      ... @tf.function
      ... def train_step(x, y):
      ...     with tf.GradientTape() as tape:
      ...         loss = loss_fn(y, model(x, training=True))
      ...     grads = tape.gradient(loss, model.trainable_variables)
      ...     optimizer.apply_gradients(zip(grads, model.trainable_variables))
      ...     return loss  # doctest: +SKIP

    Raises:
      TypeError: for an optimizer that is not a Keras optimizer or a transform that is not one.
      ValueError: for `every < 1`.
    """
    options: dict[str, Any] = {
        "transform": transform,
        "checks": checks,
        "every": every,
        "policy": policy,
        "log_dir": log_dir,
    }
    if callable(model) and not isinstance(model, keras.layers.Layer) and optimizer is None:
        return _GuardedTrainStep(model, options)  # bare @gradguard.guard
    if optimizer is None:
        raise TypeError(
            "guard needs the optimizer: @gradguard.guard(model, optimizer), or bare "
            "@gradguard.guard over def train_step(self, data) in a keras.Model subclass."
        )

    the_guard = Guard(model, optimizer, **options)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            traced = tf.inside_function()  # called by an outer tf.function: only instrument
            with the_guard.instrument():
                result = fn(*args, **kwargs)
            if not traced:
                the_guard.after_call()
            return result

        guarded.guard = the_guard  # type: ignore[attr-defined]
        guarded.report = lambda: the_guard.read(final=True)  # type: ignore[attr-defined]
        return guarded

    return decorate


class _GuardedTrainStep:
    """Bare ``@gradguard.guard`` over ``keras.Model.train_step``: one Guard per model."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = options
        self.guards: weakref.WeakKeyDictionary[Any, Guard] = weakref.WeakKeyDictionary()

    def __set_name__(self, owner: Any, name: str) -> None:
        # Guard model.fit too: it calls train_step in a function it compiles, so the host reads
        # happen in a callback at batch ends.
        if isinstance(owner, type) and issubclass(owner, keras.Model):
            model_class: Any = owner
            fit = model_class.fit
            descriptor = self

            @functools.wraps(fit)
            def guarded_fit(model: Any, *args: Any, **kwargs: Any) -> Any:
                callbacks = list(kwargs.pop("callbacks", None) or [])
                callbacks.append(_ReadCallback(descriptor, model))
                return fit(model, *args, callbacks=callbacks, **kwargs)

            model_class.fit = guarded_fit

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        if model is None:
            return self
        return functools.partial(self.__call__, model)

    def guard_for(self, model: Any) -> Guard:
        """The guard of one model instance (made on first use)."""
        the_guard = self.guards.get(model)
        if the_guard is None:
            the_guard = Guard(model, model.optimizer, **self.options)
            self.guards[model] = the_guard
        return the_guard

    def __call__(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        the_guard = self.guard_for(model)
        traced = tf.inside_function()
        with the_guard.instrument():
            result = self.fn(model, *args, **kwargs)
        if not traced:
            the_guard.after_call()
        return result


class _ReadCallback(keras.callbacks.Callback):
    """Host reads for a guarded `train_step` under `model.fit`."""

    def __init__(self, descriptor: _GuardedTrainStep, model: Any):
        super().__init__()
        self.descriptor = descriptor
        self.guarded_model = model

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        the_guard = self.descriptor.guards.get(self.guarded_model)
        if the_guard is not None:
            the_guard.after_call()

    def on_train_end(self, logs: Any = None) -> None:
        the_guard = self.descriptor.guards.get(self.guarded_model)
        if the_guard is not None:
            the_guard.read(final=True)


def model_report(model: Any) -> findings_lib.Report | None:
    """The report of a model whose `train_step` carries a bare ``@gradguard.guard``.

    Returns:
      The report, or None if the model's class has no guarded `train_step` or it never ran.
    """
    for attr in vars(type(model)).values():
        if isinstance(attr, _GuardedTrainStep) and model in attr.guards:
            return attr.guards[model].read(final=True)
    return None
