"""How a guarded update reaches the optimizer, around `StepCore.update`.

* `gather`: the whole batch's loss and gradients, as checks and transforms must see them
  (summed over replicas, the loss scale removed), and the factor the optimizer's own gradients
  need to come out as Keras expects;
* `transform`: the transformed gradients, and the transform's gate;
* `apply`: the present gradients handed to the optimizer, behind the transform's gate if any;
* `applied`: whether the call changes the weights (a skipped update, a loss-scale overflow, a
  Keras optimizer accumulating gradients);
* `build`: an optimizer built before the update that would build it, outside the trace (and
  what its build writes, lost when built in a trace: `optimizer-build-lost`); at its first
  update, the variables it updates stored in float16 (`weights-half-precision`), and a learning
  rate its traced step sets to a constant (`frozenrate`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, frozenrate, replicas
from gradguard import transforms as transforms_lib
from gradguard.findings import Finding, listing

__all__ = ["applied", "apply", "build", "gather", "transform"]

EPSILON = 0.1  # an adaptive optimizer's epsilon at or above this is large (1e-7 is Keras')
_SAMPLE = 4096  # elements of each variable's Adam state read for its scale


def gather(
    loss: tf.Tensor, grads: Sequence[Any], loss_scaler: keras.optimizers.LossScaleOptimizer | None
) -> tuple[tf.Tensor, list[Any], tf.Tensor | None, tf.Tensor]:
    """The whole batch's loss and unscaled gradients, and what `apply` must scale back.

    Returns:
      The loss, the gradients, the factor the optimizer's gradients need (None: 1) and the
      loss scale.
    """
    grads = list(grads)
    apply_factor: tf.Tensor | None = None
    replica = replicas.summing_replica_context()
    if replica is not None:
        # Checks and transforms must see the gradient of the whole batch (the clipped norm is
        # the global one), so sum over replicas first. Keras sums again inside `apply`;
        # handing it 1/R of the sum gives the sum back.
        present = [i for i, g in enumerate(grads) if g is not None]
        summed = replica.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
        for i, g in zip(present, summed):
            grads[i] = g
        loss = replica.all_reduce(tf.distribute.ReduceOp.SUM, loss)
        apply_factor = tf.constant(1.0 / replica.num_replicas_in_sync)
    loss_scale = tf.constant(1.0)
    if loss_scaler is not None:
        loss_scale = tf.cast(tf.convert_to_tensor(loss_scaler.dynamic_scale), tf.float32)
        grads = [transforms_lib.scale_gradient(g, 1.0 / loss_scale) for g in grads]
        apply_factor = loss_scale if apply_factor is None else apply_factor * loss_scale
    return loss, grads, apply_factor, loss_scale


def transform(
    transform: transforms_lib.GradientTransform,
    state: Any,
    grads: list[Any],
    variables: Sequence[Any],
    overflow: tf.Tensor,
    loss_scaled: bool,
) -> tuple[list[Any], Any]:
    """The transformed gradients and the transform's gate (None: always apply).

    `state`: the transform's state variables, updated here.
    """
    before = tf.nest.map_structure(lambda v: v.read_value(), state)
    new_grads, after = transform.update(grads, before, variables)
    if loss_scaled:  # an overflow step is not a step for the transforms
        after = tf.nest.map_structure(lambda old, new: tf.where(overflow, old, new), before, after)
    tf.nest.map_structure(lambda v, value: v.assign(value), state, after)
    # The loss scaler decides itself which steps to skip, and must see them to rescale.
    return new_grads, None if loss_scaled else transform.should_apply(after)


def applied(
    optimizer: keras.optimizers.Optimizer,
    any_present: bool,
    gate: Any,
    overflow: tf.Tensor,
    loss_scaled: bool,
) -> tf.Tensor:
    """Whether this call changes the weights (a bool tensor)."""
    if not any_present:
        return tf.constant(False)
    if gate is not None:
        result = gate
    elif loss_scaled:
        result = ~overflow
    else:
        result = tf.constant(True)
    inner = _compat.inner_optimizer(optimizer)
    accumulation = getattr(inner, "gradient_accumulation_steps", None)
    if accumulation:
        # A Keras optimizer that accumulates gradients changes the weights only every k-th
        # call; the other calls are not updates to judge. Its calls are counted in
        # `_iterations` (recent Keras: `iterations` counts its updates, the calls // k).
        iterations = tf.convert_to_tensor(getattr(inner, "_iterations", inner.iterations))
        result = result & tf.equal((iterations + 1) % accumulation, 0)
    return result


def apply(
    apply_fn: Callable[[Any, Any], Any],
    grads: list[Any],
    variables: list[Any],
    gate: Any,
    apply_factor: tf.Tensor | None,
) -> None:
    """Hands the gradients to `apply_fn` with `variables`, behind the gate if there is one."""
    if not grads:
        return
    if apply_factor is not None:
        grads = [transforms_lib.scale_gradient(g, apply_factor) for g in grads]

    def users_update(grads: list[Any]) -> None:
        with _compat.users_op_callbacks():  # the optimizer's ops are the user's
            apply_fn(grads, variables)

    if gate is None:
        # Not inside a conditional: the optimizer's work then overlaps the backward pass.
        # (The loss scaler skips overflow steps itself, inside its `apply`.)
        users_update(grads)
    else:
        # A gate waits for every gradient; that wait is what skipping non-finite costs.
        replicas.run_if(gate, users_update, grads)


def build(
    optimizer: keras.optimizers.Optimizer, variables: Sequence[Any], step: int
) -> list[Finding]:
    """Builds an unbuilt optimizer on `variables` as its first update would, outside the trace.

    Keras builds an optimizer (its slots) in its first update: inside a `tf.function`, that
    makes the function trace twice. Built first here (the guard, as the user's first update
    starts), the user's function is traced once, with the optimizer Keras would have built.
    The guard never passes a LossScaleOptimizer here: it intercepts the inner optimizer's
    update, which the scaler has built by then. Building the scaler too would be wrong: its
    `scale_loss`, called before the update, multiplies by a constant until it is built, and
    only Keras' second trace puts the scale's variable in the step.

    Inside a trace, what `build` writes into its new slots through the optimizer's `assign`
    methods (ScheduleFree copies the weights into its momentum) is dropped, as it is lost in
    Keras' build in a first trace, which tf.function never runs (it runs its second trace).
    Those writes are reported (`optimizer-build-lost`, dated at `step`). (Tracing the build in
    a function of its own that never runs did the same, for a tenth of a second.) Built or not,
    trained variables stored in float16 are reported (`weights-half-precision`), and so is a
    learning rate the traced step sets to a constant (`learning-rate-frozen-at-trace`).
    """
    found = _half_precision(variables, step)
    if (frozen := frozenrate.rate_frozen_at_trace(optimizer, step)) is not None:
        found.append(frozen)
    if optimizer.built or not variables or tf.distribute.has_strategy():
        return found  # (under a strategy Keras builds it where the strategy's variables go)
    written: list[Any] = []  # (the variables the build writes, when it is traced)
    traced = tf.inside_function()
    with _compat.outside_trace(), keras.name_scope(optimizer.name, caller=optimizer):
        with _dropping_writes(optimizer, written) if traced else contextlib.nullcontext():
            optimizer.build(list(variables))
    own = {id(v) for v in optimizer.variables}
    lost = sorted({str(getattr(v, "path", v.name)) for v in written if id(v) in own})
    if not lost:
        return found
    message = (
        f"{type(optimizer).__name__}.build writes starting values into its variables "
        f"({listing(lost)}), but Keras built it inside the first trace of a tf.function (fit's "
        "train step, or a @tf.function step), which TensorFlow traces and never runs: they "
        "start from zero instead, and the optimizer does not work as designed. Build it "
        "eagerly before training: optimizer.build(model.trainable_variables)."
    )
    return [*found, Finding("optimizer-build-lost", message, step, tuple(lost))]


def _half_precision(variables: Sequence[Any], step: int) -> list[Finding]:
    """`weights-half-precision`: trained variables stored in float16 (``set_floatx``)."""
    half = [str(getattr(v, "path", v.name)) for v in variables if _dtype(v) == tf.float16]
    if not half:
        return []
    message = (
        f"{listing(half)} are stored in float16 (keras.config.set_floatx('float16')), and so "
        "are the optimizer's updates: a step smaller than about 1/2000 of a weight rounds "
        "away, and Adam's squared gradients underflow to 0 below about 2e-4, so its steps "
        "jump by lr / epsilon. The loss falls, from a worse place. Keep the variables in "
        "float32 and compute in float16 with mixed precision: "
        "keras.mixed_precision.set_global_policy('mixed_float16')."
    )
    return [Finding("weights-half-precision", message, step, tuple(half))]


def _dtype(variable: Any) -> tf.DType | None:
    try:
        return tf.as_dtype(variable.dtype)
    except TypeError:
        return None


@contextlib.contextmanager
def _dropping_writes(optimizer: Any, written: list[Any]) -> Iterator[None]:
    """Notes and drops what `optimizer` writes through its own `assign` methods, for a block."""

    def drop(variable: Any, value: Any) -> None:
        written.append(variable)

    names = ("assign", "assign_add", "assign_sub")
    for name in names:  # (instance attributes shadow the methods, for this optimizer only)
        object.__setattr__(optimizer, name, drop)
    try:
        yield
    finally:
        for name in names:
            vars(optimizer).pop(name, None)


def learning_rate(optimizer: keras.optimizers.Optimizer) -> tf.Tensor:
    """The optimizer's current learning rate as a float32 tensor (in-graph); NaN if unknown."""
    try:
        return tf.cast(tf.convert_to_tensor(optimizer.learning_rate), tf.float32)
    except (TypeError, ValueError):
        return tf.constant(float("nan"))


