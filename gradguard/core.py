"""The one guarded update: gather -> measure -> transform -> apply -> measure -> fold.

`StepCore` is shared by `TrainStep` (which computes loss and gradients itself), the guard
decorator and ``gradguard run`` (which intercept the user's optimizer call), so a check is
written once and runs in all of them. Its `update` runs in-graph (or eagerly); its `read` runs
on the host every `read_every` steps. It knows checks only through `checks.base.Check`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, deferred, deltas, errors, norms, oldnames, replicas, updating
from gradguard import findings as findings_lib
from gradguard.checks import Check
from gradguard.checks.base import StateReader, fold
from gradguard.options import Options
from gradguard.sinks import Sink, StepRecorder
from gradguard.stats import LOGGED_NOTES, Context, Layout, Stats

__all__ = ["SCOPE", "StepCore"]

# The name scope of every op gradguard adds to a step: its cost can be told from the model's and
# the optimizer's in a profile (`benchmarks/overhead.py --profile`) and in TensorBoard's graph.
SCOPE = "gradguard"


class StepCore:
    """Guards the optimizer update for a fixed list of variables.

    Args:
      optimizer: A Keras 3 optimizer.
      variables: The trainable variables the update covers, in model order.
      options: The validated options (transform, cadence, policy).
      checks: This core's checks (`options.new_checks()`); built here.
      model_name: Dropped from the front of variable names.
      apply_fn: Applies ``(grads, variables)``; default `optimizer.apply`. The guard passes the
        optimizer's own method here, as it replaces `optimizer.apply` to intercept user calls.
      report: Report to keep findings in, shared by the cores of several optimizers.
      sink: Where statistics and findings go (`options.sink_for()`), if anywhere.
      defer: Leave the deferrable checks' fold for later (`gradguard.deferred.for_checks`):
        ``"lean"`` steps' (the owner calls `deferred.before_step`), or ``"all"`` steps'.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        variables: Sequence[Any],
        options: Options,
        *,
        checks: Sequence[Check],
        model_name: str = "",
        apply_fn: Callable[[Any, Any], Any] | None = None,
        report: findings_lib.Report | None = None,
        sink: Sink | None = None,
        defer: str | None = "all",
    ):
        # Under a strategy each replica would need its own rows: those steps fold every step.
        strategy_scope = replicas.entering_strategy_of(variables)
        defer = None if tf.distribute.has_strategy() or strategy_scope else defer
        self.options = options
        self.rebind(optimizer, apply_fn)
        self._learning_rate = lambda: updating.learning_rate(self.optimizer)  # in-graph
        self.variables = list(variables)
        self.transform = options.transform
        self.checks = list(checks)
        self.cadence = options.every
        self.policy = options.policy
        self.layout = Layout.from_variables(self.variables, model_name)
        self.report = findings_lib.Report() if report is None else report
        self.sink = sink
        # What the owner knows for the judgment (`Context.notes`), e.g. ``"chance_loss"``.
        self.notes: dict[str, Any] = {}
        self._read_states = StateReader(self.checks)
        self._eager_fold: Any = None  # `_fold_state` as a graph, for eager steps
        # Filled while tracing: which variables got a None gradient, and which got one at least
        # once (Python state: facts about the traced graph, the same on every call of it).
        self.none_indices: set[int] = set()
        self.present_indices: set[int] = set()
        with _compat.outside_trace(), strategy_scope or contextlib.nullcontext():
            self._transform_state = tf.nest.map_structure(
                replicas.state_variable, self.transform.init(self.variables)
            )
            for check in self.checks:
                check.build(self.layout)
            self._step = replicas.state_variable(0, tf.int64, "gradguard_step")
            self.notes.update(updating.notes_of(optimizer))
            self._rates = updating.RateHistory(self.notes["lr_start"])
            self.deferred = deferred.for_checks(
                self.checks, options.every, options.read_every, self._step, defer
            )
            # loss, grad norm before and after the transforms, at the latest step.
            self._latest = replicas.state_variable([np.nan] * 3, tf.float32)
            self._clipped = replicas.state_variable(0, tf.int64)
            self._recorder: StepRecorder | None = None
            if sink is not None:
                self._recorder = StepRecorder(
                    sink,
                    self.layout,
                    per_variable=options.scalars_per_variable,
                    learning_rate=self._learning_rate,
                    every=options.every,
                    extra=[scalar for check in self.checks for scalar in check.scalars],
                )

    def rebind(self, optimizer: keras.optimizers.Optimizer, apply_fn: Any = None) -> None:
        """Updates with `optimizer` from now on (one made anew for the same variables)."""
        self.optimizer = optimizer
        self._apply = optimizer.apply if apply_fn is None else apply_fn
        # A LossScaleOptimizer's gradients arrive scaled: checks and transforms see them
        # unscaled, and the scaler keeps deciding which steps to skip and how to rescale.
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        self._loss_scaler = optimizer if scaled else None

    def ignore(self, code: str) -> None:
        """Stops reporting `code` for this core, here and in ``gradguard inspect`` of its logs.

        For judgments that do not apply to this training (the loss of a GAN's player, which an
        adversary is trained to raise, does not decrease by design).
        """
        ignore = findings_lib.Policy.IGNORE
        if self.policy[code] is ignore:
            return
        self.policy = self.policy.overriding(code, ignore)
        if self._recorder is not None:
            ignored = sorted(c for c, policy in self.policy.items() if policy is ignore)
            self._recorder.note(ignored=ignored)

    @property
    def steps(self) -> int:
        """Updates seen so far (a host read)."""
        return int(self._step.numpy())

    def steps_tensor(self) -> tf.Tensor:
        """Updates seen so far, in-graph."""
        return self._step.read_value()

    # -- in-graph ------------------------------------------------------------------------------

    # Plain TensorFlow code: AutoGraph converting it (the core, the transforms, every check)
    # would add seconds to the first call of every step that calls it.
    @tf.autograph.experimental.do_not_convert
    @_compat.without_op_callbacks()
    def update(
        self,
        loss: tf.Tensor | None,
        grads: Sequence[Any],
        absent: Iterable[int] = (),
        activations: Sequence[Any] = (),
        bad_input: Any = 0,
        measure: bool | None = None,
        before_apply: Callable[[tf.Tensor, tf.Tensor, bool], None] | None = None,
    ) -> Stats:
        """Transforms `grads`, applies them, and folds the step into every check (in-graph).

        Args:
          loss: The step's scalar loss; None when not known (the loss checks stay silent).
          grads: One gradient (or None) per variable, in the order of `variables`.
          absent: Indices of variables this update does not cover at all (their entry in
            `grads` is None, but they are not reported as having no gradient).
          activations: The watched layer outputs of this step's forward pass, one
            ``[examples, units]`` tensor per site (see `Stats.activations`).
          bad_input: The batch's faults (`stats.batch_faults`), or a function of `healthy` (below).
          measure: Whether this step measures the weights' change and writes the scalars:
            known when tracing (`TrainStep` traces a lean and a measuring step, and the host
            picks), or None to decide in-graph on the cadence (the guard, inside the user's
            function).
          before_apply: Called in-graph as ``before_apply(healthy, step, exposed)`` just
            before the update is applied (`healthy`: the loss, if known, and the gradients are
            finite; `exposed`: whether a non-finite update would reach the weights, with no
            skipping transform or loss scaler in the way).

        Returns:
          The step's statistics.
        """
        if len(grads) != len(self.variables):
            raise ValueError(f"got {len(grads)} gradients for {len(self.variables)} variables.")
        absent = set(absent)
        self.none_indices.update(i for i, g in enumerate(grads) if g is None and i not in absent)
        self.present_indices.update(i for i, g in enumerate(grads) if g is not None)
        with norms.computing_norms_once():
            return self._update(loss, grads, activations, bad_input, measure, before_apply)

    def _update(
        self,
        loss: tf.Tensor | None,
        grads: Sequence[Any],
        activations: Sequence[Any],
        bad_input: Any,
        measure: bool | None,
        before_apply: Callable[[tf.Tensor, tf.Tensor, bool], None] | None,
    ) -> Stats:
        with tf.name_scope(SCOPE):
            step = self._step.read_value()
            loss_known = loss is not None
            loss = tf.constant(0.0) if loss is None else tf.cast(loss, tf.float32)
            loss, grads, apply_factor, loss_scale = updating.gather(loss, grads, self._loss_scaler)
            grad_sq = norms.sq_norms(grads)
            grad_norm = norms.global_norm(grads)
            # float16 overflow the loss scaler will skip on purpose: not a non-finite finding.
            scaled = self._loss_scaler is not None
            overflow = tf.constant(scaled) & (
                ~tf.math.is_finite(grad_norm) & tf.math.is_finite(loss)
            )
            new_grads, gate = updating.transform(
                self.transform, self._transform_state, grads, self.variables, overflow, scaled
            )
            present = [i for i, g in enumerate(new_grads) if g is not None]
            applied = updating.applied(self.optimizer, bool(present), gate, overflow, scaled)
            finite_loss = tf.math.is_finite(loss) if loss_known else tf.constant(True)
            healthy = tf.math.is_finite(grad_norm) & finite_loss
            bad_input = bad_input(healthy) if callable(bad_input) else bad_input
            if before_apply is not None:
                # A gate (skip_nonfinite) or the loss scaler keeps a non-finite update from the
                # weights; without either, the update may overwrite them.
                exposed = gate is None and self._loss_scaler is None
                before_apply(healthy, step, exposed)
            before: list[Any] = []
            if measure is None:
                measured = self.cadence.measures(step)
                before, learning_rate = deltas.snapshot(
                    self.variables, present, measured, self._learning_rate
                )
            elif measure:
                measured = tf.constant(True)
                before = [deltas.part(self.variables[i]) for i in present]
                learning_rate = self._learning_rate()  # before the update moves a schedule
            else:
                measured = tf.constant(False)
                learning_rate = tf.constant(np.nan)
        # The optimizer's own work stays in the caller's name scope: it is not gradguard's cost.
        to_apply = [new_grads[i] for i in present]
        variables = [self.variables[i] for i in present]
        updating.apply(self._apply, to_apply, variables, gate, apply_factor)
        with tf.name_scope(SCOPE):
            if measure is None:
                update_sq, weight_sq, grad_sample_sq, unit_spread = deltas.measured(
                    self.variables, present, before, to_apply, applied & measured
                )
            elif measure:
                # A skipped update leaves the weights as they were: its delta is 0, no branch.
                update_sq, weight_sq, grad_sample_sq, unit_spread = deltas.measure(
                    self.variables, present, before, to_apply
                )
            else:
                update_sq = weight_sq = grad_sample_sq = unit_spread = tf.zeros(
                    [len(self.variables)]
                )
            grad_norm_after = norms.global_norm(new_grads)
            stats = Stats(
                step=step,
                loss=loss,
                grad_sq=grad_sq,
                grad_norm=grad_norm,
                grad_norm_after=grad_norm_after,
                applied=applied,
                measured=measured,
                update_sq=update_sq,
                weight_sq=weight_sq,
                grad_sample_sq=grad_sample_sq,
                unit_spread=unit_spread,
                loss_scale=loss_scale,
                overflow=overflow,
                vetoed=tf.constant(False) if gate is None or not present else ~gate,
                bad_input=tf.convert_to_tensor(bad_input, tf.int32),
                loss_known=tf.constant(loss_known),
                activations=tuple(activations),
            )
            self._fold(stats, learning_rate, measure)
        return stats

    def _fold(self, stats: Stats, learning_rate: tf.Tensor, measure: bool | None) -> None:
        """Folds the step into every check, the counters and the recorder (`measure`: as given)."""
        clipped = stats.applied & (stats.grad_norm_after < stats.grad_norm * (1.0 - 1e-6))
        if tf.executing_eagerly() and not tf.distribute.has_strategy():
            # One graph for the checks' small ops; a known `measure` spares a lean step's work.
            fields = dict(vars(stats), measured=stats.measured if measure is None else measure)
            if self._eager_fold is None:
                self._eager_fold = _compat.function(self._fold_state, reduce_retracing=True)
            self._eager_fold(fields, clipped)
        else:
            self._fold_state(vars(stats), clipped)
        if self._recorder is not None:
            self._recorder.record(
                stats,
                present=self.present_indices,
                clipped=clipped,
                clipped_steps=self._clipped,
                learning_rate=learning_rate,
            )
        self._step.assign_add(1)

    def _fold_state(self, fields: dict[str, Any], clipped: tf.Tensor) -> None:
        """Folds the step into the checks (a row for the deferrable ones if they wait; in-graph)."""
        stats = Stats(**fields)
        later = self.deferred
        if later is None:
            fold(self.checks, stats)
        else:
            fold([check for check in self.checks if check not in later.checks], stats)
            later.write(stats)
        self._latest.assign(tf.stack([stats.loss, stats.grad_norm, stats.grad_norm_after]))
        self._clipped.assign_add(tf.cast(clipped, tf.int64))

    # -- host side -----------------------------------------------------------------------------

    @_compat.without_op_callbacks()
    def read(
        self,
        steps: int,
        extra: Iterable[findings_lib.Finding] = (),
        *,
        raise_errors: bool = True,
        final: bool = False,
    ) -> findings_lib.Report:
        """Host read: judges every check and emits the findings (with `extra` ones).

        Args:
          steps: Steps observed so far.
          extra: Findings made elsewhere (at trace time) to emit with the checks' ones.
          raise_errors: Whether a new finding with policy `raise` raises.
          final: The run is over, or the user asked for the report (`Context.final`).

        Returns:
          The report, with all findings so far.

        Raises:
          GradGuardError: for a new finding whose policy is `raise` (if `raise_errors`).
        """
        states = self._read_states()
        notes: dict[str, Any] = {"adam_epsilon": updating.adam_epsilon_scale(self.optimizer)}
        for check, state in zip(self.checks, states):
            notes.update(check.notes(state))
        learning_rate = updating.learning_rate_value(self.optimizer)
        notes["lr_before"] = self._rates.before(steps, learning_rate)
        context = Context(
            steps=steps,
            step=steps - 1,
            none=frozenset(range(len(self.variables))) - self.present_indices,
            learning_rate=learning_rate,
            notes={**self.notes, **notes},
            final=final,
        )
        if self._recorder is not None:  # for `gradguard inspect`'s judgment
            self._recorder.note(**{key: context.notes.get(key) for key in LOGGED_NOTES})
        self.report.steps_observed = steps
        found = [*extra, *oldnames.ignored_settings(self.optimizer, steps - 1)]
        for check, state in zip(self.checks, states):
            if type(check).findings is Check.findings:
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

    def check_transform(self, step: int) -> None:
        """Lets the transform refuse to go on (e.g. too many skipped updates in a row).

        Raises:
          GradGuardError: from the transform; its finding is kept in the report first.
        """
        state = tf.nest.map_structure(lambda v: v.numpy(), self._transform_state)
        try:
            self.transform.on_read(state, step)
        except errors.GradGuardError as e:
            self.report.add(e.finding)
            raise

    def latest_healthy(self) -> bool:
        """Whether the latest step's loss and gradient norm were finite (a host read)."""
        return bool(np.isfinite(self._latest.numpy()[:2]).all())

    def statistics(self) -> dict[str, float]:
        """The latest step's loss and gradient norms and the run's counters (a host read)."""
        stats: dict[str, float] = {"steps": self.steps}
        stats.update(
            zip(("loss", "grad_norm", "grad_norm_after"), map(float, self._latest.numpy()))
        )
        stats["clipped_steps"] = int(self._clipped.numpy())
        for check, state in zip(self.checks, self._read_states()):
            stats.update(check.summary(state))
        if self._loss_scaler is not None:
            stats["loss_scale"] = float(np.asarray(self._loss_scaler.dynamic_scale))
        return stats
