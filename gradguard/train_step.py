"""TrainStep: a drop-in, guarded replacement for a hand-written `tf.function` train step."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import tensorflow as tf

from gradguard import checks as checks_lib
from gradguard import diagnose
from gradguard import findings as findings_lib
from gradguard import sinks as sinks_lib
from gradguard import transforms as transforms_lib
from gradguard.core import Every, StepCore, check_optimizer

__all__ = ["TrainStep"]

LossFn = Callable[..., Any]


def _describe(structure: Any) -> str:
    """Shapes of a nested input, for error messages: {'a': (32, 4)}."""

    def shape(t: Any) -> str:
        s = getattr(t, "shape", None)
        return str(tuple(s)) if s is not None else type(t).__name__

    return str(tf.nest.map_structure(shape, structure))


def _unpack(batch: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    if len(batch) == 1 and isinstance(batch[0], (tuple, list)) and len(batch[0]) in (2, 3):
        batch = tuple(batch[0])
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    raise TypeError(
        f"TrainStep takes step(x, y), step(x, y, sample_weight) or step((x, y)); got "
        f"{len(batch)} argument(s) with shapes {_describe(batch)}."
    )


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
    checks. Statistics are folded in-graph every step; the host reads them only every `every`
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
      loss_fn: A `keras.losses.Loss` or any ``fn(y_true, y_pred)``; a non-scalar result is
        averaged, as Keras does, and `model.losses` (regularizers) are added.
      transform: Gradient transform applied before the update. Default: `skip_nonfinite()`.
      checks: Checks to run. Default: `gradguard.checks.default_checks()`.
      every: Steps between host reads and update measurements (default 100).
      jit_compile: Compile the step with XLA.
      run_eagerly: Run the step eagerly (for debugging) instead of as a `tf.function`.
      policy: Per finding code, ``"raise"``, ``"warn"`` or ``"ignore"``. By default errors raise
        a `GradGuardError` at the host read and warnings are logged.
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
      ValueError: for `every < 1`.
    """

    def __init__(
        self,
        model: Any,
        optimizer: keras.optimizers.Optimizer,
        loss_fn: LossFn,
        *,
        transform: transforms_lib.GradientTransform | None = None,
        checks: Iterable[checks_lib.Check] | None = None,
        every: int = 100,
        jit_compile: bool = False,
        run_eagerly: bool = False,
        policy: Mapping[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        sink: sinks_lib.Sink | None = None,
        scalars_per_variable: bool = False,
    ):
        if not callable(model) or not hasattr(model, "trainable_variables"):
            raise TypeError(f"model must be a Keras model or layer; got {type(model).__name__}.")
        check_optimizer(optimizer)
        if not callable(loss_fn):
            raise TypeError(
                f"loss_fn must be a keras.losses.Loss or a function (y_true, y_pred) -> loss; "
                f"got {type(loss_fn).__name__}."
            )
        if transform is not None and not isinstance(transform, transforms_lib.GradientTransform):
            raise TypeError(
                f"transform must be a gradguard GradientTransform, e.g. "
                f"gradguard.chain(gradguard.clip_by_global_norm(1.0), gradguard.skip_nonfinite());"
                f" got {type(transform).__name__}."
            )
        Every(every)  # validates
        findings_lib.resolve_policy(policy)  # validates
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self._core_args: dict[str, Any] = {
            "transform": transform,
            "checks": checks,
            "every": every,
            "policy": policy,
            "log_dir": log_dir,
            "sink": sink,
            "scalars_per_variable": scalars_per_variable,
        }
        self._core: StepCore | None = None
        self._steps = 0
        self._diagnosed: set[int] = set()
        # (y_true spec, y_pred spec) pairs seen while tracing, judged on the host after the call.
        self._loss_shapes: list[tuple[tf.TensorSpec, tf.TensorSpec]] = []
        self._loss_shapes_judged: set[tuple[Any, ...]] = set()

        # A function of this instance's own, so TensorFlow's retracing detector does not count
        # the traces of every TrainStep in the process as one function's.
        def step(x: Any, y: Any, sample_weight: Any) -> tf.Tensor:
            return self._step(x, y, sample_weight)

        if run_eagerly:
            self._fn: Callable[..., tf.Tensor] = step
        else:
            self._fn = tf.function(step, jit_compile=jit_compile, reduce_retracing=True)

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
        x, y, sample_weight = _unpack(batch)
        if self._core is None:
            self._build(x)
        loss = self._fn(x, y, sample_weight)
        self._steps += 1
        trace_findings = self._trace_findings(x, y, sample_weight)
        if trace_findings or self.core.cadence(self._steps - 1):
            self.core.read(self._steps, trace_findings)
        return loss

    def report(self) -> findings_lib.Report:
        """Reads the checks now and returns every finding so far (never raises for them)."""
        return self.core.read(self._steps, raise_errors=False)

    def statistics(self) -> dict[str, float]:
        """The latest step's loss and gradient norms and the run's counters (a host read)."""
        return self.core.statistics()

    @property
    def tracing_count(self) -> int:
        """How many times the step was traced (0 when run eagerly)."""
        count = getattr(self._fn, "experimental_get_tracing_count", None)
        return count() if count else 0

    def _build(self, x: Any) -> None:
        if not getattr(self.model, "built", True) or not self.model.trainable_variables:
            self._call_model(x, training=False)  # builds the layers' variables
        variables = list(self.model.trainable_variables)
        if not variables:
            raise ValueError(
                f"model {getattr(self.model, 'name', '')!r} has no trainable variables: every "
                "layer is frozen (trainable=False) or the model has no weights. Unfreeze the "
                "layers to train, e.g. model.layers[-1].trainable = True."
            )
        if not self.optimizer.built:
            self.optimizer.build(variables)
        self._core = StepCore(
            self.optimizer,
            variables,
            model_name=getattr(self.model, "name", ""),
            **self._core_args,
        )

    def _call_model(self, x: Any, training: bool) -> Any:
        try:
            return self.model(x, training=training)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
            expected = getattr(self.model, "inputs", None)
            hint = f" The model expects {_describe(expected)}." if expected else ""
            raise ValueError(
                f"model could not be called on x with shapes {_describe(x)}: {e}.{hint} Pass x "
                "as the model's inputs (a tensor, a tuple or a dict matching its Input layers)."
            ) from e

    def _forward_loss(self, x: Any, y: Any, sample_weight: Any) -> tf.Tensor:
        y_pred = self._call_model(x, training=True)
        if isinstance(y, tf.Tensor) or hasattr(y, "shape"):
            y_true = tf.convert_to_tensor(y)
            if isinstance(y_pred, tf.Tensor):
                self._loss_shapes.append(
                    (
                        tf.TensorSpec(y_true.shape, y_true.dtype),
                        tf.TensorSpec(y_pred.shape, y_pred.dtype),
                    )
                )
        if isinstance(self.loss_fn, keras.losses.Loss):
            value = self.loss_fn(y, y_pred, sample_weight=sample_weight)
        else:
            value = self.loss_fn(y, y_pred)
            if value is not None and sample_weight is not None:
                value = tf.convert_to_tensor(value)
                weight = tf.cast(sample_weight, value.dtype)
                while weight.shape.rank is not None and weight.shape.rank < value.shape.rank:
                    weight = weight[..., None]
                value = value * weight
        if value is None:
            raise TypeError("loss_fn returned None; it must return the loss as a float tensor.")
        value = tf.convert_to_tensor(value)
        if not value.dtype.is_floating:
            raise TypeError(
                f"loss_fn returned a {value.dtype.name} tensor; a loss must be floating point "
                "to have gradients. Cast labels and predictions to float before the loss."
            )
        if value.shape.rank != 0:
            value = tf.reduce_mean(value)  # as Keras' default "sum_over_batch_size"
        value = tf.cast(value, tf.float32)
        regularization = getattr(self.model, "losses", [])
        if regularization:
            value += tf.add_n([tf.cast(r, tf.float32) for r in regularization])
        return value

    def _step(self, x: Any, y: Any, sample_weight: Any) -> tf.Tensor:
        variables = self.core.variables
        try:
            with tf.GradientTape() as tape:
                loss = self._forward_loss(x, y, sample_weight)
        except (AttributeError, NotImplementedError) as e:
            if "numpy" not in str(e).lower():
                raise
            finding = diagnose.none_gradient_finding(
                self.core.layout.names,
                range(len(variables)),
                dict.fromkeys(range(len(variables)), diagnose.NUMPY_CALL),
                self._steps,
            )
            raise finding.error() from e
        grads = tape.gradient(loss, variables)
        if all(g is None for g in grads) and self.core.policy["none-gradient"] == "raise":
            # Nothing could be trained: say why now, before XLA compiles or anything runs.
            causes = diagnose.chain_breaks(self._forward_loss, (x, y, sample_weight), variables)
            raise diagnose.none_gradient_finding(
                self.core.layout.names, range(len(variables)), causes, self._steps
            ).error()
        self.core.update(loss, grads)
        return loss

    def _trace_findings(self, x: Any, y: Any, sample_weight: Any) -> list[findings_lib.Finding]:
        """Findings known from the traced graph, each made once: no gradient, broadcasting."""
        core, step = self.core, self._steps - 1
        found = []
        new_none = core.none_indices - self._diagnosed
        if new_none:
            self._diagnosed |= new_none
            causes = diagnose.chain_breaks(
                self._forward_loss, (x, y, sample_weight), core.variables
            )
            found.append(
                diagnose.none_gradient_finding(core.layout.names, core.none_indices, causes, step)
            )
        while self._loss_shapes:
            y_spec, pred_spec = self._loss_shapes.pop()
            key = (
                tuple(y_spec.shape.as_list() if y_spec.shape.rank is not None else [None]),
                tuple(pred_spec.shape.as_list() if pred_spec.shape.rank is not None else [None]),
            )
            if key in self._loss_shapes_judged:
                continue
            self._loss_shapes_judged.add(key)
            finding = diagnose.loss_broadcast(self._raw_loss, y_spec, pred_spec, step)
            if finding is not None:
                found.append(finding)
        return found

    def _raw_loss(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> Any:
        return self.loss_fn(y_true, y_pred)
