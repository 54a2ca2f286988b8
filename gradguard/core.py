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
from gradguard import sinks as sinks_lib
from gradguard import transforms as transforms_lib

__all__ = ["Every", "StepCore"]


class Every:
    """Cadence: due on steps 0, n, 2n, ... (0-based), for Python ints and for tensors.

    Example:
      >>> every = Every(100)
      >>> [s for s in range(250) if every(s)]
      [0, 100, 200]
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"every must be a positive int (steps between reads); got {n!r}.")
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
        if not isinstance(transform, transforms_lib.GradientTransform):
            raise TypeError(
                f"transform must be a gradguard GradientTransform, e.g. "
                f"gradguard.chain(gradguard.clip_by_global_norm(1.0), gradguard.skip_nonfinite());"
                f" got {type(transform).__name__}."
            )
        checks = checks_lib.default_checks() if checks is None else list(checks)
        for check in checks:
            if not isinstance(check, checks_lib.Check):
                raise TypeError(
                    f"checks must be gradguard.checks.Check instances; got {type(check).__name__}."
                )
        self.optimizer = optimizer
        self._apply = optimizer.apply if apply_fn is None else apply_fn
        self.variables = list(variables)
        self.transform = transform
        self.checks = checks
        self.cadence = Every(every)
        self.policy = findings_lib.resolve_policy(policy)
        self.layout = checks_lib.Layout.from_variables(self.variables, model_name)
        self.report = findings_lib.Report() if report is None else report
        # Filled while tracing: which variables got a None gradient, and which got a gradient at
        # least once. Python state is fine here: these are facts about the traced graph, the
        # same on every call of the trace.
        self.none_indices: set[int] = set()
        self.present_indices: set[int] = set()
        with tf.init_scope():
            self._transform_state = tf.nest.map_structure(
                lambda value: tf.Variable(value, trainable=False),
                transform.init(self.variables),
            )
            for check in self.checks:
                check.build(self.layout)
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="gradguard_step")
            # loss, grad norm before and after the transforms, at the latest step.
            self._latest = tf.Variable([np.nan] * 3, dtype=tf.float32, trainable=False)
            self._clipped = tf.Variable(0, dtype=tf.int64, trainable=False)
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
                    learning_rate=lambda: self.optimizer.learning_rate,
                    every=every,
                )
                if sinks
                else None
            )

    def update(
        self, loss: tf.Tensor, grads: Sequence[Any], absent: Iterable[int] = ()
    ) -> checks_lib.Stats:
        """Transforms `grads`, applies them, and folds the step into every check (in-graph).

        Args:
          loss: The step's scalar loss.
          grads: One gradient (or None) per variable, in the order of `variables`.
          absent: Indices of variables this update does not cover at all (their entry in
            `grads` is None, but they are not reported as having no gradient).

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
        grad_sq = tf.stack([zero if g is None else transforms_lib.sq_norm(g) for g in grads])
        grad_norm = tf.sqrt(tf.reduce_sum(grad_sq))

        state = tf.nest.map_structure(lambda v: v.read_value(), self._transform_state)
        new_grads, new_state = self.transform.update(list(grads), state, self.variables)
        tf.nest.map_structure(lambda v, value: v.assign(value), self._transform_state, new_state)
        grad_norm_after = transforms_lib.global_norm(new_grads)
        gate = self.transform.should_apply(new_state)

        present = [i for i, g in enumerate(new_grads) if g is not None]
        measure = self.cadence(step)
        no_deltas = (tf.zeros([n]), tf.zeros([n]))

        def apply() -> tuple[tf.Tensor, tf.Tensor]:
            self._apply([new_grads[i] for i in present], [self.variables[i] for i in present])
            return no_deltas

        def apply_and_measure() -> tuple[tf.Tensor, tf.Tensor]:
            # Reading before the update makes TensorFlow copy a variable it then updates in
            # place; that copy is why deltas are measured only on cadence steps.
            before = {i: tf.convert_to_tensor(self.variables[i]) for i in present}
            if self._recorder is not None:
                self._recorder.note_learning_rate()  # before the update moves a schedule on
            self._apply([new_grads[i] for i in present], [self.variables[i] for i in present])
            update_sq, weight_sq = [zero] * n, [zero] * n
            for i, old in before.items():
                new = tf.convert_to_tensor(self.variables[i])
                update_sq[i] = transforms_lib.sq_norm(new - old)
                weight_sq[i] = transforms_lib.sq_norm(old)
            return tf.stack(update_sq), tf.stack(weight_sq)

        def apply_maybe_measure() -> tuple[tf.Tensor, tf.Tensor]:
            return tf.cond(measure, apply_and_measure, apply)

        if not present:
            applied = tf.constant(False)
            update_sq, weight_sq = no_deltas
        elif gate is None:
            applied = tf.constant(True)
            update_sq, weight_sq = apply_maybe_measure()
        else:
            applied = gate
            update_sq, weight_sq = tf.cond(gate, apply_maybe_measure, lambda: no_deltas)

        loss = tf.cast(loss, tf.float32)
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
        )
        for check in self.checks:
            check.update(stats)
        self._latest.assign(tf.stack([loss, grad_norm, grad_norm_after]))
        clipped = applied & (grad_norm_after < grad_norm * (1.0 - 1e-6))
        self._clipped.assign_add(tf.cast(clipped, tf.int64))
        if self._recorder is not None:
            self._recorder.record(
                stats, present=self.present_indices, clipped=clipped, clipped_steps=self._clipped
            )
        self._step.assign_add(1)
        return stats

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
        )
        self.report.steps_observed = steps
        found = list(extra)
        for check in self.checks:
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
            self.transform.on_read(
                tf.nest.map_structure(lambda v: v.numpy(), self._transform_state), steps - 1
            )
        return self.report

    def statistics(self) -> dict[str, float]:
        """The latest step's loss and gradient norms and the run's counters (a host read)."""
        loss, grad_norm, grad_norm_after = (float(x) for x in self._latest.numpy())
        skipped = next(
            (int(c.skipped.numpy()) for c in self.checks if isinstance(c, checks_lib.NonFinite)),
            None,
        )
        stats = {
            "steps": int(self._step.numpy()),
            "loss": loss,
            "grad_norm": grad_norm,
            "grad_norm_after": grad_norm_after,
            "clipped_steps": int(self._clipped.numpy()),
        }
        if skipped is not None:
            stats["skipped_updates"] = skipped
        return stats

    def _learning_rate(self) -> float | None:
        try:
            return float(np.asarray(self.optimizer.learning_rate))
        except (TypeError, ValueError, AttributeError):
            return None
