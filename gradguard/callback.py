"""`GuardCallback`: every check and transform of the guard, inside `model.fit`'s own train step."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras

from gradguard import compilestate, errors, heldout, ranout
from gradguard import findings as findings_lib
from gradguard.guarding import Guard
from gradguard.options import ChecksArg, Options
from gradguard.sinks import Sink
from gradguard.transforms import GradientTransform

__all__ = ["GuardCallback"]


class GuardCallback(keras.callbacks.Callback):
    """Guards `model.fit`: the checks and transforms run inside fit's compiled train function.

    For the duration of `fit`, the model's `train_step` (Keras' own or the model's override)
    runs under a `Guard`: its gradients go through the transform before the update (default
    `skip_nonfinite()`), every check measures them, and what the step did is recorded
    (`missing-apply` when an overridden `train_step` forgets the update). The statistics are
    written as TensorBoard scalars in-graph every `every` steps under `log_dir`, beside Keras'
    own TensorBoard logs if both are used, and `gradguard inspect` reads them back.

    The host reads every `every` batches (however many `steps_per_execution` runs a call) and
    at the end of `fit`: errors raise their `GradGuardError` out of `fit` (as
    `TerminateOnNaN(raise_error=True)` does), warnings are logged. After `fit`, normal or not,
    the model's train step and train function are as they were, so a later `fit` without the
    callback is plain; a later `fit` with it follows a compile made since (another optimizer
    gets a guard of its own).

    Example:
      >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # doctest: +SKIP
      >>> guard = gradguard.GuardCallback(log_dir="logs/run1")  # doctest: +SKIP
      >>> model.fit(x, y, epochs=5, callbacks=[guard])  # doctest: +SKIP
      >>> print(guard.report())  # doctest: +SKIP

    Args:
      transform: Gradient transform applied before each update; default `skip_nonfinite()`.
      checks: Checks to run (a list, or a function returning a fresh list); default
        `gradguard.checks.default_checks()`.
      every: Steps between TensorBoard scalars and update measurements, and batches between
        host reads (default 100).
      log_dir: Write the statistics as TensorBoard scalars there.
      policy: Per finding code, ``"raise"``, ``"warn"`` or ``"ignore"``.
      sink: Other destinations for statistics and findings (`gradguard.sinks.Sink`).

    Raises:
      TypeError, ValueError: for arguments of the wrong kind (see `TrainStep`).
    """

    def __init__(
        self,
        *,
        transform: GradientTransform | None = None,
        checks: ChecksArg = None,
        every: int = 100,
        log_dir: str | os.PathLike[str] | None = None,
        policy: Mapping[str, str] | None = None,
        sink: Sink | None = None,
    ):
        super().__init__()
        self.options = Options.create(
            transform=transform,
            checks=checks,
            every=every,
            log_dir=log_dir,
            policy=policy,
            sink=sink,
        )
        self.guard: Guard | None = None
        self._restore: tuple[Any, Any] | None = None
        # The guarded train step and fit's function around it, kept for a later fit of the
        # same model (no second trace).
        self._guarded: tuple[Any, Any] | None = None
        self._plain_function: Any = None  # the model's train function the guarded one replaced
        self._batches = 0  # batches of the current epoch seen at batch ends
        self._traces = 0
        self._epoch_losses: list[tuple[float, float]] = []  # (loss, val_loss) of each epoch
        self._epoch_batches: list[int] = []  # the batches each epoch of this fit ran

    def on_train_begin(self, logs: Any = None) -> None:
        model = self.model
        guard = self.guard
        if guard is None or guard.optimizer is not model.optimizer or guard.model is not model:
            # A new model, or a compile with another optimizer (a fine-tuning stage, which
            # starts on the weights the earlier stages trained).
            stages = guard.stages if guard is not None and guard.model is model else None
            guard = self.guard = Guard(model, model.optimizer, self.options, stages=stages)
            self._guarded = None
        if model.train_function is not self._plain_function:
            self._guarded = None  # compiled since: its function trains what compile set up
        own = vars(model).get("train_step")  # an instance's own train_step, if it has one
        self._restore = (own, model.train_function)
        self._plain_function = model.train_function
        if self._guarded is not None:
            step, function = self._guarded
            object.__setattr__(model, "train_step", step)
            model.train_function = function
            return
        train_step = model.train_step

        def guarded_train_step(data: Any) -> Any:
            self._traces += 1  # once per trace of fit's function (or per step when eager)
            guard.forensics.fit_batch(model, data)  # kept if the step goes non-finite
            compilestate.build_outside_trace(model)  # (fit's function is then traced once)
            with guard.instrument():
                return train_step(data)

        # Shadows the class's train_step for this fit; fit made its function before this
        # callback ran, so it is made again around the guarded step.
        object.__setattr__(model, "train_step", guarded_train_step)
        model.make_train_function(force=True)
        self._guarded = (guarded_train_step, model.train_function)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._batches = 0

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._epoch_batches.append(self._batches)
        if logs and "loss" in logs and "val_loss" in logs:
            self._epoch_losses.append((float(logs["loss"]), float(logs["val_loss"])))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.guard is None:
            return
        # `batch` is the last of the call's batches (`steps_per_execution` run in one call);
        # Keras does not cut it to the epoch's last batch when the epoch ends mid-call.
        steps = (self.params or {}).get("steps")
        done = min(batch + 1, steps) if steps else batch + 1
        calls, self._batches = done - self._batches, done
        try:
            self.guard.after_call(max(calls, 1))
        except errors.GradGuardError:
            self._put_back()  # fit does not call on_train_end when a callback raises
            raise

    def on_train_end(self, logs: Any = None) -> None:
        self._put_back()
        epochs, self._epoch_losses = self._epoch_losses, []
        batches, self._epoch_batches = self._epoch_batches, []
        if self.guard is not None:
            # The last batches' errors raise out of fit too, as at every read.
            known = {f.key for f in self.guard.report.findings}
            report = self.guard.read(final=True)
            # Classes taken as balanced: the validation data's frequencies are not counted.
            cores = self.guard.cores.values()
            chance = [core.notes.get("chance_loss_balanced") for core in cores]
            if len(chance) == 1 and chance[0] is not None:
                found = heldout.memorizing(epochs, chance[0], report.steps_observed - 1)
                findings_lib.emit(report, found, self.guard.policy, raise_errors=False)
            if not self.model.stop_training:  # (stopped by a callback: its epoch ends early)
                steps, step = (self.params or {}).get("steps"), report.steps_observed - 1
                found = ranout.finding(steps, len(batches), sum(batches), None, step)
                findings_lib.emit(report, found, self.guard.policy, raise_errors=False)
            if self.guard.raise_errors:
                findings_lib.raise_new(report, known, self.guard.policy)

    def _put_back(self) -> None:
        """Gives the model back its own train step and train function."""
        if self._restore is None:
            return
        own, function = self._restore
        self._restore = None
        model = self.model
        if own is None:
            object.__delattr__(model, "train_step")
        else:
            object.__setattr__(model, "train_step", own)
        model.train_function = function

    @property
    def tracing_count(self) -> int:
        """How many times fit traced the guarded train step (per step when run eagerly)."""
        return self._traces

    def report(self) -> findings_lib.Report:
        """Every finding so far (never raises for them).

        Raises:
          RuntimeError: before the callback was used in a `fit`.
        """
        if self.guard is None:
            raise RuntimeError(
                "GuardCallback has not run yet: pass it to model.fit(callbacks=[...])."
            )
        return self.guard.read(final=True)
