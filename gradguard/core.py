"""The one guarded update: measure -> transform -> apply -> measure -> fold into checks.

`StepCore` is shared by `TrainStep` (which computes loss and gradients itself) and by the guard
decorator (which intercepts the user's optimizer call), so a check is written once and runs in
both. Its `update` runs in-graph (or eagerly); its `read` runs on the host every `every` steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import checks as checks_lib
from gradguard import findings as findings_lib
from gradguard import replicas, tracing
from gradguard import sinks as sinks_lib
from gradguard import transforms as transforms_lib

__all__ = ["Every", "StepCore"]


def _inner_optimizer(optimizer: Any) -> Any:
    return getattr(optimizer, "inner_optimizer", optimizer)


class Every:
    """Cadence: due on steps 0, n, 2n, ... (0-based), for Python ints and for tensors.

    Example:
      >>> every = Every(100)
      >>> [s for s in range(250) if every(s)]
      [0, 100, 200]
    """

    def __init__(self, n: int, name: str = "every"):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name} must be a positive int (a number of steps); got {n!r}.")
        self.n = int(n)

    def __call__(self, step: Any) -> Any:
        """Whether `step` is due; a bool tensor when `step` is a tensor."""
        if isinstance(step, (int, np.integer)):
            return step % self.n == 0
        return tf.equal(step % self.n, 0)


def check_optimizer(optimizer: Any) -> None:
    """Raises TypeError unless `optimizer` is a Keras 3 optimizer."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"optimizer must be a Keras optimizer such as keras.optimizers.Adam(1e-3); got "
            f"{type(optimizer).__module__}.{type(optimizer).__name__}. Legacy tf_keras and "
            "tf.compat.v1 optimizers are not supported."
        )


