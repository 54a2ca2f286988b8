"""The step's shared vocabulary: which variables it trains, what it measured, what the host knows.

* `Layout`: static facts about the trained variables (names, layers), shared by every check.
* `Stats`: one step's statistics as tensors, computed once by the core for every check.
* `Context`: what the host knows when it judges the checks' state.
* `Every`: the cadence, "every n steps", for Python ints and for tensors alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import deltas

__all__ = [
    "BAD_WEIGHT",
    "BAD_X",
    "BAD_Y",
    "EMPTY",
    "LOGGED_NOTES",
    "Context",
    "Every",
    "Layout",
    "Stats",
    "batch_faults",
    "known_false",
    "names",
    "shared_root",
    "untrained",
]

# Bits of `Stats.bad_input`, and what each names.
BAD_X, BAD_Y, BAD_WEIGHT, EMPTY = 1, 2, 4, 8
BATCH_FAULTS = {
    BAD_X: "the inputs x",
    BAD_Y: "the labels y",
    BAD_WEIGHT: "the sample weights",
    EMPTY: "an empty batch",
}


def known_false(flag: Any) -> bool:
    """Whether a bool tensor is False at trace time (a lean step's `Stats.measured`)."""
    value = tf.get_static_value(flag)
    return value is not None and not bool(value)


def batch_faults(healthy: tf.Tensor, x: Any, y: Any = None, sample_weight: Any = None) -> tf.Tensor:
    """The `Stats.bad_input` mask of a batch, computed only on an unhealthy step (in-graph).

    Healthy steps (loss and gradients finite: `healthy`) pay for one untaken conditional; a
    step whose loss or gradients are NaN or Inf gets its inputs, labels and sample weights
    checked, so the finding can say the data was at fault.
    """
    parts = [(BAD_X, x), (BAD_Y, y), (BAD_WEIGHT, sample_weight)]

    def check() -> tf.Tensor:
        mask = tf.constant(0, tf.int32)
        for bit, value in parts:
            tensors = [t for t in tf.nest.flatten(value) if t is not None]
            floats = [tf.convert_to_tensor(t) for t in tensors]
            floats = [t for t in floats if t.dtype.is_floating]
            if floats:
                finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in floats])
                mask |= tf.where(finite, 0, bit)
        first = [tf.convert_to_tensor(t) for t in tf.nest.flatten(x) if t is not None]
        if first and first[0].shape.rank:
            mask |= tf.where(tf.equal(tf.shape(first[0])[0], 0), EMPTY, 0)
        return mask

    return tf.cond(healthy, lambda: tf.constant(0), check)


