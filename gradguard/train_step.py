"""TrainStep: a drop-in, guarded replacement for a hand-written `tf.function` train step."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

from gradguard import _compat, diagnose, losses, norms, suspects, unadapted
from gradguard import accumulate as accumulate_lib
from gradguard import activations as activations_lib
from gradguard import batch as batch_lib
from gradguard import findings as findings_lib
from gradguard import origin as origin_lib
from gradguard import replicas as replicas_lib
from gradguard import sinks as sinks_lib
from gradguard import stats as stats_lib
from gradguard import transforms as transforms_lib
from gradguard.core import SCOPE, StepCore
from gradguard.findings import Policy
from gradguard.options import ChecksArg, Options, check_execution, check_optimizer
from gradguard.traced import TraceFindings

__all__ = ["TrainStep"]


class TrainStep:
    """A guarded train step: forward, loss, gradients, transforms, update and checks in one graph.

    Replaces a hand-written step such as::

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

    with the same numbers, plus the transforms (clipping, skipping non-finite updates) and the
    checks. Statistics are kept in-graph every step; the host reads them only every `every`
    steps (and in `report()`), where findings are logged or raised as their policy says.

    Example:
      >>> step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3),
      ...                            keras.losses.MeanSquaredError(),
      ...                            transform=gradguard.chain(
      ...                                gradguard.clip_by_global_norm(1.0),
      ...                                gradguard.skip_nonfinite()))  # doctest: +SKIP
      >>> for x, y in dataset:  # doctest: +SKIP
      ...     loss = step(x, y)
      >>> print(step.report())  # doctest: +SKIP

    Args:
      model: A Keras model (or layer) to train; its `trainable_variables` are updated.
      optimizer: A Keras 3 optimizer.
      loss_fn: A `keras.losses.Loss`, a Keras loss name (``"mse"``) or any
        ``fn(y_true, y_pred)``; a non-scalar result is averaged, as Keras does, and
        `model.losses` (regularizers) are added. With `sample_weight`, a function must return
        one loss per example (a scalar cannot be weighted; it is refused).
      transform: Gradient transform applied before the update. Default: `skip_nonfinite()`.
      checks: Checks to run. Default: `gradguard.checks.default_checks()`. Add
        `gradguard.checks.ActivationHealth()` to watch the activations (`dead-units`,
        saturation): the outputs of the activation-bearing layers are then captured in the
        training forward pass, and the layers are found once, at the first call, with one
        inference pass on its batch. Under a multi-replica strategy a unit is alive if it fired
        on any replica's slice. A list, or a function returning a fresh list.
      every: Steps between update measurements and TensorBoard scalars, and by default
        between host reads (default 100).
      read_every: Steps between host reads, where the checks are judged and findings raised or
        logged (default: `every`). Each read waits for the step to finish; with ``every=1``,
        ``read_every=100`` logs every statistic on every step and still syncs rarely.
      jit_compile: Compile the step with XLA. Under a multi-replica strategy, XLA compiles
        each replica's forward and backward pass; the gradient sum, the checks, the
        transforms and the update run as a graph (TensorFlow cannot compile the cross-replica
        synchronization on CPU devices).
      run_eagerly: Run the step eagerly (for debugging) instead of as a `tf.function`.
      policy: Per finding code, ``"raise"``, ``"warn"`` or ``"ignore"``. By default errors raise
        a `GradGuardError` at the host read and warnings are logged.
      accumulate: Average the gradients of `accumulate` calls (micro-batches) and update every
        `accumulate`-th call, as one batch that many times larger would. Costs one copy of the
        weights; sparse gradients are accumulated densely.
      strategy: A `tf.distribute.Strategy` to run the step on (default: the strategy whose
        scope the TrainStep is created in). The step runs under `strategy.run`: each replica
        takes its slice of the global batch, and gradients are summed over replicas before the
        checks and transforms, so the clipped and logged norms are the global ones.
      log_dir: Write every statistic as a TensorBoard scalar under this directory, in-graph,
        every `every` steps (tags in `gradguard.sinks`); findings as texts. View with
        ``tensorboard --logdir DIR``; read back with ``gradguard inspect DIR``.
      sink: Where else statistics and findings go, e.g.
        ``gradguard.sinks.MultiSink([gradguard.sinks.LoggingSink(), ...])``.
      scalars_per_variable: Per-variable scalars (``gradguard_grad_norm/dense/kernel``)
        instead of per-layer ones (``gradguard_grad_norm/dense``), the default.

    Raises:
      TypeError: for an optimizer that is not a Keras optimizer, a transform that is not a
        `GradientTransform`, a model that is not callable or a loss that is not callable.
      ValueError: for `every < 1` or `read_every < 1`.
    """

    def __init__(
        self,
        model: Any,
        optimizer: keras.optimizers.Optimizer,
        loss_fn: losses.LossFn | str,
        *,
        transform: transforms_lib.GradientTransform | None = None,
        checks: ChecksArg = None,
        every: int = 100,
        read_every: int | None = None,
        jit_compile: bool = False,
        run_eagerly: bool = False,
        policy: Mapping[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        sink: sinks_lib.Sink | None = None,
        scalars_per_variable: bool = False,
        accumulate: int = 1,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if not callable(model) or not hasattr(model, "trainable_variables"):
            raise TypeError(f"model must be a Keras model or layer; got {type(model).__name__}.")
        check_optimizer(optimizer)
        self.options = Options.create(
            transform=transform,
            checks=checks,
            every=every,
            read_every=read_every,
            policy=policy,
            log_dir=log_dir,
            sink=sink,
            scalars_per_variable=scalars_per_variable,
        )
        if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
            raise ValueError(
                f"accumulate must be a positive int (micro-batches per update); got {accumulate!r}."
            )
        check_execution(jit_compile, run_eagerly, strategy)
        if strategy is None and tf.distribute.has_strategy():
            strategy = tf.distribute.get_strategy()  # created under strategy.scope()
        self.strategy = strategy
        self.accumulate = accumulate
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = losses.resolve(loss_fn)
        self._core: StepCore | None = None
        self._steps = 0
        # Layers whose outputs checks watch (`checks.ActivationHealth`), found at build time, and
        # the outputs the current trace's forward pass captured from them.
        self._watched_layers: list[Any] = []
        self._sites: list[activations_lib.Site] = []
        self._captured: tuple[Any, ...] = ()
        self._unadapted: list[Any] = []  # Normalization layers never adapted, at build time
        self._traced = TraceFindings(model, self.loss_fn, self._forward_loss)

        # Under several replicas XLA compiles each replica's forward and backward pass only:
        # TensorFlow compiles a step that synchronizes replicas (the gradient sum, the
        # optimizer's all-reduce) only when every device is a GPU, so the sum, the checks and
        # the update run as a graph around it.
        per_replica_jit = bool(
            jit_compile and strategy is not None and strategy.num_replicas_in_sync > 1
        )
        self._gradients: Callable[..., tuple[tf.Tensor, list[Any], tuple[Any, ...]]] = (
            _compat.function(self._loss_and_grads, jit_compile=True)
            if per_replica_jit
            else self._loss_and_grads
        )
        # Two steps: a lean one for most steps and a measuring one for cadence steps (the
        # weights' change, the TensorBoard scalars). The host knows the step number without a
        # sync, so it picks; neither step branches on the cadence in-graph. (With gradient
        # accumulation the update's step is not the call's: one step measures in-graph.)
        measures: tuple[bool | None, ...] = (False, True) if accumulate == 1 else (None,)
        self._fns: dict[bool | None, Callable[..., tf.Tensor]] = {}
        self._keeper: origin_lib.Keeper | None = None
        self._xla = bool(jit_compile)
        for measure in measures:
            # `_compat.function` keeps TensorFlow's retracing detector from counting the traces
            # of every TrainStep in the process as one's.
            step: Callable[..., Any] = functools.partial(self._sharded_step, measure=measure)
            if jit_compile and not per_replica_jit and not run_eagerly:
                step = _compat.function(step, jit_compile=True, reduce_retracing=True)
            kept = functools.partial(self._keeping, step)
            self._fns[measure] = (
                kept if run_eagerly else _compat.function(kept, reduce_retracing=True)
            )

    @property
    def core(self) -> StepCore:
        """The shared guarded-update core (built on the first call)."""
        if self._core is None:
            raise RuntimeError("TrainStep has not run yet: call it on a batch first.")
        return self._core

    def __call__(self, *batch: Any) -> tf.Tensor:
        """Runs one training step on `(x, y)`, `(x, y, sample_weight)` or a tuple of them.

        Returns:
          The loss (scalar tensor), including `model.losses`.

        Raises:
          GradGuardError: at a host read, for a new finding whose policy is `raise`.
        """
        x, y, sample_weight = batch_lib.unpack(batch)
        if self._core is None:
            self._build(x, sample_weight)
            self._keeper = origin_lib.Keeper()
        # The host picks the lean or the measuring step (None: one step decides in-graph).
        measure = None if None in self._fns else self.options.every.measures(self._updates)
        fn = self._fns[measure]
        if self.core.deferred is not None and measure is not None:
            self.core.deferred.before_step(measure)  # folds the rows before a measuring step
        # A None argument costs the call a few percent on millisecond steps: left out when unused.
        try:
            loss = fn(x, y) if sample_weight is None else fn(x, y, sample_weight)
        except (ValueError, tf.errors.InvalidArgumentError) as e:  # when traced, or run
            problem = batch_lib.mismatched_rows((x, y, sample_weight))
            if problem is None or isinstance(e, batch_lib.ModelInputError):
                raise  # (explained already)
            raise ValueError(problem) from e
        self._steps += 1
        read = self.options.read_every(self._steps - 1)
        trace_findings = self._traced.after_call(
            self.core, (x, y, sample_weight), self._steps - 1, read
        )
        if trace_findings or read:
            self._replay()
            self.core.read(self._updates, trace_findings)
        return loss

    def report(self) -> findings_lib.Report:
        """Reads the checks now and returns every finding so far (never raises for them)."""
        self._replay()
        batches = self._traced.read_findings(self._steps - 1, final=True)
        return self.core.read(self._updates, batches, raise_errors=False, final=True)

    def _sharded_step(
        self, x: Any, y: Any, sample_weight: Any = None, *, measure: bool | None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """One step here, or on every replica of the strategy, each on its slice of the batch."""
        if self.strategy is None:
            return self._step(x, y, sample_weight, measure)
        return replicas_lib.run_sharded(
            self.strategy,
            lambda x, y, sample_weight: self._step(x, y, sample_weight, measure),
            (x, y, sample_weight),
        )

    def _keeping(self, step: Callable[..., Any], x: Any, y: Any, sample_weight: Any = None) -> Any:
        """Runs `step`; keeps the first unhealthy step's batch, to say where its NaN came from.

        (`origin`; outside XLA, which cannot keep a batch of any shape. Under a strategy the
        global batch, unless the strategy already split it.)
        """
        loss, healthy = step(x, y, sample_weight)
        batch = (x, y, sample_weight)
        split = any(isinstance(t, tf.distribute.DistributedValues) for t in tf.nest.flatten(batch))
        if self._keeper is not None and not split:
            with tf.name_scope(SCOPE):
                self._keeper.keep(healthy, self.core.steps_tensor() - 1, batch)
        return loss

    def _replay(self) -> None:
        """Replays the batch kept from the first non-finite step, once: where its NaN began."""
        kept = self._keeper.unreplayed() if self._keeper is not None else None
        if kept is None:
            return
        step, (x, y, sample_weight) = kept.step, kept.batch

        def loss(y: Any, y_pred: Any) -> tf.Tensor:
            return losses.compute(
                self.loss_fn, y, y_pred, sample_weight, getattr(self.model, "losses", [])
            )

        found = origin_lib.trace(self.model, x, y, sample_weight, loss)
        self.core.notes["non_finite_origin"] = origin_lib.note(found, step, xla=self._xla)

    @property
    def _updates(self) -> int:
        """Updates so far: a step is one update (`accumulate` calls make one)."""
        return self._steps // self.accumulate

    def statistics(self) -> dict[str, float]:
        """The latest step's loss and gradient norms and the run's counters (a host read)."""
        return self.core.statistics()

    @property
    def tracing_count(self) -> int:
        """Traces per input signature of the lean or the measuring step (0 when run eagerly)."""
        counts = [getattr(fn, "experimental_get_tracing_count", None) for fn in self._fns.values()]
        return max((count() for count in counts if count), default=0)

    def _build(self, x: Any, sample_weight: Any) -> None:
        if not getattr(self.model, "built", True) or not self.model.trainable_variables:
            batch_lib.call_model(self.model, x, training=False)  # builds the layers' variables
        variables = list(self.model.trainable_variables)
        if not variables:
            raise diagnose.no_trainable_variables(self.model)
        self._watch_activations(x)
        self._unadapted = unadapted.never_adapted_layers(self.model)
        scope = self.strategy.scope() if self.strategy else contextlib.nullcontext()
        with scope:
            if self.strategy is not None:
                replicas_lib.check_mirrored(self.strategy, variables, self.model)
            if not self.optimizer.built:
                self.optimizer.build(variables)
            self._core = StepCore(
                self.optimizer,
                variables,
                self.options,
                checks=self._checks,
                model_name=getattr(self.model, "name", ""),
                sink=self.options.sink_for(),
                defer=None if self._xla else "lean" if self.accumulate == 1 else "all",
            )
            notes = self._core.notes
            notes["suspects"] = suspects.of_model(self.model, self.loss_fn, self.optimizer)
            notes.update(suspects.of_inputs(self.model, x, sample_weight))
            if self.accumulate > 1:
                self._accumulator = accumulate_lib.Accumulator(variables, self.accumulate)

    def _watch_activations(self, x: Any) -> None:
        """Finds the layer outputs the checks watch, with one inference pass on `x` (once)."""
        self._checks = self.options.new_checks()
        watchers = [c for c in self._checks if c.watches_activations]
        if not watchers:
            return
        self._watched_layers, self._sites = activations_lib.find_sites(
            self.model,
            x,
            lambda x: batch_lib.call_model(self.model, x, training=False),
            getattr(self.model, "name", ""),
        )
        for check in watchers:
            check.watch(self._sites)

    def _forward_loss(self, x: Any, y: Any, sample_weight: Any) -> tf.Tensor:
        # Also the never-adapted Normalizations' outputs: their inputs, unchanged (`unadapted`).
        watched = len(self._watched_layers)
        with activations_lib.capture(self._watched_layers + self._unadapted) as outputs:
            y_pred = batch_lib.call_model(self.model, x, training=True)
        self._captured = activations_lib.flatten_outputs(outputs[:watched], self._sites)
        self._traced.record(y, y_pred)
        self._traced.input_scales.observe(
            (n, out[-1] if out else None) for n, out in zip(self._unadapted, outputs[watched:])
        )
        return losses.compute(
            self.loss_fn, y, y_pred, sample_weight, getattr(self.model, "losses", [])
        )

    def _loss_and_grads(
        self, x: Any, y: Any, sample_weight: Any
    ) -> tuple[tf.Tensor, list[Any], tuple[Any, ...]]:
        """The loss, the gradients and the watched activations of one forward pass."""
        variables = self.core.variables
        try:
            with tf.GradientTape() as tape:
                loss = self._forward_loss(x, y, sample_weight)
                scaled_loss = loss
                if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                    scaled_loss = self.optimizer.scale_loss(loss)  # float16 gradients underflow
        except (AttributeError, NotImplementedError) as e:
            if "numpy" not in str(e).lower():
                raise
            every = range(len(variables))
            causes = dict.fromkeys(every, diagnose.NUMPY_CALL)
            batch = (x, y, sample_weight)
            raise self._traced.no_gradient(
                self.core, every, batch, self._steps, causes
            ).error() from e
        captured, self._captured = self._captured, ()
        return loss, tape.gradient(scaled_loss, variables), captured

    def _step(self, x: Any, y: Any, sample_weight: Any, measure: bool | None = None) -> tf.Tensor:
        loss, grads, captured = self._gradients(x, y, sample_weight)
        if all(g is None for g in grads) and self.core.policy["none-gradient"] is Policy.RAISE:
            # Nothing could be trained: say why now, before XLA compiles or anything runs.
            every = range(len(grads))
            batch = (x, y, sample_weight)
            raise self._traced.no_gradient(self.core, every, batch, self._steps).error()
        with norms.computing_norms_once():  # the same norms as the core's
            with tf.name_scope(SCOPE):
                finite = tf.math.is_finite(norms.global_norm(grads))
                healthy = tf.math.is_finite(loss) & finite
                bad_input = stats_lib.batch_faults(healthy, x, y, sample_weight)
            if self.accumulate > 1:
                # The checks see the activations of the micro-batch that completes the update.
                self._accumulator.add(loss, grads, self._accumulated_update, (captured, bad_input))
            else:
                self.core.update(
                    loss, grads, activations=captured, bad_input=bad_input, measure=measure
                )
        return loss, healthy

    def _accumulated_update(self, loss: tf.Tensor, grads: list[Any], extra: Any) -> None:
        captured, bad_input = extra
        self.core.update(loss, grads, activations=captured, bad_input=bad_input)
