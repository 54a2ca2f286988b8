"""Checks: fold each step's statistics into small state in-graph, judge them on the host.

A check has two halves (torchmetrics' `update`/`compute`, clu's `Metric`):

* `update(stats)` runs inside the compiled step every step. It folds the step's `Stats` into a few
  state variables (counts, first-seen steps, maxima, running sums), so nothing that happened
  between two host reads is lost. It never blocks an update; transforms do that.
* `findings(context)` runs on the host every `every` steps. It reads the state and returns
  `Finding`s. The judging itself is `judge(state, context)`, a function of the state's plain
  values, so `gradguard inspect` judges state rebuilt from TensorBoard scalars with the same code.

Every check sees the same `Stats`, computed once per step by the core; a check never recomputes a
statistic another check also needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import replicas
from gradguard.findings import Finding, Severity, names

__all__ = [
    "ActivationHealth",
    "Check",
    "Context",
    "ExplodingGradient",
    "Layout",
    "LossNotDecreasing",
    "NonFinite",
    "Stats",
    "UpdateRatio",
    "VanishingGradient",
    "ZeroGradient",
    "default_checks",
]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Static facts about the variables a step trains, shared by all checks.

    Attributes:
      names: Display name per variable (``dense/kernel``).
      layers: Layer names in model order (``dense``), each once.
      layer_index: Per variable, its layer's index into `layers`.
    """

    names: tuple[str, ...]
    layers: tuple[str, ...]
    layer_index: tuple[int, ...]

    @classmethod
    def from_variables(cls, variables: Sequence[Any], model_name: str = "") -> Layout:
        """Groups variables by layer: the variable's path without its last component."""
        return cls.from_names(names(variables, model_name))

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
      weight_sq: float32 [n]: squared norm of each variable before the update.
      loss_scale: the loss scale the gradients were divided by (mixed precision), else 1.
      overflow: bool scalar: the loss scaler skips this step on purpose (float16 overflow:
        non-finite gradients from a finite loss); not a `non-finite` finding.
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
    loss_scale: Any = 1.0
    overflow: Any = False
    activations: tuple[Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class Context:
    """What the host knows when it judges.

    Attributes:
      steps: Number of steps observed so far.
      step: Index of the latest step.
      none: Indices of variables that never had a gradient (None, or not in any update);
        `none-gradient` and the guard report them, other checks leave them out.
      learning_rate: The optimizer's current learning rate, if known, for messages.
      saturation: Layers seen saturated (`ActivationHealth`), with the fraction of their
        sigmoid/tanh outputs where the derivative is negligible; `vanishing-gradient` names
        them as its likely cause.
    """

    steps: int
    step: int
    none: frozenset[int] = frozenset()
    learning_rate: float | None = None
    saturation: Mapping[str, float] = dataclasses.field(default_factory=dict)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _listing(items: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _lr_text(context: Context) -> str:
    return "" if context.learning_rate is None else f" ({_fmt(context.learning_rate)})"


class Check:
    """Base class: subclasses create state in `build`, fold in `update`, judge in `findings`.

    A check that sets `watches_activations` gets the watched layer outputs (`sites`, given to
    `watch` before `build`) in `Stats.activations`.
    """

    layout: Layout
    watches_activations = False
    sites: tuple[Any, ...] = ()

    def watch(self, sites: Sequence[Any]) -> None:
        """Sets the layer outputs (`activations.Site`) this check sees; before `build`."""
        self.sites = tuple(sites)

    def build(self, layout: Layout) -> None:
        """Creates the state variables; called once, outside any trace."""
        self.layout = layout
        self._state: dict[str, tf.Variable] = {}
        self._build()

    def _build(self) -> None:
        raise NotImplementedError

    def _add(self, name: str, value: Any, dtype: tf.DType = tf.float32) -> tf.Variable:
        variable = replicas.state_variable(value, dtype, f"gradguard_{name}")
        self._state[name] = variable
        return variable

    @property
    def state_variables(self) -> Mapping[str, tf.Variable]:
        """The state variables by name: what `state()` reads."""
        return self._state

    def state(self) -> dict[str, np.ndarray]:
        """The state as NumPy values (a host read)."""
        return {name: v.numpy() for name, v in self._state.items()}

    def update(self, stats: Stats) -> None:
        """Folds one step into the state (in-graph)."""
        raise NotImplementedError

    def findings(self, context: Context) -> list[Finding]:
        """Turns the state into findings (host): `judge` applied to the current `state()`."""
        return self.judge(self.state(), context)

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        """Turns state values (plain numbers, keyed as `state()`) into findings (host).

        The one judging code for a check: the live check calls it on its variables' values,
        `gradguard inspect` on values rebuilt from logged TensorBoard scalars.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override findings(context) or judge(state, context)."
        )


class NonFinite(Check):
    """`non-finite`: NaN or Inf in the loss, a gradient or a weight; names where it came first.

    With mixed precision, steps the loss scaler skips on purpose (float16 overflow) are counted,
    not reported; a loss scale that collapses below `min_loss_scale` is reported: the gradients
    are non-finite even at a tiny scale, so it is not overflow.

    Args:
      min_loss_scale: Loss scale below which the scaler has collapsed.
    """

    def __init__(self, min_loss_scale: float = 1.0):
        self.min_loss_scale = min_loss_scale

    def _build(self) -> None:
        n = self.layout.size
        self.loss_first = self._add("loss_first", -1, tf.int64)
        self.grad_first = self._add("grad_first", [-1] * n, tf.int64)
        self.weight_first = self._add("weight_first", [-1] * n, tf.int64)
        self.skipped = self._add("skipped", 0, tf.int64)
        self.overflows = self._add("overflows", 0, tf.int64)
        self.loss_scale_min = self._add("loss_scale_min", np.inf)

    def update(self, stats: Stats) -> None:
        def first(state: tf.Variable, bad: tf.Tensor) -> None:
            state.assign(tf.where((state < 0) & bad, stats.step, state))

        overflow = tf.convert_to_tensor(stats.overflow)
        first(self.loss_first, ~tf.math.is_finite(stats.loss))
        first(self.grad_first, ~overflow & ~tf.math.is_finite(stats.grad_sq))
        first(self.weight_first, stats.measured & ~tf.math.is_finite(stats.weight_sq))
        self.skipped.assign_add(tf.cast(~stats.applied & ~overflow, tf.int64))
        self.overflows.assign_add(tf.cast(overflow, tf.int64))
        scale = tf.cast(stats.loss_scale, tf.float32)
        self.loss_scale_min.assign(tf.minimum(self.loss_scale_min, scale))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        sources = [
            (int(s["loss_first"]), "loss", ()),
            (_earliest(s["grad_first"]), "gradient", _at(self.layout, s["grad_first"])),
            (_earliest(s["weight_first"]), "weight", _at(self.layout, s["weight_first"])),
        ]
        seen = [src for src in sources if src[0] >= 0]
        scale = float(s.get("loss_scale_min", np.inf))
        if not seen and scale < self.min_loss_scale:
            overflows = int(s.get("overflows", 0))
            message = (
                f"The loss scale collapsed to {_fmt(scale)} after {overflows} overflow skips: "
                "the gradients are NaN/Inf even at a tiny scale, so this is not float16 "
                "overflow; look for log(0), a division by zero or a learning rate that makes "
                "the weights diverge."
            )
            details: dict[str, Any] = {"loss_scale": scale, "overflow_skips": overflows}
            return [Finding("non-finite", message, context.step, details=details)]
        if not seen:
            return []
        step, where, variables = min(seen, key=lambda src: (src[0], len(src[1])))
        skipped = int(s["skipped"])
        skip_text = (
            f" {skipped} update(s) were skipped, so the weights are intact."
            if skipped
            else " The update was applied: add gradguard.skip_nonfinite() to the transform."
        )
        if where == "loss":
            message = (
                f"The loss became NaN/Inf at step {step}: look for log(0), division by zero or "
                "sqrt of a negative in the loss (add an epsilon, or use from_logits=True), "
                "and for an exploding learning rate."
            )
        elif where == "gradient":
            message = (
                f"The gradient of {_listing(variables)} became NaN/Inf at step {step} while the "
                "loss was finite: an op with an unstable gradient (sqrt or log near 0, a "
                "division) or overflow; clip gradients or add an epsilon."
            )
        else:
            message = (
                f"The weights of {_listing(variables)} became NaN/Inf (seen at step {step}) "
                "while loss and gradients were finite: the optimizer update overflowed; "
                "lower the learning rate or raise the optimizer's epsilon."
            )
        details = {"first_in": where, "first_step": step, "skipped_updates": skipped}
        return [Finding("non-finite", message + skip_text, step, variables, details=details)]


def _earliest(first_steps: np.ndarray) -> int:
    seen = first_steps[first_steps >= 0]
    return int(seen.min()) if seen.size else -1


def _at(layout: Layout, first_steps: np.ndarray) -> tuple[str, ...]:
    step = _earliest(first_steps)
    return tuple(n for n, s in zip(layout.names, first_steps) if s == step and step >= 0)


class ZeroGradient(Check):
    """`zero-gradient`: a gradient that is exactly zero on every step seen.

    Args:
      min_steps: Steps to see before judging.
    """

    def __init__(self, min_steps: int = 2):
        self.min_steps = min_steps

    def _build(self) -> None:
        self.max_sq = self._add("grad_sq_max", [0.0] * self.layout.size)

    def update(self, stats: Stats) -> None:
        # A non-finite gradient is not a zero one; count it as non-zero.
        sq = tf.where(tf.math.is_finite(stats.grad_sq), stats.grad_sq, 1.0)
        self.max_sq.assign(tf.maximum(self.max_sq, sq))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        if context.steps < self.min_steps:
            return []
        max_sq = state["grad_sq_max"]
        with_grad = [i for i in range(self.layout.size) if i not in context.none]
        zero = [i for i in with_grad if max_sq[i] == 0.0]
        if not zero:
            return []
        variables = tuple(self.layout.names[i] for i in zero)
        if len(zero) == len(with_grad):
            message = (
                f"The gradient of every trainable variable was exactly zero on all "
                f"{context.steps} steps seen: the loss is flat in the weights (it is built "
                "from rounded or thresholded outputs, does not depend on the prediction, or "
                "every ReLU unit is dead); check the loss function."
            )
            severity = Severity.ERROR
        else:
            message = (
                f"The gradient of {_listing(variables)} was exactly zero on all "
                f"{context.steps} steps seen: these weights never learn (a dead ReLU layer, a "
                "zero multiplier, or an input that is always zero); check how they reach the loss."
            )
            severity = Severity.WARNING
        return [Finding("zero-gradient", message, context.step, variables, severity)]


class UpdateRatio(Check):
    """`weights-unchanged`, `update-too-small`, `update-too-large`: the update-to-weight ratio.

    The ratio ``|delta w| / |w|`` is taken per layer (all of a layer's variables together, so a
    zero-initialized bias does not dominate) on the steps where updates are measured.

    Args:
      low: A layer whose ratio is below this on every measured step gets `update-too-small`.
        Healthy training sits around 1e-4 to 1e-2; 1e-7 means the weights barely move.
      min_measured: Each finding needs this many measured steps (steps 0, 1, then every
        `every`): one step can be a warmup that starts at 0, or a first step of Adam.
      high: A layer whose ratio is above this on most measured steps gets `update-too-large`:
        each step changes the weights by half their size.
    """

    def __init__(self, low: float = 1e-7, high: float = 0.5, min_measured: int = 2):
        self.low = low
        self.high = high
        self.min_measured = min_measured

    def _build(self) -> None:
        n, layers = self.layout.size, len(self.layout.layers)
        self.measured = self._add("measured", [0] * layers, tf.int64)
        self.below = self._add("below", [0] * layers, tf.int64)
        self.above = self._add("above", [0] * layers, tf.int64)
        self.last = self._add("last", [0.0] * layers)
        self.eligible = self._add("eligible", [0] * n, tf.int64)
        self.unchanged = self._add("unchanged", [0] * n, tf.int64)

    def update(self, stats: Stats) -> None:
        measured = stats.measured & stats.applied
        w_norm = tf.sqrt(self.layout.per_layer(stats.weight_sq))
        u_norm = tf.sqrt(self.layout.per_layer(stats.update_sq))
        # A layer whose weights are all zero (just initialized) has no meaningful ratio yet, and
        # one without gradient is `zero-gradient`'s business, not a learning rate problem.
        valid = measured & (w_norm > 0) & (self.layout.per_layer(stats.grad_sq) > 0)
        ratio = u_norm / tf.where(w_norm > 0, w_norm, 1.0)

        def count(state: tf.Variable, condition: tf.Tensor) -> None:
            state.assign_add(tf.cast(condition, tf.int64))

        count(self.measured, valid)
        count(self.below, valid & (ratio < self.low))
        count(self.above, valid & (ratio > self.high))
        self.last.assign(tf.where(valid, ratio, self.last))
        eligible = measured & (stats.grad_sq > 0)
        count(self.eligible, eligible)
        count(self.unchanged, eligible & tf.equal(stats.update_sq, 0.0))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        layout, lr = self.layout, _lr_text(context)
        results = []
        unchanged = [
            i
            for i in range(layout.size)
            if i not in context.none
            and s["eligible"][i] >= self.min_measured
            and s["unchanged"][i] == s["eligible"][i]
        ]
        if unchanged:
            variables = tuple(layout.names[i] for i in unchanged)
            results.append(
                Finding(
                    "weights-unchanged",
                    f"Updates were applied but {_listing(variables)} did not change on any "
                    f"measured step despite non-zero gradients: the update is zero or below "
                    f"float precision; the learning rate{lr} is likely 0 or far too small.",
                    context.step,
                    variables,
                    details={"measured_steps": int(s["eligible"][unchanged[0]])},
                )
            )
        measured = s["measured"]
        judged = [li for li in range(len(layout.layers)) if measured[li] > 0]
        small = [
            li
            for li in judged
            if measured[li] >= self.min_measured and measured[li] == s["below"][li]
        ]
        large = [
            li
            for li in judged
            if measured[li] >= self.min_measured and 2 * s["above"][li] > measured[li]
        ]
        if small and len(small) == len(judged):
            small_cause = (
                f"the learning rate{lr} is likely far too small (try 1e-3 for Adam, 1e-2 for SGD)."
            )
        else:
            small_cause = (
                "these layers barely learn while the others do: their gradients are tiny "
                "(vanishing gradients, saturated activations) rather than the learning rate."
            )
        for code, layer_ids, text in (
            (
                "update-too-small",
                small,
                f"far below the healthy 1e-4..1e-2 on every measured step: {small_cause}",
            ),
            (
                "update-too-large",
                large,
                f"above {_fmt(self.high)} on most measured steps: each step rewrites the "
                f"weights; the learning rate{lr} is likely too large (lower it 10x, or clip "
                "gradients).",
            ),
        ):
            if not layer_ids:
                continue
            layers = [layout.layers[li] for li in layer_ids]
            ratios = {layout.layers[li]: float(s["last"][li]) for li in layer_ids}
            shown = ", ".join(f"{name} {_fmt(r)}" for name, r in list(ratios.items())[:4])
            results.append(
                Finding(
                    code,
                    f"Update-to-weight ratio of {_listing(layers)} ({shown}) is {text}",
                    context.step,
                    layout.variables_of(layer_ids),
                    details={"ratio": ratios, "low": self.low, "high": self.high},
                )
            )
        return results


class ExplodingGradient(Check):
    """`exploding-gradient`: a gradient norm that is very large or grew by orders of magnitude.

    Args:
      growth: Flags when the largest norm seen is this many times the first step's norm
        (and at least `min_norm`).
      limit: Flags any global norm above this.
      min_norm: Growth to a norm below this is not judged (small gradients that grow are normal).
    """

    def __init__(self, growth: float = 1e3, limit: float = 1e6, min_norm: float = 1.0):
        self.growth = growth
        self.limit = limit
        self.min_norm = min_norm

    def _build(self) -> None:
        self.first = self._add("norm_first", -1.0)
        self.max = self._add("norm_max", 0.0)
        self.max_step = self._add("norm_max_step", -1, tf.int64)
        self.layer_max = self._add("layer_norm_max", [0.0] * len(self.layout.layers))

    def update(self, stats: Stats) -> None:
        norm = stats.grad_norm
        finite = tf.math.is_finite(norm)
        self.first.assign(tf.where((self.first < 0) & finite, norm, self.first))
        larger = finite & (norm > self.max)
        self.max.assign(tf.where(larger, norm, self.max))
        self.max_step.assign(tf.where(larger, stats.step, self.max_step))
        layer_norm = tf.sqrt(self.layout.per_layer(stats.grad_sq))
        layer_norm = tf.where(tf.math.is_finite(layer_norm), layer_norm, 0.0)
        self.layer_max.assign(tf.maximum(self.layer_max, layer_norm))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        first, largest = float(s["norm_first"]), float(s["norm_max"])
        grew = first > 0 and largest >= self.min_norm and largest >= self.growth * first
        if not (grew or largest > self.limit):
            return []
        layer = self.layout.layers[int(np.argmax(s["layer_norm_max"]))]
        step = int(s["norm_max_step"])
        message = (
            f"The gradient norm reached {_fmt(largest)} at step {step} (first step: "
            f"{_fmt(first)}), largest in {layer}: training is diverging; lower the learning "
            "rate, clip with gradguard.clip_by_global_norm(1.0), and check that inputs and "
            "targets are normalized."
        )
        details = {"first_norm": first, "max_norm": largest, "max_step": step, "layer": layer}
        # One finding per run: which layer is largest may change from read to read.
        return [Finding("exploding-gradient", message, step, details=details)]


class VanishingGradient(Check):
    """`vanishing-gradient`: early layers' gradients orders of magnitude below the last layer's.

    Args:
      ratio: Flags early layers whose mean gradient norm is below this fraction of the last
        layer's.
      min_layers: Models with fewer layers (with gradients) are not judged.
      min_steps: Steps to see before judging.
    """

    def __init__(self, ratio: float = 1e-3, min_layers: int = 3, min_steps: int = 2):
        self.ratio = ratio
        self.min_layers = min_layers
        self.min_steps = min_steps

    def _build(self) -> None:
        self.norm_sum = self._add("layer_norm_sum", [0.0] * len(self.layout.layers))
        self.count = self._add("layer_norm_count", 0, tf.int64)

    def update(self, stats: Stats) -> None:
        finite = tf.math.is_finite(stats.grad_norm)
        layer_norm = tf.sqrt(self.layout.per_layer(stats.grad_sq))
        self.norm_sum.assign_add(tf.where(finite, layer_norm, 0.0))
        self.count.assign_add(tf.cast(finite, tf.int64))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        count = int(state["layer_norm_count"])
        if context.steps < self.min_steps or count == 0:
            return []
        mean = np.asarray(state["layer_norm_sum"]) / count
        none_layers = {self.layout.layer_index[i] for i in context.none}
        layers = [li for li in range(len(self.layout.layers)) if li not in none_layers]
        if len(layers) < self.min_layers or mean[layers[-1]] <= 0:
            return []
        last = layers[-1]
        weak = [li for li in layers[:-1] if mean[li] < self.ratio * mean[last]]
        if not weak or weak[0] != layers[0]:
            return []
        first = weak[0]
        message = (
            f"Gradients vanish toward the input: {self.layout.layers[first]}'s mean gradient "
            f"norm {_fmt(mean[first])} is {_fmt(mean[first] / mean[last])} of "
            f"{self.layout.layers[last]}'s {_fmt(mean[last])} ({len(weak)} early layer(s) "
            f"below {_fmt(self.ratio)}x): saturating activations (sigmoid/tanh) in a deep stack "
            "or a poor initialization; use ReLU with He initialization, batch normalization "
            "or residual connections."
        )
        details: dict[str, Any] = {
            "mean_norm": {self.layout.layers[li]: float(mean[li]) for li in layers}
        }
        if context.saturation:
            shown = ", ".join(
                f"{name} {frac:.0%}" for name, frac in list(context.saturation.items())[:4]
            )
            message += (
                f" Likely cause: saturated activations ({shown} of the sigmoid/tanh outputs "
                "sit where the derivative is below 1e-2): scale the inputs, use Glorot "
                "initialization, or switch these layers to ReLU."
            )
            details["saturation"] = dict(context.saturation)
        variables = self.layout.variables_of(weak)
        return [Finding("vanishing-gradient", message, context.step, variables, details=details)]


class LossNotDecreasing(Check):
    """`loss-not-decreasing`: the loss now is no lower than over the first `window` steps.

    Compares the mean loss of the first `window` steps with a moving average of the recent loss,
    once `2 * window` steps are seen. A loss that improved and then plateaus is not flagged.

    Args:
      window: Steps in the first window, and the moving average's span.
      min_improvement: Relative improvement that counts as decreasing.
    """

    def __init__(self, window: int = 50, min_improvement: float = 1e-3):
        self.window = window
        self.min_improvement = min_improvement

    def _build(self) -> None:
        self.first_sum = self._add("loss_first_sum", 0.0)
        self.recent = self._add("loss_recent", 0.0)
        self.count = self._add("loss_count", 0, tf.int64)

    def update(self, stats: Stats) -> None:
        loss = tf.cast(stats.loss, tf.float32)
        finite = tf.math.is_finite(loss)
        loss = tf.where(finite, loss, 0.0)
        in_first = finite & (self.count < self.window)
        self.first_sum.assign_add(tf.where(in_first, loss, 0.0))
        decay = 2.0 / (self.window + 1)
        recent = tf.where(self.count == 0, loss, self.recent + decay * (loss - self.recent))
        self.recent.assign(tf.where(finite, recent, self.recent))
        self.count.assign_add(tf.cast(finite, tf.int64))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        if int(s["loss_count"]) < 2 * self.window:
            return []
        first = float(s["loss_first_sum"]) / self.window
        recent = float(s["loss_recent"])
        if abs(first) < 1e-8 or first - recent > self.min_improvement * abs(first):
            return []
        message = (
            f"The loss has not decreased: it averaged {_fmt(first)} over the first "
            f"{self.window} steps and is {_fmt(recent)} now (step {context.step}); the weights "
            "are not moving usefully: see the other findings (learning rate, gradients, "
            "updates) and check that labels match the model's outputs."
        )
        details = {"first_mean": first, "recent": recent, "window": self.window}
        return [Finding("loss-not-decreasing", message, context.step, details=details)]


class ActivationHealth(Check):
    """`dead-units`, and saturation as the cause of `vanishing-gradient`: the activations.

    Watches the outputs of the model's activation-bearing layers (Dense/Conv with a ReLU,
    sigmoid or tanh activation, `Activation`, `ReLU`) in the training forward pass itself: no
    second forward pass, outputs and gradients unchanged. Layers with `trainable=False` (a
    frozen base) are not watched. `TrainStep`, the guard decorator given the model (and the
    checks as a list), and ``gradguard run --activations`` (each optimizer watches the model it
    trains) capture activations. Under a multi-replica strategy `TrainStep` sums the replicas'
    counts (a unit is alive if it fired on any replica's slice of the batch); the guard and
    ``run`` do not watch there, nor the guard without the model: the check stays silent.
    ``gradguard inspect`` judges dead units again from the logged
    ``gradguard_dead_units/<layer>`` scalars (`judge_logged`).

    * **Dead units.** Per ReLU unit (last axis: units or channels; axis 1 for a
      ``channels_first`` convolution), the last step on which it was non-zero for at least one
      example (any position). A unit silent for the last `window` steps is dead: it gets no
      gradient, so it cannot recover. A layer is reported when at least `dead_fraction` of its
      units are dead; a modest share of units inactive on a batch, sparse inputs, or dropout
      (applied after the watched output) are normal and stay silent.
    * **Saturation.** Per sigmoid/tanh layer, the fraction of outputs within `margin` of the
      limits (sigmoid below `margin` or above ``1 - margin``, ``|tanh|`` above ``1 - margin``,
      where the derivative is below about `margin`), as a moving average over about `window`
      steps. Saturation alone is not a finding; layers at or above `saturated` are named as the
      likely cause when `vanishing-gradient` is reported (through `Context.saturation`).

    Off by default (`default_checks()` does not include it): add it to the list, e.g.
    ``checks=[*gradguard.checks.default_checks(), gradguard.checks.ActivationHealth()]``.
    Measured with ``benchmarks/overhead.py --variants trainstep,trainstep-act`` (2 CPU cores,
    paired against the default `TrainStep`): about +2% per step on the MLP, +8-9% on the small
    CNN (a pass over every conv output), nothing on the LSTM (no watched layer). The CNN cost
    alone is above the 5% budget for default checks, hence opt-in.

    Args:
      dead_fraction: Report a layer when at least this fraction of its units is dead. Healthy
        runs used to calibrate it peaked at 0.43 (a CNN's dense head memorizing one batch);
        a huge learning-rate step, an outlier batch or a bad bias initialization reach
        0.97-1.0.
      window: Steps a unit must stay silent to count as dead; also the span of the
        saturation moving average. Nothing is judged before `window` steps are seen.
      margin: Distance from the activation's limits that counts as saturated.
      saturated: A layer with at least this fraction of saturated outputs is named as the
        likely cause of `vanishing-gradient`.
    """

    watches_activations = True

    def __init__(
        self,
        dead_fraction: float = 0.6,
        window: int = 10,
        margin: float = 0.01,
        saturated: float = 0.25,
    ):
        if not 0.0 < dead_fraction <= 1.0:
            raise ValueError(f"dead_fraction must be in (0, 1]; got {dead_fraction!r}.")
        if window < 1:
            raise ValueError(f"window must be a positive number of steps; got {window!r}.")
        self.dead_fraction = dead_fraction
        self.window = window
        self.margin = margin
        self.saturated = saturated

    def _build(self) -> None:
        self.seen = self._add("act_steps", 0, tf.int64)
        # Per site, the latest step its layer was called on.
        self.latest = self._add("act_latest_step", [-1] * len(self.sites), tf.int64)
        self.saturation = self._add("act_saturation", [0.0] * len(self.sites))
        self.last_active = [
            self._add(f"act_last_active_{i}", [-1] * site.units, tf.int64)
            for i, site in enumerate(self.sites)
        ]

    def update(self, stats: Stats) -> None:
        if not self.sites or len(stats.activations) != len(self.sites):
            return
        step = tf.cast(stats.step, tf.int64)
        decay = 2.0 / (self.window + 1)
        observed = [outputs is not None for outputs in stats.activations]
        # Per site, counts this replica saw: for a ReLU output, per unit, 1 if it fired for any
        # of its examples (summed over replicas: on how many it fired); for sigmoid/tanh,
        # [saturated outputs, outputs].
        counts: dict[int, tf.Tensor] = {}
        for i, (site, outputs) in enumerate(zip(self.sites, stats.activations)):
            if outputs is None:  # not called on this step: nothing seen, nothing changes
                continue
            if site.kind == "relu":
                # One reduction over the output (ReLU outputs are >= 0): the cheapest pass.
                counts[i] = tf.cast(tf.reduce_max(outputs, axis=0) > 0, tf.float32)
                continue
            a = tf.cast(outputs, tf.float32)
            # sigmoid: below margin or above 1 - margin; tanh: |a| above 1 - margin.
            centre, limit = (0.5, 0.5) if site.kind == "sigmoid" else (0.0, 1.0)
            flat = tf.abs(a - centre) > limit - self.margin
            counts[i] = tf.stack(
                [tf.reduce_sum(tf.cast(flat, tf.float32)), tf.cast(tf.size(a), tf.float32)]
            )
        replica = replicas.summing_replica_context()
        if replica is not None and counts:
            # Each replica saw its slice of the batch: a unit is alive if it fired on any.
            keys = list(counts)
            summed = replica.all_reduce(tf.distribute.ReduceOp.SUM, [counts[k] for k in keys])
            counts = dict(zip(keys, summed))
        fractions = []
        for i, (site, last) in enumerate(zip(self.sites, self.last_active)):
            if i not in counts:
                fractions.append(self.saturation[i])
            elif site.kind == "relu":
                last.assign(tf.where(counts[i] > 0, step, last))
                fractions.append(tf.constant(0.0))
            else:
                fractions.append(counts[i][0] / tf.maximum(counts[i][1], 1.0))
        fraction = tf.stack(fractions)
        first = tf.equal(self.seen, 0)
        self.saturation.assign(
            tf.where(first, fraction, self.saturation + decay * (fraction - self.saturation))
        )
        self.latest.assign(tf.where(tf.constant(observed), step, self.latest))
        self.seen.assign_add(1)

    def dead(self, state: Mapping[str, np.ndarray]) -> dict[str, tuple[float, int]]:
        """Per ReLU layer output: (fraction of units dead, step the first died at, or -1), host.

        A unit died at the step after the last one it fired on (0 if it never fired).
        """
        latest = np.asarray(state["act_latest_step"])
        result = {}
        for i, site in enumerate(self.sites):
            if site.kind != "relu":
                continue
            last = np.asarray(state[f"act_last_active_{i}"])
            dead = latest[i] - last >= self.window
            since = int(last[dead].min()) + 1 if dead.any() else -1
            result[site.name] = (float(dead.mean()) if last.size else 0.0, since)
        return result

    def saturated_layers(self, state: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The sigmoid/tanh layer outputs at or above `saturated`, with their fraction (host)."""
        if int(state.get("act_steps", 0)) < self.window:
            return {}
        fractions = np.asarray(state["act_saturation"])
        return {
            site.name: float(fractions[i])
            for i, site in enumerate(self.sites)
            if site.kind != "relu" and fractions[i] >= self.saturated
        }

    def summary(self, state: Mapping[str, np.ndarray]) -> dict[str, float]:
        """``dead_fraction/<layer>`` and ``saturation/<layer>`` per watched output (host)."""
        result = {f"dead_fraction/{name}": f for name, (f, _) in self.dead(state).items()}
        fractions = np.asarray(state["act_saturation"])
        for i, site in enumerate(self.sites):
            if site.kind != "relu":
                result[f"saturation/{site.name}"] = float(fractions[i])
        return result

    def scalars(self) -> list[tuple[str, Any]]:
        """TensorBoard tags with functions computing their values in-graph.

        ``gradguard_dead_units/<layer>``: the share of a ReLU output's units dead now (silent
        for the last `window` steps); ``gradguard_saturation/<layer>``: a sigmoid/tanh output's
        saturated share (moving average).
        """
        result: list[tuple[str, Any]] = []
        for i, site in enumerate(self.sites):
            if site.kind == "relu":
                last = self.last_active[i]

                def dead(last: tf.Variable = last, i: int = i) -> tf.Tensor:
                    silent = self.latest[i] - last >= self.window
                    return tf.reduce_mean(tf.cast(silent, tf.float32))

                result.append((f"gradguard_dead_units/{site.name}", dead))
            else:
                result.append((f"gradguard_saturation/{site.name}", lambda i=i: self.saturation[i]))
        return result

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        if not self.sites or int(state["act_steps"]) < self.window:
            return []
        results = []
        for name, (fraction, since) in self.dead(state).items():
            site = next(s for s in self.sites if s.name == name)
            finding = self._dead_units(name, fraction, context, units=site.units, since=since)
            if finding is not None:
                results.append(finding)
        return results

    def judge_logged(self, fractions: Mapping[str, float], context: Context) -> list[Finding]:
        """`dead-units` from logged dead fractions per layer (``gradguard inspect``).

        Args:
          fractions: Per layer, the ``gradguard_dead_units/<layer>`` value at the latest
            logged step. The live run computed it with its own `window`; this check's
            `dead_fraction` decides.
          context: The step judged at.

        Returns:
          One finding per layer at or above `dead_fraction` (the unit count and the step the
          units died at are not logged, so the message leaves them out).
        """
        results = []
        for name, fraction in fractions.items():
            finding = self._dead_units(name, fraction, context)
            if finding is not None:
                results.append(finding)
        return results

    def _dead_units(
        self,
        name: str,
        fraction: float,
        context: Context,
        units: int | None = None,
        since: int | None = None,
    ) -> Finding | None:
        """The `dead-units` finding for one layer output, if `fraction` reaches the threshold."""
        if not fraction >= self.dead_fraction:  # also False for NaN
            return None
        count = "" if units is None else f" ({round(fraction * units)} of {units})"
        began = ""
        if since is not None:
            began = (
                " (dying from the first step on)"
                if since <= 0
                else f" (dying from step {since} on)"
            )
        message = (
            f"{fraction:.0%} of the ReLU units of {name}{count} are dead, zero for every example "
            f"for at least the last {self.window} steps{began}: they get no gradient and never "
            "recover. Likely causes: a learning rate too high, an outlier batch, or the bias "
            "initialization; use LeakyReLU or ELU, a lower learning rate (or clipping), and "
            "normalized inputs."
        )
        layout = getattr(self, "layout", None)
        variables = (
            layout.variables_of([layout.layers.index(name)])
            if layout is not None and name in layout.layers
            else (name,)
        )
        details: dict[str, Any] = {"layer": name, "dead_fraction": fraction, "window": self.window}
        if units is not None:
            details["units"] = units
        if since is not None:
            details["since_step"] = since
        return Finding("dead-units", message, context.step, variables, details=details)


def default_checks() -> list[Check]:
    """A fresh list of the built-in gradient and update checks with default thresholds."""
    return [
        NonFinite(),
        ZeroGradient(),
        UpdateRatio(),
        ExplodingGradient(),
        VanishingGradient(),
        LossNotDecreasing(),
    ]