class Every:
    """Cadence: due on steps 0, n, 2n, ... (0-based), for Python ints and for tensors.

    Args:
      n: Steps between due steps; a positive int.
      name: The argument's name, for the error message.

    Raises:
      ValueError: if `n` is not a positive int.

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

    def measures(self, step: Any) -> Any:
        """Whether the update at `step` measures the weights: due steps, and step 1 too.

        Step 0 alone may be unrepresentative (a warmup that starts at 0).
        """
        if isinstance(step, (int, np.integer)):
            return bool(self(step) or step == 1)
        return self(step) | tf.equal(step, 1)

    def __repr__(self) -> str:
        return f"Every({self.n})"


def names(variables: Sequence[Any], model_name: str = "") -> list[str]:
    """Display names of variables: Keras paths (``dense/kernel``) or tf.Variable names.

    The model's own name is dropped from the front of Keras paths
    (``sequential/dense/kernel`` -> ``dense/kernel``): it is the same for every variable.
    """
    prefix = f"{model_name}/" if model_name else None
    result = []
    for v in variables:
        name = getattr(v, "path", None) or v.name.split(":")[0]
        if prefix and name.startswith(prefix):
            name = name[len(prefix) :]
        result.append(name)
    return result


def shared_root(variables: Iterable[Any]) -> str:
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


def untrained(variables: Mapping[int, Any]) -> dict[int, Any]:
    """Those of `variables` whose model never trained: its biases all still exactly zero.

    Keras initializes biases (and normalization offsets, `beta`) to zero, and training moves
    them. Grouped by model (the first part of their paths); a model without such a variable
    cannot be told apart and counts as trained.
    """
    models: dict[str, dict[int, Any]] = {}
    offsets: dict[str, list[Any]] = {}
    for (k, v), path in zip(variables.items(), names(list(variables.values()))):
        model = path.split("/")[0]
        models.setdefault(model, {})[k] = v
        if path.rsplit("/", 1)[-1] in ("bias", "beta"):
            offsets.setdefault(model, []).append(v)
    fresh = [m for m, biases in offsets.items() if not any(np.any(np.asarray(b)) for b in biases)]
    return {k: v for m in fresh for k, v in models[m].items()}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Static facts about the variables a step trains, shared by all checks.

    Attributes:
      names: Display name per variable (``dense/kernel``).
      layers: Layer names in model order (``dense``), each once.
      layer_index: Per variable, its layer's index into `layers`.
      sampled: Per variable, whether its update is measured on a sample of its elements
        (`deltas.stride`): a zero there is no proof the variable did not change. Empty when
        the shapes are not known (all measured whole).
    """

    names: tuple[str, ...]
    layers: tuple[str, ...]
    layer_index: tuple[int, ...]
    # How the variables are measured, not which they are: not compared (a layout read back
    # from logged names is the same layout).
    sampled: tuple[bool, ...] = dataclasses.field(default=(), compare=False)

    @classmethod
    def from_variables(cls, variables: Sequence[Any], model_name: str = "") -> Layout:
        """Groups variables by layer: the variable's path without its last component."""
        layout = cls.from_names(names(variables, model_name))
        sampled = tuple(deltas.sampled(v.shape) for v in variables)
        return dataclasses.replace(layout, sampled=sampled)

    @classmethod
    def from_names(cls, var_names: Sequence[str]) -> Layout:
        """Groups variable names (``dense/kernel``) by layer (``dense``): their path's parent."""
        layers: list[str] = []
        index = []
        for name in var_names:
            layer = name.rsplit("/", 1)[0] if "/" in name else name
            if layer not in layers:
                layers.append(layer)
            index.append(layers.index(layer))
        return cls(tuple(var_names), tuple(layers), tuple(index))

    @classmethod
    def of_layers(cls, layers: Sequence[str]) -> Layout:
        """A layout whose variables are whole layers (per-layer logged scalars)."""
        return cls(tuple(layers), tuple(layers), tuple(range(len(layers))))

    @property
    def size(self) -> int:
        """Number of variables."""
        return len(self.names)

    def per_layer(self, per_variable: tf.Tensor) -> tf.Tensor:
        """Sums a per-variable vector into a per-layer vector (in-graph)."""
        return tf.math.unsorted_segment_sum(
            per_variable, tf.constant(self.layer_index, tf.int32), len(self.layers)
        )

    def variables_of(self, layer_ids: Sequence[int]) -> tuple[str, ...]:
        """Names of the variables in the given layers."""
        wanted = set(layer_ids)
        return tuple(n for n, li in zip(self.names, self.layer_index) if li in wanted)


