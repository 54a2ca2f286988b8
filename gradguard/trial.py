"""Trial runs on the user's own model and optimizer that leave both exactly as they were.

`lr_find` and `preflight` train the user's model with the user's optimizer for a few hundred
steps, several times over, to see how it learns. `trial` is the context manager they run in:
it builds the model and the optimizer if needed, keeps a copy of every value they hold (the
model's variables, random seed states included; every optimizer variable: iterations, slots,
the learning rate; Keras' global seed state), swaps in a learning rate the trial sets, and on
exit, normal or not, puts every value and the optimizer's own rate (a variable, a schedule or a
callable) back, bit for bit.

Inside, `Trial.step` is a `gradguard.TrainStep` on the model: one compiled step for every run,
quiet except for what the gradients show (`none-gradient`, `zero-gradient`,
`loss-broadcast`), with no gradient transform, so the trial sees what the optimizer does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, losses, updating
from gradguard import findings as findings_lib
from gradguard import transforms as transforms_lib
from gradguard.batch import call_model, describe
from gradguard.batches import Examples, tensors
from gradguard.checks import ZeroGradient
from gradguard.train_step import TrainStep

__all__ = ["LearningRate", "Snapshot", "Trial", "trial"]

# The trial's step reports only what its gradients show; everything else is for the trial to
# judge (an update that is too small is what the learning-rate range test is made of).
_SEEN = ("none-gradient", "zero-gradient", "loss-broadcast", "loss-sign-flipped")
_QUIET = {code: "warn" if code in _SEEN else "ignore" for code in findings_lib.CODES}
# No measured updates, no host reads after the first step: the trial reads what it needs.
_NEVER = 1 << 40
# A schedule's rate in use is its largest over this many steps from the optimizer's iteration.
_SCHEDULE_HORIZON = 100_000
# Examples per inference call when the trial evaluates the loss.
_EVAL_CHUNK = 256


class Snapshot:
    """Every value of a model and its optimizer, copied, to be put back with `restore`.

    Args:
      model: A built Keras model: all of `model.variables` (weights, non-trainable state such
        as batch-norm statistics, and seed generator states) are kept.
      optimizer: A built Keras optimizer: all of `optimizer.variables` (iterations, slots, the
        learning-rate variable; a LossScaleOptimizer's scale and its inner optimizer's).
    """

    def __init__(self, model: Any, optimizer: keras.optimizers.Optimizer):
        candidates = [*model.variables, *optimizer.variables, _compat.global_seed_state()]
        self._variables: list[Any] = []
        seen: set[int] = set()
        for v in candidates:
            if v is not None and id(v) not in seen:
                seen.add(id(v))
                self._variables.append(v)
        self._values = [np.array(v.numpy(), copy=True) for v in self._variables]

    def restore(self) -> None:
        """Puts every value back."""
        for variable, value in zip(self._variables, self._values):
            variable.assign(value)


class LearningRate:
    """The rate the trial trains at, swapped into the optimizer until `restore`.

    The optimizer's own rate object (a variable, a `LearningRateSchedule` or a callable) is set
    aside untouched and put back by `restore`.

    Attributes:
      in_use: The rate the optimizer uses: its variable's value, a callable's value, or for a
        schedule the largest rate it reaches in the next 100 000 steps (the rate after a warmup,
        the starting rate of a decay).
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer):
        self._optimizer = optimizer
        self._original = _compat.learning_rate_object(optimizer)
        self.in_use = _rate_in_use(self._original, updating.updates_made(optimizer))
        with _compat.outside_trace():
            self._variable = tf.Variable(self.in_use, dtype=tf.float32, trainable=False)
        variable = self._variable
        # A callable, not a variable: Keras' tracker leaves the optimizer's variables alone.
        _compat.set_learning_rate_object(optimizer, lambda: variable)

    def set(self, rate: float) -> None:
        """Trains the next steps at `rate`."""
        self._variable.assign(rate)

    def restore(self) -> None:
        """Gives the optimizer its own rate object back."""
        _compat.set_learning_rate_object(self._optimizer, self._original)


def _rate_in_use(rate: Any, iterations: int) -> float:
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        offsets = np.unique(np.geomspace(1, _SCHEDULE_HORIZON, 60).astype(np.int64))
        return max(float(np.asarray(rate(iterations + int(k)))) for k in [0, *offsets])
    if callable(rate) and not _compat.is_variable(rate):
        return float(np.asarray(rate()))
    return float(np.asarray(rate))


