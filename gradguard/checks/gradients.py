"""Gradient checks: `zero-gradient`, `exploding-gradient`, `vanishing-gradient`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard.checks.base import Check
from gradguard.findings import Finding, Severity, listing, number
from gradguard.sinks import tags
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["ExplodingGradient", "VanishingGradient", "ZeroGradient"]

# Names of the variables that shift a layer's output (Dense/Conv bias, normalization beta).
_OFFSETS = frozenset({"bias", "beta", "offset"})


class ZeroGradient(Check):
    """`zero-gradient`: a gradient exactly zero on every step seen, or every gradient stalled.

    Stalled: every gradient exactly zero on every recent step, after earlier non-zero ones.

    Args:
      min_steps: Steps to see before judging.
      stalled_after: Steps in a row on which every gradient is exactly zero while the loss is
        not (a model whose loss reached 0 has nothing left to learn), after earlier non-zero
        gradients, that make a stalled training.
    """

    deferrable = True

    def __init__(self, min_steps: int = 2, stalled_after: int = 50):
        self.min_steps = min_steps
        self.stalled_after = stalled_after

    def _build(self) -> None:
        self.max_sq = self.add_state("grad_sq_max", [0.0] * self.layout.size)
        # How many steps in a row every gradient was zero, and since which step.
        self.stalled = self.add_states({"stalled_steps": 0, "stalled_since": -1}, tf.int64)

    def update(self, stats: Stats) -> None:
        # A non-finite gradient is not a zero one; count it as non-zero.
        sq = tf.where(tf.math.is_finite(stats.grad_sq), stats.grad_sq, 1.0)
        self.max_sq.assign(tf.maximum(self.max_sq, sq))
        loss = tf.cast(stats.loss, tf.float32)
        stalled = (
            tf.reduce_all(tf.equal(sq, 0.0))
            & tf.math.is_finite(loss)
            & tf.not_equal(loss, 0.0)
            & tf.convert_to_tensor(stats.loss_known)
        )
        steps, since = tf.unstack(self.stalled.read_value())
        since = tf.where(stalled & tf.equal(steps, 0), stats.step, since)
        self.stalled.assign(tf.stack([tf.where(stalled, steps + 1, 0), since]))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        if context.steps < self.min_steps:
            return []
        max_sq = state["grad_sq_max"]
        # Variables feeding only outputs compiled with loss weight 0 are zero by choice.
        off = context.notes.get("switched_off", frozenset())
        with_grad = [i for i in range(self.layout.size) if i not in context.none and i not in off]
        stalled = int(state.get("stalled_steps", 0))
        if stalled >= self.stalled_after and any(max_sq[i] > 0 for i in with_grad):
            since = int(state["stalled_since"])
            message = (
                f"Every gradient has been exactly zero since step {since} ({stalled} steps in a "
                "row) although the loss is not: training stopped. Every ReLU feeding the loss "
                "died (a learning rate too high, an output layer with a ReLU), the part of the "
                "loss that reaches the weights is fitted exactly and the rest is cut from the "
                "tape (computed outside it, or a derivative taken on a tape not nested in it), "
                "or the gradients were zeroed before the optimizer (an accumulator reset before "
                "apply_gradients)."
            )
            # A warning: training had gradients, and a stall can pass (a saturated adversary).
            details = {"since_step": since, "steps": stalled}
            return [Finding("zero-gradient", message, since, (), Severity.WARNING, details)]
        zero = [i for i in with_grad if max_sq[i] == 0.0]
        if len(zero) < len(with_grad):
            zero = [i for i in zero if not self._shift_invariant(i, max_sq)]
        if not zero:
            return []
        variables = tuple(self.layout.names[i] for i in zero)
        if len(zero) == len(with_grad):
            message = (
                f"The gradient of every trainable variable was exactly zero on all "
                f"{context.steps} steps seen: the loss is flat in the weights (it is built "
                "from rounded or thresholded outputs, does not depend on the prediction, or "
                "every ReLU unit is dead), or the gradients were zeroed before the optimizer "
                "got them (an accumulator reset before apply_gradients); check the loss "
                "function."
            )
            if context.notes.get("weighted"):
                message += (
                    " The examples are weighted: weights that are all 0 (a mask that matched "
                    "nothing) zero the loss and every gradient; check sample_weight."
                )
            severity = Severity.ERROR
        elif self._first_step_only(zero, max_sq):
            message = (
                f"The gradient of {listing(variables)} was exactly zero on all "
                f"{context.steps} steps seen while the same layer's input kernel learns: the "
                "loss reads the layer's output at its first time step only, which no "
                "recurrence reaches (h[:, 0] of return_sequences=True, where the last step "
                "h[:, -1] or return_sequences=False was meant; a pre-padded sequence starts "
                "with padding)."
            )
            severity = Severity.WARNING
        else:
            message = (
                f"The gradient of {listing(variables)} was exactly zero on all "
                f"{context.steps} steps seen: these weights never learn (a dead ReLU layer, a "
                "zero multiplier, or an input that is always zero); check how they reach the loss."
            )
            severity = Severity.WARNING
        if context.notes.get("float16_unscaled"):
            message += _FLOAT16_UNSCALED
        return [Finding("zero-gradient", message, context.step, variables, severity)]

    def _first_step_only(self, zero: list[int], max_sq: np.ndarray) -> bool:
        """Whether `zero` are recurrent kernels whose layers' input kernels have gradients."""
        names = self.layout.names
        index = {name: i for i, name in enumerate(names)}
        kernels = [index.get(names[i].removesuffix("recurrent_kernel") + "kernel") for i in zero]
        return all(names[i].endswith("/recurrent_kernel") for i in zero) and all(
            k is not None and max_sq[k] > 0 for k in kernels
        )

    def _shift_invariant(self, i: int, max_sq: np.ndarray) -> bool:
        """Whether variable `i` is an offset (a bias) whose layer's other weights learn.

        The loss is then invariant to shifting that layer's output: a batch normalization
        after it, or a loss of output differences (a Wasserstein critic's mean(fake) -
        mean(real)). Its gradient is zero by construction, not a bug; a dead unit or a zero
        input zeroes the kernel's gradient too.
        """
        name = self.layout.names[i].rsplit("/", 1)[-1]
        if name not in _OFFSETS:
            return False
        layer = self.layout.layer_index[i]
        mates = [j for j, li in enumerate(self.layout.layer_index) if li == layer and j != i]
        return any(max_sq[j] > 0.0 for j in mates)

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        grad, present = logged.groups_of(tags.LAYER_GRAD_NORM)
        sq = np.where(np.isfinite(grad), grad**2, 1.0)
        return {
            "grad_sq_max": np.where(present, sq, 0.0).max(axis=1, initial=0.0),
            # Samples every `every` steps cannot show steps in a row.
            "stalled_steps": np.int64(0),
            "stalled_since": np.int64(-1),
        }