@dataclasses.dataclass(frozen=True)
class Stats:
    """One step's statistics, as tensors; computed once by the core for every check.

    Attributes:
      step: 0-based step index, int64 scalar.
      loss: float32 scalar.
      grad_sq: float32 [n]: squared L2 norm of each variable's gradient before the transforms
        (0 where the gradient is None).
      grad_norm: global gradient norm before the transforms.
      grad_norm_after: global gradient norm after the transforms (what the optimizer got).
      applied: bool scalar: the optimizer update ran (False when a transform skipped it).
      measured: bool scalar: `update_sq` and `weight_sq` were measured on this step (they are
        measured only every `every` steps, as they need a copy of the weights).
      update_sq: float32 [n]: squared norm of each variable's change in this step.
      weight_sq: float32 [n]: squared norm of each variable before the update. Both are
        estimates from a sample for variables larger than 65536 elements (`Layout.sampled`).
      grad_sample_sq: float32 [n] on measuring steps: the squared norm of the gradient a
        sampled variable was updated with, over its sample's elements (0 for the others, and
        for sparse gradients): a sample that had a gradient yet did not change is evidence
        the variable did not.
      unit_spread: float32 [n] on measuring steps: how far apart each kernel's units are
        against its scale (`deltas.unit_spread`): 0 when they are copies of each other.
      loss_scale: the loss scale the gradients were divided by (mixed precision), else 1.
      overflow: bool scalar: the loss scaler skips this step on purpose (float16 overflow:
        non-finite gradients from a finite loss); not a `non-finite` finding.
      vetoed: bool scalar: a transform refused the update (`GradientTransform.should_apply`),
        e.g. `skip_nonfinite` on NaN gradients.
      bad_input: int32 scalar, a bit mask of what was wrong with the step's batch, looked at
        only when the loss is not finite (so healthy steps pay nothing): `BAD_X`, `BAD_Y`,
        `BAD_WEIGHT` (NaN or Inf in the inputs, the labels, the sample weights), `EMPTY`
        (no examples). 0 when the batch is not known (the guard sees no labels).
      loss_known: bool: `loss` is the step's loss (the guard may not have seen it: then 0).
      activations: One ``[examples, units]`` tensor per watched layer output (the checks'
        `sites`), from this step's training forward pass, or None for a layer not called on
        this step; empty unless a check watches activations and the step can capture them.
    """

    step: tf.Tensor
    loss: tf.Tensor
    grad_sq: tf.Tensor
    grad_norm: tf.Tensor
    grad_norm_after: tf.Tensor
    applied: tf.Tensor
    measured: tf.Tensor
    update_sq: tf.Tensor
    weight_sq: tf.Tensor
    grad_sample_sq: Any = 0.0
    unit_spread: Any = 1.0
    loss_scale: Any = 1.0
    overflow: Any = False
    vetoed: Any = False
    bad_input: Any = 0
    loss_known: Any = True
    activations: tuple[Any, ...] = ()

    def tensors(self) -> list[tf.Tensor]:
        """Every field but `activations`, as tensors: to pass into a conditional's branch."""
        return [tf.convert_to_tensor(getattr(self, name)) for name in _TENSOR_FIELDS]

    @classmethod
    def from_tensors(cls, values: Sequence[tf.Tensor]) -> Stats:
        """The statistics back from `tensors()` (without activations)."""
        return cls(**dict(zip(_TENSOR_FIELDS, values)))


# The fields a branch receives as arguments (under a strategy it may run once per replica).
_TENSOR_FIELDS = [f.name for f in dataclasses.fields(Stats) if f.name != "activations"]


# The owners' notes (`StepCore.notes`) a judgment uses, logged in the run's configuration so
# that ``gradguard inspect`` judges its logs the same: the chance-level loss, whether the
# optimizer had made updates before it was watched (a resumed run), plain SGD's global_clipnorm
# and momentum, the largest sample weight, the learning rate when the run began, a large Adam
# epsilon with the gradients' scale, and the scale of a loss scaler given eager losses only.
LOGGED_NOTES = (
    "chance_loss",
    "resumed",
    "sgd_clip",
    "sgd_momentum",
    "sample_weight_largest",
    "loss_scale_unseen",
    "lr_start",
    "adam_epsilon",
)


@dataclasses.dataclass(frozen=True)
class Context:
    """What the host knows when it judges.

    Attributes:
      steps: Number of steps observed so far.
      step: Index of the latest step.
      none: Indices of variables that never had a gradient (None, or not in any update);
        `none-gradient` and the guard report them, other checks leave them out.
      learning_rate: The optimizer's current learning rate, if known, for messages.
      notes: What checks tell each other, by key (`Check.notes`): e.g. ``"saturation"``, the
        layers `ActivationHealth` saw saturated, which `VanishingGradient` names as the cause.
      final: The run is over, or the user asked for the report: what was seen is the whole
        run (a judgment may then weigh it as such), not its beginning.
    """

    steps: int
    step: int
    none: frozenset[int] = frozenset()
    learning_rate: float | None = None
    notes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    final: bool = False