class StepCore:
    """Guards the optimizer update for a fixed list of variables.

    Args:
      optimizer: A Keras 3 optimizer.
      variables: The trainable variables the update covers, in model order.
      transform: Gradient transform applied before the update; default `skip_nonfinite()`.
      checks: Checks to run; default `checks.default_checks()`.
      every: Host reads (and update measurements) happen every `every` steps.
      policy: Per finding code, ``"raise"``, ``"warn"`` or ``"ignore"`` over the defaults
        (errors raise, warnings are logged).
      model_name: Dropped from the front of variable names.
      apply_fn: Applies ``(grads, variables)``; default `optimizer.apply`. The guard passes the
        optimizer's own method here, as it replaces `optimizer.apply` to intercept user calls.
      report: Report to keep findings in, shared by the cores of several optimizers.
      log_dir: Write every statistic as a TensorBoard scalar under this directory, in-graph,
        every `every` steps (tags in `gradguard.sinks`); findings as texts.
      sink: Where else statistics and findings go (e.g. `sinks.MultiSink([...])`).
      scalars_per_variable: Scalars per variable instead of per layer.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        variables: Sequence[Any],
        *,
        transform: transforms_lib.GradientTransform | None = None,
        checks: Iterable[checks_lib.Check] | None = None,
        every: int = 100,
        policy: Mapping[str, str] | None = None,
        model_name: str = "",
        apply_fn: Any = None,
        report: findings_lib.Report | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        sink: sinks_lib.Sink | None = None,
        scalars_per_variable: bool = False,
    ):
        check_optimizer(optimizer)
        if transform is None:
            transform = transforms_lib.skip_nonfinite()
        transforms_lib.check_transform(transform)
        checks = checks_lib.default_checks() if checks is None else list(checks)
        for check in checks:
            if not isinstance(check, checks_lib.Check):
                raise TypeError(
                    f"checks must be gradguard.checks.Check instances; got {type(check).__name__}."
                )
        self.optimizer = optimizer
        self._apply = optimizer.apply if apply_fn is None else apply_fn
        # With a LossScaleOptimizer the gradients arrive scaled: checks and transforms see them
        # unscaled, and the scaler keeps deciding which steps to skip and how to rescale.
        self._loss_scaler = (
            optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else None
        )
        self.variables = list(variables)
        self.transform = transform
        self.checks = checks
        self.cadence = Every(every)
        self.policy = findings_lib.resolve_policy(policy)
        self.layout = checks_lib.Layout.from_variables(self.variables, model_name)
        self.report = findings_lib.Report() if report is None else report
        self._state_reader: tuple[int, Any] | None = None
        # Filled while tracing: which variables got a None gradient, and which got a gradient at
        # least once. Python state is fine here: these are facts about the traced graph, the
        # same on every call of the trace.
        self.none_indices: set[int] = set()
        self.present_indices: set[int] = set()
        with tf.init_scope():
            self._transform_state = tf.nest.map_structure(
                replicas.state_variable,
                transform.init(self.variables),
            )
            for check in self.checks:
                check.build(self.layout)
            self._step = replicas.state_variable(0, tf.int64, "gradguard_step")
            # loss, grad norm before and after the transforms, at the latest step.
            self._latest = replicas.state_variable([np.nan] * 3, tf.float32)
            self._clipped = replicas.state_variable(0, tf.int64)
            sinks: list[sinks_lib.Sink] = []
            if log_dir is not None:
                sinks.append(sinks_lib.TensorBoardSink(log_dir))
            if sink is not None:
                if not isinstance(sink, sinks_lib.Sink):
                    raise TypeError(
                        f"sink must be a gradguard.sinks.Sink (TensorBoardSink, LoggingSink, "
                        f"JsonLinesSink, MultiSink); got {type(sink).__name__}."
                    )
                sinks.append(sink)
            self.sink = sinks[0] if len(sinks) == 1 else sinks_lib.MultiSink(sinks)
            self._recorder = (
                sinks_lib.StepRecorder(
                    self.sink,
                    self.layout,
                    per_variable=scalars_per_variable,
                    learning_rate=self._current_learning_rate,
                    every=every,
                    extra=[
                        item
                        for check in self.checks
                        if isinstance(check, checks_lib.ActivationHealth)
                        for item in check.scalars()
                    ],
                )
                if sinks
                else None
            )

    def update(
        self,
        loss: tf.Tensor,
        grads: Sequence[Any],
        absent: Iterable[int] = (),
        activations: Sequence[Any] = (),
    ) -> checks_lib.Stats:
        """Transforms `grads`, applies them, and folds the step into every check (in-graph).

        Args:
          loss: The step's scalar loss.
          grads: One gradient (or None) per variable, in the order of `variables`.
          absent: Indices of variables this update does not cover at all (their entry in
            `grads` is None, but they are not reported as having no gradient).
          activations: The watched layer outputs of this step's forward pass, one
            ``[examples, units]`` tensor per site (see `checks.Stats.activations`).

        Returns:
          The step's statistics.
        """
        n = len(self.variables)
        if len(grads) != n:
            raise ValueError(f"got {len(grads)} gradients for {n} variables.")
        absent = set(absent)
        self.none_indices.update(i for i, g in enumerate(grads) if g is None and i not in absent)
        self.present_indices.update(i for i, g in enumerate(grads) if g is not None)
        step = self._step.read_value()
        zero = tf.constant(0.0)
        loss = tf.cast(loss, tf.float32)
        grads = list(grads)
        # What the optimizer needs multiplied back into the transformed gradients, if anything.
        apply_factor: tf.Tensor | None = None
        replica = replicas.summing_replica_context()
        if replica is not None:
            # Checks and transforms must see the gradient of the whole batch (the clipped norm is
            # the global one), so sum over replicas first. Keras sums again inside `apply`;
            # handing it 1/R of the sum gives the sum back.
            present_in = [i for i, g in enumerate(grads) if g is not None]
            summed = replica.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present_in])
            for i, g in zip(present_in, summed):
                grads[i] = g
            loss = replica.all_reduce(tf.distribute.ReduceOp.SUM, loss)
            apply_factor = tf.constant(1.0 / replica.num_replicas_in_sync)
        loss_scale = tf.constant(1.0)
        if self._loss_scaler is not None:
            loss_scale = tf.cast(tf.convert_to_tensor(self._loss_scaler.dynamic_scale), tf.float32)
            grads = [transforms_lib.scale_gradient(g, 1.0 / loss_scale) for g in grads]
            apply_factor = loss_scale if apply_factor is None else apply_factor * loss_scale
        grad_sq = tf.stack([zero if g is None else transforms_lib.sq_norm(g) for g in grads])
        grad_norm = tf.sqrt(tf.reduce_sum(grad_sq))
        # float16 overflow the loss scaler will skip on purpose: not a non-finite finding.
        overflow = tf.constant(self._loss_scaler is not None) & (
            ~tf.math.is_finite(grad_norm) & tf.math.is_finite(loss)
        )

        state = tf.nest.map_structure(lambda v: v.read_value(), self._transform_state)
        new_grads, new_state = self.transform.update(grads, state, self.variables)
        if self._loss_scaler is not None:  # an overflow step is not a step for the transforms
            new_state = tf.nest.map_structure(
                lambda old, new: tf.where(overflow, old, new), state, new_state
            )
        tf.nest.map_structure(lambda v, value: v.assign(value), self._transform_state, new_state)
        grad_norm_after = transforms_lib.global_norm(new_grads)
        # The loss scaler decides itself which steps to skip, and must see them to rescale.
        gate = None if self._loss_scaler is not None else self.transform.should_apply(new_state)

        present = [i for i, g in enumerate(new_grads) if g is not None]
        present_variables = [self.variables[i] for i in present]
        # Step 1 too: step 0 alone may be unrepresentative (a warmup schedule starting at 0).
        measure = self.cadence(step) | tf.equal(step, 1)
        to_apply = [new_grads[i] for i in present]
        if apply_factor is not None:
            to_apply = [transforms_lib.scale_gradient(g, apply_factor) for g in to_apply]

        if not present:
            applied = tf.constant(False)
        elif gate is None:
            applied = ~overflow if self._loss_scaler is not None else tf.constant(True)
        else:
            applied = gate
        accumulation = getattr(
            _inner_optimizer(self.optimizer), "gradient_accumulation_steps", None
        )
        if accumulation:
            # A Keras optimizer that accumulates gradients changes the weights only every k-th
            # call; the other calls are not updates to judge.
            iterations = tf.convert_to_tensor(_inner_optimizer(self.optimizer).iterations)
            applied = applied & tf.equal((iterations + 1) % accumulation, 0)

        before, learning_rate = self._snapshot(measure, present_variables)
        if present and gate is None:
            # Not inside a conditional: the optimizer's work then overlaps the backward pass.
            # (The loss scaler skips overflow steps itself, inside its `apply`.)
            self._apply(to_apply, present_variables)
        elif present:
            # A gate waits for every gradient; that wait is what skipping non-finite costs.
            replicas.run_if(gate, lambda grads: self._apply(grads, present_variables), to_apply)
        measured = applied & measure
        update_sq, weight_sq = self._deltas(measured, present, before)

        stats = checks_lib.Stats(
            step=step,
            loss=loss,
            grad_sq=grad_sq,
            grad_norm=grad_norm,
            grad_norm_after=grad_norm_after,
            applied=applied,
            measured=measure,
            update_sq=update_sq,
            weight_sq=weight_sq,
            loss_scale=loss_scale,
            overflow=overflow,
            activations=tuple(activations),
        )
        for check in self.checks:
            check.update(stats)
        self._latest.assign(tf.stack([loss, grad_norm, grad_norm_after]))
        clipped = applied & (grad_norm_after < grad_norm * (1.0 - 1e-6))
        self._clipped.assign_add(tf.cast(clipped, tf.int64))
        if self._recorder is not None:
            self._recorder.record(
                stats,
                present=self.present_indices,
                clipped=clipped,
                clipped_steps=self._clipped,
                learning_rate=learning_rate,
            )
        self._step.assign_add(1)
        return stats

    def _snapshot(
        self, measure: tf.Tensor, variables: Sequence[Any]
    ) -> tuple[list[tf.Tensor], tf.Tensor]:
        """On measured steps, the weights before the update and the step's learning rate.

        Reading a variable before an update makes TensorFlow copy it when the update writes in
        place: that copy is why deltas are measured on cadence steps only. Other steps get empty
        tensors (XLA needs both branches' shapes equal: zeros there).
        """
        xla = sinks_lib.in_xla_context()

        def read() -> tuple[list[tf.Tensor], tf.Tensor]:
            # The rate before the update moves a schedule on.
            return [tf.convert_to_tensor(v) for v in variables], self._current_learning_rate()

        def skip() -> tuple[list[tf.Tensor], tf.Tensor]:
            empty = [tf.zeros_like(v) if xla else tf.zeros([0], v.dtype) for v in variables]
            return empty, tf.constant(np.nan)

        return tf.cond(measure, read, skip)

    def _deltas(
        self, measured: tf.Tensor, present: Sequence[int], before: Sequence[tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """|delta w|^2 and |w|^2 per variable on measured steps (zeros on the others)."""
        n = len(self.variables)

        def measure() -> tf.Tensor:
            update_sq, weight_sq = [tf.constant(0.0)] * n, [tf.constant(0.0)] * n
            for i, old in zip(present, before):
                new = tf.convert_to_tensor(self.variables[i])
                update_sq[i] = transforms_lib.sq_norm(new - tf.reshape(old, new.shape))
                weight_sq[i] = transforms_lib.sq_norm(old)
            return tf.stack([tf.stack(update_sq), tf.stack(weight_sq)])

        deltas = tf.cond(measured, measure, lambda: tf.zeros([2, n]))
        return deltas[0], deltas[1]

    def _current_learning_rate(self) -> tf.Tensor:
        try:
            return tf.cast(tf.convert_to_tensor(self.optimizer.learning_rate), tf.float32)
        except (TypeError, ValueError):
            return tf.constant(np.nan)

    def read(
        self,
        steps: int,
        extra: Iterable[findings_lib.Finding] = (),
        *,
        raise_errors: bool = True,
    ) -> findings_lib.Report:
        """Host read: judges every check and emits the findings (with `extra` ones).

        Args:
          steps: Steps observed so far.
          extra: Findings made elsewhere (at trace time) to emit with the checks' ones.
          raise_errors: Whether a new finding with policy `raise` raises.

        Returns:
          The report, with all findings so far.

        Raises:
          GradGuardError: for a new finding whose policy is `raise` (if `raise_errors`).
        """
        context = checks_lib.Context(
            steps=steps,
            step=steps - 1,
            none=frozenset(range(len(self.variables))) - self.present_indices,
            learning_rate=self._learning_rate(),
            saturation=self._saturation(),
        )
        self.report.steps_observed = steps
        found = list(extra)
        for check, state in zip(self.checks, self._check_states()):
            if type(check).findings is checks_lib.Check.findings:
                found.extend(check.judge(state, context))
            else:  # a check that reads its state its own way
                found.extend(check.findings(context))
        known = {f.key for f in self.report.findings}
        try:
            findings_lib.emit(self.report, found, self.policy, raise_errors=raise_errors)
        finally:
            if self._recorder is not None:
                new = [f for f in self.report.findings if f.key not in known]
                self._recorder.write_findings(new, steps - 1)
                self._recorder.flush()
        if raise_errors:
            self.check_transform(steps - 1)
        return self.report

    def _check_states(self) -> list[dict[str, np.ndarray]]:
        """Every check's state in one call: one host sync, not one per variable."""
        variables = [dict(check.state_variables) for check in self.checks]
        count = sum(len(v) for v in variables)
        if self._state_reader is None or self._state_reader[0] != count:
            # Rebuilt when a check adds state later (ActivationHealth, once it knows the layers).
            reader = tracing.own_function(
                lambda: [{name: v.read_value() for name, v in d.items()} for d in variables]
            )
            self._state_reader = (count, reader)
        return [{k: v.numpy() for k, v in d.items()} for d in self._state_reader[1]()]

    def check_transform(self, step: int) -> None:
        """Lets the transform refuse to go on (e.g. too many skipped updates in a row).

        Raises:
          GradGuardError: from the transform; its finding is kept in the report first.
        """
        try:
            self.transform.on_read(
                tf.nest.map_structure(lambda v: v.numpy(), self._transform_state), step
            )
        except findings_lib.GradGuardError as e:
            self.report.add(e.finding)
            raise

    def statistics(self) -> dict[str, float]:
        """The latest step's loss and gradient norms and the run's counters (a host read)."""
        loss, grad_norm, grad_norm_after = (float(x) for x in self._latest.numpy())
        stats: dict[str, float] = {
            "steps": int(self._step.numpy()),
            "loss": loss,
            "grad_norm": grad_norm,
            "grad_norm_after": grad_norm_after,
            "clipped_steps": int(self._clipped.numpy()),
        }
        non_finite = next((c for c in self.checks if isinstance(c, checks_lib.NonFinite)), None)
        if non_finite is not None:
            stats["skipped_updates"] = int(non_finite.skipped.numpy())
        for check in self.checks:
            if isinstance(check, checks_lib.ActivationHealth) and check.sites:
                stats.update(check.summary(check.state()))
        if self._loss_scaler is not None:
            stats["loss_scale"] = float(np.asarray(self._loss_scaler.dynamic_scale))
            if non_finite is not None:
                stats["overflow_skips"] = int(non_finite.overflows.numpy())
        return stats

    def _saturation(self) -> dict[str, float]:
        saturation: dict[str, float] = {}
        for check in self.checks:
            if isinstance(check, checks_lib.ActivationHealth) and check.sites:
                saturation.update(check.saturated_layers(check.state()))
        return saturation

    def _learning_rate(self) -> float | None:
        try:
            return float(np.asarray(self.optimizer.learning_rate))
        except (TypeError, ValueError, AttributeError):
            return None