def learning_rate_value(optimizer: keras.optimizers.Optimizer) -> float | None:
    """The optimizer's current learning rate (a host read); None if unknown."""
    try:
        return float(np.asarray(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None


def notes_of(optimizer: Any) -> dict[str, Any]:
    """What the optimizer tells the judgments (`Context.notes`), read when a core is built.

    ``"resumed"``: updates were made before the core watched (a second `fit`, a restored
    checkpoint), so the loss of a resumed run may rightly hold from its start
    (`LossNotDecreasing`). ``"schedule"``: `schedule_start`. ``"lr_start"``: the learning
    rate now, before the run brings it down (`UpdateRatio`). ``"sgd_clip"`` and
    ``"sgd_momentum"``: `sgd_global_clipnorm`, `sgd_momentum` (`UpdateRatio`).
    ``"float16_unscaled"``: layers compute in float16 (a mixed precision policy) and the
    optimizer scales no loss (`ZeroGradient`).
    """
    return {
        "resumed": updates_made(optimizer) > 0,
        "schedule": schedule_start(optimizer),
        "lr_start": learning_rate_value(optimizer),
        "sgd_clip": sgd_global_clipnorm(optimizer),
        "sgd_momentum": sgd_momentum(optimizer),
        "float16_unscaled": (
            keras.config.dtype_policy().compute_dtype == "float16"
            and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        ),
    }


def schedule_start(optimizer: Any) -> tuple[str, float] | None:
    """The learning-rate schedule's class name and its rate at step 0 (None for no schedule)."""
    schedule = getattr(_compat.inner_optimizer(optimizer), "_learning_rate", None)
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return None
    try:
        return type(schedule).__name__, float(np.asarray(schedule(0)))
    except (TypeError, ValueError):
        return None


def sgd_global_clipnorm(optimizer: Any) -> tuple[float, float] | None:
    """A plain SGD optimizer's `global_clipnorm` and momentum (None for none, or another optimizer).

    Only SGD: its step is the learning rate times the clipped gradient (with momentum, up to
    ``1 / (1 - momentum)`` such steps added up), so a clip far below the gradients shrinks every
    update by as much. Adaptive optimizers (Adam, RMSprop, ...) divide the scale out again, and
    a clip there changes directions, not step sizes.
    """
    clip = getattr(_compat.inner_optimizer(optimizer), "global_clipnorm", None)
    momentum = sgd_momentum(optimizer)
    return None if momentum is None or not clip else (float(clip), momentum)


def sgd_momentum(optimizer: Any) -> float | None:
    """A plain SGD optimizer's momentum (0.0 for none); None for another optimizer.

    Its step is the learning rate times the gradient, whatever the gradient's scale (with
    momentum, up to ``1 / (1 - momentum)`` such steps added up).
    """
    inner = _compat.inner_optimizer(optimizer)
    return float(inner.momentum) if isinstance(inner, keras.optimizers.SGD) else None


def adam_epsilon_scale(optimizer: Any) -> tuple[float, float] | None:
    """An Adam optimizer's epsilon, if `EPSILON` or more, and the gradients' typical scale.

    The scale is the median of sqrt(v / (1 - beta_2^t)) over a sample of every variable's
    elements (v: Adam's moving average of squared gradients, bias-corrected): Keras' Adam divides
    each step by sqrt(v) + epsilon, so an epsilon 10x that scale shrinks its steps 10x and
    turns Adam into SGD at learning rate / epsilon. None for another optimizer, a smaller
    epsilon, or before any update (a host read, made only for such an epsilon).
    """
    inner = _compat.inner_optimizer(optimizer)
    epsilon = getattr(inner, "epsilon", None)
    if not isinstance(inner, keras.optimizers.Adam) or not isinstance(epsilon, (int, float)):
        return None
    velocities = list(getattr(inner, "_velocities", None) or [])
    steps = updates_made(inner)
    if epsilon < EPSILON or not velocities or steps == 0:
        return None
    correction = 1.0 - float(inner.beta_2) ** steps
    sampled = []
    for v in velocities:
        flat = tf.reshape(v, [-1])
        sampled.append(flat[:: max(1, int(flat.shape[0]) // _SAMPLE)].numpy())
    typical = float(np.median(np.sqrt(np.concatenate(sampled) / correction)))
    return float(epsilon), typical


def updates_made(optimizer: Any) -> int:
    """The updates `optimizer` has applied so far, read eagerly (0 without an update count)."""
    iterations = getattr(optimizer, "iterations", None)
    value = np.asarray(iterations) if iterations is not None else np.zeros(())
    # An optimizer made while the step is traced (a `MultiOptimizer` calls its selector there,
    # and a selector may make the inner optimizers) has no value to read yet, nor an update.
    return int(value) if value.size == 1 else 0


class RateHistory:
    """The learning rate at the host reads: a rate being raised (a range test) says why."""

    SPAN = 50  # steps: a rate higher now than at a read this long ago is being raised

    def __init__(self, start: float | None):
        self._rates: list[tuple[int, float | None]] = [(0, start)]  # (steps, rate), oldest first

    def before(self, steps: int, rate: float | None) -> float | None:
        """Keeps `rate`, read after `steps` steps; the rate at the last read `SPAN` steps before."""
        self._rates.append((steps, rate))
        while self._rates[1][0] <= steps - self.SPAN:  # (the next read is old enough too)
            self._rates.pop(0)
        return self._rates[0][1]