class Trial:
    """The user's model and optimizer, ready for trial runs (made by `trial`).

    Attributes:
      step: The quiet `TrainStep` every run trains with.
      rate: The rate the runs train at (`rate.set`), and the optimizer's own (`rate.in_use`).
    """

    def __init__(self, step: TrainStep, rate: LearningRate, snapshot: Snapshot):
        self.step = step
        self.rate = rate
        self._snapshot = snapshot
        self._evaluate = _compat.function(self._loss_and_output, reduce_retracing=True)
        self._probe = _compat.function(self._training_loss, reduce_retracing=True)
        self._probed: tuple[Examples, Any, Any] | None = None

    def reset(self) -> None:
        """Puts the model and the optimizer back as they were before the trial."""
        self._snapshot.restore()

    def train(self, batches: Iterator[tuple[Any, Any]], steps: int) -> np.ndarray:
        """Trains `steps` steps at the current rate; returns each step's loss."""
        values = [self.step(x, y) for _, (x, y) in zip(range(steps), batches)]
        return np.array([float(v) for v in values])

    def evaluate(self, examples: Examples) -> tuple[float, Any]:
        """The loss of the examples in inference mode (regularization left out), and outputs.

        Returns:
          The loss averaged over the examples, and the model's outputs (a structure of NumPy
          arrays, one row per example).
        """
        total, outputs = 0.0, []
        for start in range(0, len(examples), _EVAL_CHUNK):
            chunk = examples.take(np.arange(start, min(start + _EVAL_CHUNK, len(examples))))
            loss, output = self._evaluate(tensors(chunk.x), tensors(chunk.y))
            total += float(loss) * len(chunk)
            outputs.append(tf.nest.map_structure(np.asarray, output))
        output = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *outputs)
        return total / len(examples), output

    def probe(self, examples: Examples) -> float:
        """The loss of the examples as training computes it, without an update.

        The layers run in training mode, as in the step (batch normalization uses the batch's
        statistics, dropout drops); regularization is left out. Moving statistics it updates
        are put back with everything else when the trial ends.
        """
        if self._probed is None or self._probed[0] is not examples:
            self._probed = (examples, tensors(examples.x), tensors(examples.y))
        return float(self._probe(self._probed[1], self._probed[2]))

    def _training_loss(self, x: Any, y: Any) -> tf.Tensor:
        y_pred = self.step.model(x, training=True)
        return losses.compute(self.step.loss_fn, y, y_pred, None, [])

    def _loss_and_output(self, x: Any, y: Any) -> tuple[tf.Tensor, Any]:
        y_pred = self.step.model(x, training=False)
        return losses.compute(self.step.loss_fn, y, y_pred, None, []), y_pred


@contextlib.contextmanager
def trial(
    model: Any, optimizer: keras.optimizers.Optimizer, loss_fn: Any, examples: Examples
) -> Iterator[Trial]:
    """Runs the block on the model and optimizer, and then puts both back exactly.

    The model is called on two of the examples first (building it if needed, and checking that
    it and the loss take them), and the optimizer built on the model's trainable variables if
    it was not (these stay built); every other value is restored, also when the block raises.

    Args:
      model: A Keras model.
      optimizer: A Keras 3 optimizer.
      loss_fn: A `keras.losses.Loss`, a Keras loss name or ``fn(y_true, y_pred)``.
      examples: Data to build the model on.

    Raises:
      TypeError: for a model, optimizer or loss of the wrong type (from `TrainStep`).
      ValueError: for a model that cannot be called on the examples' inputs, or a loss that
        cannot compare their labels with the model's outputs.
    """
    with _compat.without_op_callbacks():  # (a trial may diverge: no check_numerics error)
        yield from _trial(model, optimizer, loss_fn, examples)


def _trial(
    model: Any, optimizer: keras.optimizers.Optimizer, loss_fn: Any, examples: Examples
) -> Iterator[Trial]:
    step = TrainStep(
        model,
        optimizer,
        loss_fn,
        transform=transforms_lib.identity(),
        checks=[ZeroGradient()],
        every=_NEVER,
        policy=_QUIET,
    )
    _build(model, optimizer, step, examples)
    snapshot = Snapshot(model, optimizer)
    rate: LearningRate | None = None
    try:
        rate = LearningRate(optimizer)
        yield Trial(step, rate, snapshot)
    finally:
        if rate is not None:
            rate.restore()
        snapshot.restore()


def _build(
    model: Any, optimizer: keras.optimizers.Optimizer, step: TrainStep, examples: Examples
) -> None:
    """Builds the model and the optimizer, and checks that model and loss take the examples.

    One inference call on two examples (no state changes) and the loss on its output, so that
    a model or loss that does not fit the data fails here, with the shapes named.
    """
    few = examples.take(np.arange(min(len(examples), 2)))
    x, y = tensors(few.x), tensors(few.y)
    y_pred = call_model(model, x, training=False)
    try:
        losses.compute(step.loss_fn, y, y_pred, None, [])
    except (ValueError, tf.errors.InvalidArgumentError) as e:
        raise ValueError(
            f"loss_fn could not compare y with shapes {describe(y)} to the model's outputs "
            f"with shapes {describe(y_pred)}: {e}. Pass labels that match the outputs (e.g. "
            "integer classes for SparseCategoricalCrossentropy, one column per output for "
            "mean squared error)."
        ) from e
    if not optimizer.built and model.trainable_variables:
        optimizer.build(model.trainable_variables)