# Gradients below float16's smallest value (6e-8) round to 0 unless the loss is scaled up first.
_FLOAT16_UNSCALED = (
    " The layers compute in float16 (a mixed precision policy) and the optimizer scales no "
    "loss: gradients below 6e-8 underflow to 0 in float16. Wrap the optimizer in "
    "keras.optimizers.LossScaleOptimizer and, in a hand-written step, take the gradient of "
    "optimizer.scale_loss(loss) (or train in float32)."
)


class ExplodingGradient(Check):
    """`exploding-gradient`: a gradient norm that is very large or grew by orders of magnitude.

    Args:
      growth: Flags when the largest norm seen is this many times the first step's norm
        (and at least `min_norm`).
      limit: Flags any global norm above this.
      min_norm: Growth to a norm below this is not judged (small gradients that grow are normal).
      data_scale: A first step's norm above this, before any update, is the data's scale (or
        the loss's or the initialization's), not a learning rate's: a normalized model's
        first gradients are far smaller, whatever its learning rate.

    A norm that grew and came back down (the latest a tenth of the largest or less) while the
    loss fell to half its first value or less is a spike the run recovered from, not
    divergence: a recurrent net crossing a cliff as it starts to learn (an LSTM's norm from 0.14
    at the first step to 167, then back, its accuracy reaching 1.0). It is not reported unless
    above `limit`.
    """

    deferrable = True

    def __init__(
        self,
        growth: float = 1e3,
        limit: float = 1e6,
        min_norm: float = 1.0,
        data_scale: float = 1e4,
    ):
        self.growth = growth
        self.limit = limit
        self.min_norm = min_norm
        self.data_scale = data_scale

    def _build(self) -> None:
        layers = len(self.layout.layers)
        self.norms = self.add_states(
            {
                "norm_first": -1.0,
                "norm_max": 0.0,
                "loss_first": np.nan,  # the loss at the first step (NaN if not known)
                "norm_last": 0.0,  # the latest finite norm, and the latest loss known
                "loss_last": np.nan,
                "layer_norm_max": [0.0] * layers,
            }
        )
        self.max_step = self.add_state("norm_max_step", -1, tf.int64)

    def update(self, stats: Stats) -> None:
        norm = stats.grad_norm
        finite = tf.math.is_finite(norm)
        firsts, layer_max = tf.split(self.norms.read_value(), [5, len(self.layout.layers)])
        first, largest, loss_first, norm_last, loss_last = tf.unstack(firsts)
        larger = finite & (norm > largest)
        layer_norm = tf.sqrt(self.layout.per_layer(stats.grad_sq))
        layer_norm = tf.where(tf.math.is_finite(layer_norm), layer_norm, 0.0)
        is_first = (first < 0) & finite
        loss = tf.where(stats.loss_known, stats.loss, np.nan)
        firsts = tf.stack(
            [
                tf.where(is_first, norm, first),
                tf.where(larger, norm, largest),
                tf.where(is_first, loss, loss_first),
                tf.where(finite, norm, norm_last),
                tf.where(tf.math.is_finite(loss), loss, loss_last),
            ]
        )
        self.norms.assign(tf.concat([firsts, tf.maximum(layer_max, layer_norm)], axis=0))
        self.max_step.assign(tf.where(larger, stats.step, self.max_step))

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        first, largest = float(s["norm_first"]), float(s["norm_max"])
        grew = first > 0 and largest >= self.min_norm and largest >= self.growth * first
        loss_first, loss_last = float(s["loss_first"]), float(s["loss_last"])
        recovered = 10 * float(s["norm_last"]) <= largest and 0 < loss_last <= 0.5 * loss_first
        if not (grew or largest > self.limit) or (recovered and largest <= self.limit):
            return []
        layer = self.layout.layers[int(np.argmax(s["layer_norm_max"]))]
        step = int(s["norm_max_step"])
        reached = f"The gradient norm reached {number(largest)} at step {step}"
        if first > self.data_scale and not context.notes.get("resumed"):
            # Before any update the learning rate has done nothing yet: the scale is the data's.
            loss = f" with a loss of {number(loss_first)}" if np.isfinite(loss_first) else ""
            message = (
                f"{reached}, and was already {number(first)} at the first step{loss}, before "
                f"any update (largest in {layer}): the scale of the data, not the learning "
                "rate: normalize the targets and the inputs (a regression target in the "
                "hundreds of thousands makes a squared error near 1e10; standardize it, "
                "(y - mean) / std, and map predictions back), look for a loss summed where a "
                "mean was meant, or the initialization is too large; lowering the learning "
                "rate only slows a model that cannot reach them."
            )
        else:
            message = (
                f"{reached} (first step: {number(first)}), largest in {layer}: training is "
                "diverging; lower the learning rate, clip with "
                "gradguard.clip_by_global_norm(1.0), and check that inputs and targets are "
                "normalized."
            )
        if context.notes.get("loss_summed"):
            message += (
                f" The loss is a sum over {context.notes['loss_summed']} (tf.reduce_sum): its "
                "gradient grows with the batch size; take the mean (tf.reduce_mean, or divide "
                "by the batch size) or scale the learning rate down by the batch size."
            )
        details = {"first_norm": first, "max_norm": largest, "max_step": step, "layer": layer}
        if np.isfinite(float(s["loss_first"])):
            details["first_loss"] = float(s["loss_first"])
        # One finding per run: which layer is largest may change from read to read.
        return [Finding("exploding-gradient", message, step, details=details)]

    def notes(self, state: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        """``data_scale``: the first step's norm, when above `data_scale`, as a suspect."""
        first, loss = float(state["norm_first"]), float(state["loss_first"])
        if first <= self.data_scale:
            return {}
        with_loss = f" with a loss of {number(loss)}" if np.isfinite(loss) else ""
        return {
            "data_scale": f"the data's scale: the gradient norm was already {number(first)} at "
            f"the first step{with_loss}, before any update (a normalized model's is far "
            "smaller): standardize the targets, (y - mean) / std, and the inputs"
        }

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        norm, present = logged.column(tags.GRAD_NORM)
        finite = present & np.isfinite(norm)
        first = float(norm[finite][0]) if finite.any() else -1.0
        loss, logged_loss = logged.column(tags.LOSS)
        at_first = np.flatnonzero(finite)[:1]
        known = at_first.size and logged_loss[at_first[0]]
        loss_first = float(loss[at_first[0]]) if known else np.nan
        largest, largest_step = 0.0, -1
        for step, value, ok in zip(logged.steps, norm, finite):
            if ok and value > largest:
                largest, largest_step = float(value), int(step)
        layer = logged.layer_grad_norms()
        layer = np.where(np.isfinite(layer), layer, 0.0)
        losses = loss[logged_loss & np.isfinite(loss)]
        return {
            "norm_first": np.float32(first),
            "norm_max": np.float32(largest),
            "loss_first": np.float32(loss_first),
            "norm_last": np.float32(norm[finite][-1] if finite.any() else 0.0),
            "loss_last": np.float32(losses[-1] if losses.size else np.nan),
            "norm_max_step": np.int64(largest_step),
            "layer_norm_max": layer.max(axis=1, initial=0.0),
        }


class VanishingGradient(Check):
    """`vanishing-gradient`: early layers' gradients orders of magnitude below the last layer's.

    Args:
      ratio: Flags early layers whose mean gradient norm is below this fraction of the last
        layer's.
      min_layers: Models with fewer layers (with gradients) are not judged.
      min_steps: Steps to see before judging.
    """

    deferrable = True

    def __init__(self, ratio: float = 1e-3, min_layers: int = 3, min_steps: int = 2):
        self.ratio = ratio
        self.min_layers = min_layers
        self.min_steps = min_steps

    def _build(self) -> None:
        self.norm_sum = self.add_state("layer_norm_sum", [0.0] * len(self.layout.layers))
        self.count = self.add_state("layer_norm_count", 0, tf.int64)

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
        # A layer whose gradient is exactly 0 has none to vanish: dead units or a zero factor
        # cut it off (`zero-gradient` says so), not a long chain of small derivatives.
        layers = [
            li for li in range(len(self.layout.layers)) if li not in none_layers and mean[li] > 0
        ]
        if len(layers) < self.min_layers or mean[layers[-1]] <= 0:
            return []
        last = layers[-1]
        weak = [li for li in layers[:-1] if mean[li] < self.ratio * mean[last]]
        if not weak or weak[0] != layers[0]:
            return []
        first = weak[0]
        message = (
            f"Gradients vanish toward the input: {self.layout.layers[first]}'s mean gradient "
            f"norm {number(mean[first])} is {number(mean[first] / mean[last])} of "
            f"{self.layout.layers[last]}'s {number(mean[last])} ({len(weak)} early layer(s) "
            f"below {number(self.ratio)}x): saturating activations (sigmoid/tanh) in a deep stack "
            "or a poor initialization; use ReLU with He initialization, batch normalization "
            "or residual connections."
        )
        details: dict[str, Any] = {
            "mean_norm": {self.layout.layers[li]: float(mean[li]) for li in layers}
        }
        saturation = context.notes.get("saturation")
        if saturation:
            shown = ", ".join(f"{name} {frac:.0%}" for name, frac in list(saturation.items())[:4])
            message += (
                f" Likely cause: saturated activations ({shown} of the sigmoid/tanh outputs "
                "sit where the derivative is below 1e-2): scale the inputs, use Glorot "
                "initialization, or switch these layers to ReLU."
            )
            details["saturation"] = dict(saturation)
        variables = self.layout.variables_of(weak)
        return [Finding("vanishing-gradient", message, context.step, variables, details=details)]

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        norm, present = logged.column(tags.GRAD_NORM)
        finite = present & np.isfinite(norm)
        layer = logged.layer_grad_norms()
        return {
            "layer_norm_sum": np.where(finite, layer, 0.0).sum(axis=1),
            "layer_norm_count": np.int64(finite.sum()),
        }
