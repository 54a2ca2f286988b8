"""Update checks: `weights-unchanged`, `update-too-small`, `update-too-large`, `epsilon-dominates`.

A run that moved its weights, then stalled, is told by `stalled`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard import deltas
from gradguard.checks import stalled
from gradguard.checks.base import Check
from gradguard.findings import Finding, listing, number
from gradguard.sinks import tags
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["UpdateRatio"]


def _streak(
    now: tf.Tensor, judged: tf.Tensor, step: tf.Tensor, streak: tf.Tensor, since: tf.Tensor
) -> list[tf.Tensor]:
    """Folds one measured step into runs of steps where `now` held: [run length, its start].

    A step where `now` holds extends the run (started at this step if there was none); a
    judged step where it does not ends the run; a step not judged leaves it as it was.
    """
    since = tf.where(now & tf.equal(streak, 0), step, since)
    ended = tf.where(judged & ~now, tf.zeros_like(streak), streak)
    return [tf.where(now, streak + 1, ended), since]


class UpdateRatio(Check):
    """`weights-unchanged`, `update-too-small`, `update-too-large`: the update-to-weight ratio.

    And `epsilon-dominates`: Adam's epsilon `EPSILON_DOMINATES` times the gradients' typical
    scale or more (``Context.notes["adam_epsilon"]``, `updating.adam_epsilon_scale`, read only
    for an epsilon of 0.1 or more), so each step shrinks as much and Adam is SGD at learning
    rate / epsilon; not for a run that learned (as `update-too-large`, below).

    The ratio ``|delta w| / |w|`` is taken per layer (all of a layer's variables together, so a
    zero-initialized bias does not dominate) on the steps where updates are measured. A variable
    of more than 65536 elements is measured on a sample of 4096 (`deltas.stride`); a step on
    which its sample neither changed nor had a gradient is not judged for it or its layer.

    Args:
      low: A layer whose ratio is below this on every measured step gets `update-too-small`.
        Healthy training sits around 1e-4 to 1e-2; 1e-7 means the weights barely move.
      min_measured: Each finding needs this many measured steps (steps 0, 1, then every
        `every`): one step can be a warmup that starts at 0, or a first step of Adam.
      high: A layer whose ratio is above this on most measured steps (three at least: the
        first two move freshly initialized weights most) gets `update-too-large`: each step
        changes the weights by half their size. Steps where the layer's weights were
        near 0 (a norm below `NEAR_ZERO`: a LayerScale gain initialized at 1e-6) do not count
        as above: any update is large against such weights, whatever the learning rate. Nor
        is a run whose recent loss is below `LEARNED` times the chance level, when that is
        known (``Context.notes["loss_recent"]`` from `LossNotDecreasing`): it learned.
      stopped_after: Weights that changed before and then stayed unchanged on this many
        measured steps in a row (with non-zero gradients) get `weights-unchanged` from the step
        they stopped: a learning-rate schedule that reached 0 partway. With the default
        cadence that is 200 steps or more, so a schedule that reaches 0 on the last step is
        not judged. Two measured steps are enough when the learning rate is exactly 0 now.
        Layers that moved and then stayed below `low` on this many measured steps in a row
        (and a fifth of the run, `stalled.STALLED_SHARE`) get `update-too-small` from the
        step they fell there, when the learning rate is now `stalled.DECAYED` times its start
        or less: a schedule that compounds, or a plateau schedule without a floor.

    A plain SGD optimizer whose steps something scales down `CLIP_BINDS` times or more gets a
    higher bar for `update-too-small`: `CLIP_LOW` (every layer below it on every measured step),
    or the healthy range's floor `HEALTHY_LOW` with a momentum of 0.9 or more (which adds up to
    ``1 / (1 - momentum)`` scaled steps into one), and the message names what scales them: a
    `global_clipnorm` that far below the smallest gradient norm measured, sample weights
    that are all that far below 1 (``Context.notes["sample_weight_largest"]``: weights
    normalized to sum to 1, `sampleweights`), or a LossScaleOptimizer's scale dividing the
    gradients of eager losses it never scaled (``"loss_scale_unseen"``, `lossscale`). Adam and
    the other adaptive optimizers undo the scale: not judged so.
    """

    NEAR_ZERO = 1e-3  # a layer's weight norm below this: weights still near 0, no scale yet
    CLIP_BINDS = 100.0  # a clip this many times below every measured gradient norm binds
    CLIP_LOW = 1e-5  # ... and the bar for update-too-small where it does (without momentum)
    HEALTHY_LOW = 1e-4  # ... and with momentum adding 10 clipped steps or more: healthy's floor
    LEARNED = 0.5  # a recent loss below this share of chance: the model learned
    EPSILON_DOMINATES = 10.0  # an Adam epsilon this many times the gradients' scale

    def __init__(
        self,
        low: float = 1e-7,
        high: float = 0.5,
        min_measured: int = 2,
        stopped_after: int = 3,
    ):
        self.low = low
        self.high = high
        self.min_measured = min_measured
        self.stopped_after = stopped_after

    def _build(self) -> None:
        n, layers = self.layout.size, len(self.layout.layers)
        # Counted per layer and per variable, folded with one assign_add.
        self.counts = self.add_states(
            {
                "measured": [0] * layers,
                "below": [0] * layers,  # below `low`
                "below_clip": [0] * layers,  # below `CLIP_LOW`
                "below_floor": [0] * layers,  # below `HEALTHY_LOW`
                "above": [0] * layers,
                "eligible": [0] * n,
                "unchanged": [0] * n,
            },
            tf.int64,
        )
        # Each layer's latest and largest ratio, and the smallest whole-gradient norm measured.
        self.ratios = self.add_states(
            {"last": [0.0] * layers, "largest": [0.0] * layers, "smallest_grad": np.inf}
        )
        # The current run of measured steps that left each variable unchanged, and its start;
        # the same for each layer's ratio below `low`.
        self.streaks = self.add_states(
            {
                "unchanged_streak": [0] * n,
                "unchanged_since": [-1] * n,
                "below_streak": [0] * layers,
                "below_since": [-1] * layers,
            },
            tf.int64,
        )

    measured_only = True  # nothing to fold on a step that does not measure the weights
    # Only shown in a message: the logs give the largest of the logged ratios, which on a
    # large first step can be a few % off the live one (0.100 against 0.109 in a test).
    not_logged = frozenset({"largest"})

    def update(self, stats: Stats) -> None:
        measured = stats.measured & stats.applied
        w_norm = tf.sqrt(self.layout.per_layer(stats.weight_sq))
        u_norm = tf.sqrt(self.layout.per_layer(stats.update_sq))
        # A layer whose weights are all zero (just initialized) has no meaningful ratio yet, and
        # one without gradient is `zero-gradient`'s business, not a learning rate problem.
        valid = measured & (w_norm > 0) & (self.layout.per_layer(stats.grad_sq) > 0)
        eligible = measured & (stats.grad_sq > 0)
        if any(self.layout.sampled):
            # A sample that says nothing of the rest of its variable (`deltas.known`): neither
            # the variable nor its layer is judged on that step.
            known = deltas.known(self.layout.sampled, stats.update_sq, stats.grad_sample_sq)
            eligible &= known
            valid &= tf.equal(self.layout.per_layer(tf.cast(~known, tf.float32)), 0.0)
        ratio = u_norm / tf.where(w_norm > 0, w_norm, 1.0)
        layers = len(self.layout.layers)
        last, largest, smallest = tf.split(self.ratios.read_value(), [layers, layers, 1])
        judged = measured & tf.math.is_finite(stats.grad_norm)
        grad_norm = tf.where(judged, stats.grad_norm, np.inf)
        folded = [
            tf.where(valid, ratio, last),
            tf.where(valid, tf.maximum(largest, ratio), largest),
            tf.minimum(smallest, grad_norm[None]),
        ]
        self.ratios.assign(tf.concat(folded, axis=0))
        still = eligible & tf.equal(stats.update_sq, 0.0)
        above = valid & (ratio > self.high) & (w_norm >= self.NEAR_ZERO)
        below = [valid & (ratio < bar) for bar in (self.low, self.CLIP_LOW, self.HEALTHY_LOW)]
        counted = [valid, *below, above, eligible, still]
        self.counts.assign_add(tf.cast(tf.concat(counted, axis=0), tf.int64))
        streaks = tf.split(self.streaks.read_value(), [self.layout.size] * 2 + [layers] * 2)
        self.streaks.assign(
            tf.concat(
                [
                    *_streak(still, eligible, stats.step, *streaks[:2]),
                    *_streak(below[0], valid, stats.step, *streaks[2:]),
                ],
                axis=0,
            )
        )

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        layout = self.layout
        lr = "" if context.learning_rate is None else f" ({number(context.learning_rate)})"
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
                    f"Updates were applied but {listing(variables)} did not change on any "
                    f"measured step despite non-zero gradients: the update is zero or below "
                    f"float precision; the learning rate{lr} is likely 0 or far too small.",
                    context.step,
                    variables,
                    details={"measured_steps": int(s["eligible"][unchanged[0]])},
                )
            )
        results.extend(stalled.judge(layout, s, context, unchanged, self.low, self.stopped_after))
        measured = s["measured"]
        judged = [li for li in range(len(layout.layers)) if measured[li] > 0]

        def always(below: str) -> list[int]:  # layers below a bar on every measured step
            return [li for li in judged if self.min_measured <= measured[li] == s[below][li]]

        small = always("below")
        # Large needs a measured step past the first two: those move freshly initialized
        # weights most (a model that then converges, its gradients 0, is measured no more).
        # A model whose loss fell far below chance learned: its large steps did no lasting
        # harm (SGD with momentum 0.9 at 0.1 rewrites a fresh head twice, then settles).
        chance = float(context.notes.get("chance_loss") or 0.0)
        learned = context.notes.get("loss_recent", np.inf) < self.LEARNED * chance
        large = [
            li
            for li in judged
            if not learned
            and measured[li] >= max(self.min_measured, 3)
            and 2 * s["above"][li] > measured[li]
        ]
        results.extend(self._epsilon_dominates(context, learned) if judged else [])
        low = self.low
        if small and len(small) == len(judged):
            small_cause = (
                f"the learning rate{lr} is likely far too small (try 1e-3 for Adam, 1e-2 for SGD)."
            )
        else:
            small_cause = (
                "these layers barely learn while the others do: their gradients are tiny "
                "(vanishing gradients, saturated activations) rather than the learning rate."
            )
        scaled = self._scaled_down(float(s["smallest_grad"]), context, lr)
        if scaled and judged:
            cause, momentum = scaled
            # Momentum adds up to 1 / (1 - momentum) scaled steps into one (no bound at 1).
            steps_added = 1.0 / (1.0 - momentum) if momentum < 1.0 else np.inf
            floor = self.CLIP_LOW * steps_added >= self.HEALTHY_LOW
            below_scaled = always("below_floor" if floor else "below_clip")
            if below_scaled == judged:
                low = self.HEALTHY_LOW if floor else self.CLIP_LOW
                small, small_cause = below_scaled, cause
        for code, layer_ids, text in (
            (
                "update-too-small",
                small,
                f"below {number(low)}, far below the healthy 1e-4..1e-2, on every measured "
                f"step: {small_cause}",
            ),
            (
                "update-too-large",
                large,
                f"above {number(self.high)} on most measured steps: each step rewrites the "
                f"weights; the learning rate{lr} is likely too large (lower it 10x, or clip "
                "gradients).",
            ),
        ):
            if not layer_ids:
                continue
            layers = [layout.layers[li] for li in layer_ids]
            ratios = {layout.layers[li]: float(s["last"][li]) for li in layer_ids}
            shown = "latest: " + ", ".join(
                f"{name} {number(r)}" for name, r in list(ratios.items())[:4]
            )
            details = {"ratio": ratios, "low": low, "high": self.high}
            if code == "update-too-large":  # its latest may have fallen: the weights grew
                largest = {layout.layers[li]: float(s["largest"][li]) for li in layer_ids}
                details["largest"] = largest
                shown = "; ".join(
                    f"{name} largest {number(r)}, latest {number(ratios[name])}"
                    for name, r in list(largest.items())[:4]
                )
            results.append(
                Finding(
                    code,
                    f"Update-to-weight ratio of {listing(layers)} ({shown}) is {text}",
                    context.step,
                    layout.variables_of(layer_ids),
                    details=details,
                )
            )
        return results

    def _epsilon_dominates(self, context: Context, learned: bool) -> list[Finding]:
        scale = context.notes.get("adam_epsilon")  # (epsilon, the gradients' typical scale)
        # (Gradients of 0 throughout are `zero-gradient`'s.)
        if not scale or learned or not 0.0 < self.EPSILON_DOMINATES * scale[1] <= scale[0]:
            return []
        epsilon, typical = (float(v) for v in scale)
        message = (
            f"Adam's epsilon ({number(epsilon)}) is {number(epsilon / typical)}x the gradients' "
            f"typical scale (the median of sqrt(v), Adam's bias-corrected average of squared "
            f"gradients, is {number(typical)}): each step is divided by sqrt(v) + epsilon, so "
            f"steps are about {number(typical / (typical + epsilon))} of Adam's and it acts as "
            "SGD at the learning rate / epsilon. Use the default epsilon (1e-7); 0.1 or 1 "
            "suits gradients of that size only."
        )
        details = {"epsilon": epsilon, "typical_scale": typical}
        return [Finding("epsilon-dominates", message, context.step, details=details)]

    def _scaled_down(self, smallest: float, context: Context, lr: str) -> tuple[str, float] | None:
        """Why plain SGD's every step is `CLIP_BINDS` times smaller or more, and its momentum.

        None when they are not (or the optimizer is not plain SGD).
        """
        clip, momentum = context.notes.get("sgd_clip") or (0.0, 0.0)
        if clip and smallest >= self.CLIP_BINDS * clip:
            added_up = f" / (1 - momentum {number(momentum)})" if momentum else ""
            cause = (
                f"SGD's global_clipnorm ({number(clip)}) is {number(smallest / clip)}x below the "
                f"smallest gradient norm measured ({number(smallest)}), so every step is scaled "
                f"down to it and moves the weights by at most the learning rate{lr} times "
                f"{number(clip)}{added_up}. Raise global_clipnorm to about the gradients' norm "
                "(or remove it)."
            )
            return cause, momentum
        momentum = context.notes.get("sgd_momentum")
        scale = context.notes.get("loss_scale_unseen") or 0.0
        if momentum is not None and scale >= self.CLIP_BINDS:  # (shrinks steps as a clip does)
            cause = (
                f"the LossScaleOptimizer divides every gradient by its loss scale "
                f"({number(scale)}) before SGD's step, and this eager loop never called "
                "optimizer.scale_loss: unless the loss was multiplied by "
                "optimizer.dynamic_scale by hand, every step is that many times too small. "
                "Take the gradient of the scaled loss: "
                "grads = tape.gradient(optimizer.scale_loss(loss), variables)."
            )
            return cause, momentum
        weight = context.notes.get("sample_weight_largest") or 0.0
        if momentum is not None and 0.0 < weight * self.CLIP_BINDS <= 1.0:
            cause = (
                f"every sample weight is {number(weight)} or less, and the loss is the batch's "
                "mean of loss times weight, so the gradients and SGD's steps shrink by as much "
                "(weights normalized to sum to 1 over N examples scale them by 1/N). Scale the "
                "weights to a mean of 1 (w * len(w) / w.sum()), or use an adaptive optimizer "
                "(Adam), which undoes the scale."
            )
            return cause, momentum
        return None

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        u = logged.updates()
        # As the live check: a layer without gradient has no meaningful ratio.
        valid = u.layer_valid & (u.layer_grad_sq > 0)
        ratio = u.layer_ratio
        last = np.zeros(len(logged.layout.layers))
        for li in range(len(last)):
            hits = np.flatnonzero(valid[li])
            if hits.size:
                last[li] = ratio[li, hits[-1]]
        # The whole gradient's norm on each step the update was measured, as the live check.
        grad_norm, present = logged.column(tags.GRAD_NORM)
        grad_norm = grad_norm[present & u.measured.any(axis=0) & np.isfinite(grad_norm)]
        eligible = u.measured & (u.grad > 0) & ~u.unknown
        # A variable whose ratio was not logged (zero weights) is not known to be unchanged.
        unchanged = eligible & u.known & (u.update == 0)
        below = valid & (ratio < self.low)
        runs = {"unchanged": (unchanged, eligible), "below": (below, valid)}
        streaks = {}
        for name, (now, judged) in runs.items():
            streak = np.zeros(len(now), np.int64)
            since = np.full(len(now), -1, np.int64)
            for t, step in enumerate(logged.steps):
                since = np.where(now[:, t] & (streak == 0), step, since)
                streak = np.where(now[:, t], streak + 1, np.where(judged[:, t], 0, streak))
            streaks[f"{name}_streak"], streaks[f"{name}_since"] = streak, since
        return {
            **streaks,
            "measured": valid.sum(axis=1),
            "above": (valid & (ratio > self.high) & (u.layer_weight >= self.NEAR_ZERO)).sum(axis=1),
            "last": last,
            "largest": np.where(valid, ratio, 0.0).max(axis=1, initial=0.0),
            "below": below.sum(axis=1),
            "below_clip": (valid & (ratio < self.CLIP_LOW)).sum(axis=1),
            "below_floor": (valid & (ratio < self.HEALTHY_LOW)).sum(axis=1),
            "eligible": eligible.sum(axis=1),
            "unchanged": unchanged.sum(axis=1),
            "smallest_grad": np.min(grad_norm, initial=np.inf),
        }
