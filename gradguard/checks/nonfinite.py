"""`non-finite`: NaN or Inf in the loss, a gradient or a weight; names where it came first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard.checks.base import Check
from gradguard.findings import Finding, listing, number
from gradguard.sinks import tags
from gradguard.stats import BATCH_FAULTS, EMPTY, Context, Layout, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["NonFinite"]


# Where the in-graph statistics saw it first, as an origin stage (before any replay).
_STAGES = {"loss": "loss", "gradient": "backward", "weight": "update"}
# What to do, by the stage a replay found.
_ADVICE = {
    "data": (
        "Clean the data before training (np.nan_to_num, or drop the rows), look for log(0) or "
        "a division by zero in the preprocessing, and drop empty batches."
    ),
    "forward": (
        "Make that computation safe: an epsilon inside log, sqrt or a division, a clipped "
        "argument to exp, normalized inputs, or a lower learning rate if its weights grew."
    ),
    "loss": (
        "Look for log(0) or a division by zero in the loss: add an epsilon, use "
        "from_logits=True, or a keras.losses object; a loss that takes the log of the "
        "prediction (Poisson) needs a positive output (softplus or exp), not a linear one."
    ),
    "backward": (
        "The value is finite but its derivative is not (sqrt or pow at 0, a division by a "
        "tiny norm): add an epsilon inside, e.g. tf.sqrt(x + 1e-12), or tf.math.divide_no_nan."
    ),
    "update": (
        "Lower the learning rate, or raise the optimizer's epsilon (in float16, 1e-7 rounds to "
        "0: use mixed precision, which keeps the weights in float32, or epsilon=1e-4)."
    ),
}

# A loss op that squares finite values overflows float32 once they pass ~1.8e19: not log(0) or a
# division but predictions that diverged, or targets far from the outputs' scale.
_OVERFLOWING_LOSS_OPS = frozenset({"Square", "SquaredDifference", "Pow"})
_LOSS_OVERFLOW = (
    "A squared error overflows float32 when the predictions are ~1e19 from the targets: the "
    "predictions diverged, or the targets are far from unit scale (prices, counts in the "
    "thousands). Standardize the targets ((y - mean) / std, predictions mapped back with "
    "* std + mean) and the inputs, and lower the learning rate."
)

# For finite gradients whose squared norm overflowed float32 (`origin._exploding`).
_EXPLODING = (
    "Gradients this large come from unscaled data or a diverging run: scale the inputs and "
    "targets to about unit range, lower the learning rate, and look for a loss summed where a "
    "mean was meant. Such updates are skipped like non-finite ones."
)


class NonFinite(Check):
    """`non-finite`: NaN or Inf in the loss, a gradient or a weight; names where it came first.

    With mixed precision, steps the loss scaler skips on purpose (float16 overflow) are counted,
    not reported; a loss scale that collapses below `min_loss_scale` is reported: the gradients
    are non-finite even at a tiny scale, so it is not overflow.

    Args:
      min_loss_scale: Loss scale below which the scaler has collapsed.
    """

    # Vetoed updates and bad batches are not logged: not judged from logs.
    not_logged = frozenset({"vetoed_finite_first", "vetoed_finite", "data_first", "data_faults"})

    deferrable = True

    def __init__(self, min_loss_scale: float = 1.0):
        self.min_loss_scale = min_loss_scale

    def _build(self) -> None:
        n = self.layout.size
        # The first step each thing went wrong (-1: not yet): the loss, each gradient, each
        # weight, an update a transform refused although the loss and the gradients were
        # finite, a batch at fault (`Stats.bad_input`).
        self.firsts = self.add_states(
            {
                "loss_first": -1,
                "grad_first": [-1] * n,
                "weight_first": [-1] * n,
                "vetoed_finite_first": -1,
                "data_first": -1,
            },
            tf.int64,
        )
        self.counts = self.add_states({"skipped": 0, "overflows": 0, "vetoed_finite": 0}, tf.int64)
        self.loss_scale_min = self.add_state("loss_scale_min", np.inf)
        # What was wrong with the first batch at fault.
        self.data_faults = self.add_state("data_faults", 0, tf.int32)

    def update(self, stats: Stats) -> None:
        overflow = tf.convert_to_tensor(stats.overflow)
        finite_loss = tf.math.is_finite(stats.loss)
        finite_grads = tf.math.is_finite(stats.grad_sq)
        # Updates the gate skipped (not the calls a Keras optimizer only accumulates).
        skipped = tf.convert_to_tensor(stats.vetoed)
        vetoed = skipped & finite_loss & tf.reduce_all(finite_grads)
        bad_input = tf.convert_to_tensor(stats.bad_input, tf.int32)
        bad = tf.concat(
            [
                tf.reshape(~finite_loss, [1]),
                ~overflow & ~finite_grads,
                # Weights on measuring steps, a large one through its sample (`deltas.stride`);
                # a NaN weight the sample misses makes the next loss NaN instead.
                stats.measured & ~tf.math.is_finite(stats.weight_sq),
                tf.stack([vetoed, bad_input != 0]),
            ],
            axis=0,
        )
        firsts = self.firsts.read_value()
        self.firsts.assign(tf.where((firsts < 0) & bad, stats.step, firsts))
        self.data_faults.assign(
            tf.where((firsts[-1] < 0) & (bad_input != 0), bad_input, self.data_faults)
        )
        counted = tf.stack([skipped, overflow, vetoed])
        self.counts.assign_add(tf.cast(counted, tf.int64))
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
                f"The loss scale collapsed to {number(scale)} after {overflows} overflow skips: "
                "the gradients are NaN/Inf even at a tiny scale, so this is not float16 "
                "overflow; look for log(0), a division by zero or a learning rate that makes "
                "the weights diverge."
            )
            details: dict[str, Any] = {
                "loss_scale": scale,
                "overflow_skips": overflows,
                "origin": {"stage": "backward", "layer": None, "op": None, "step": context.step},
            }
            return [Finding("non-finite", message, context.step, details=details)]
        if not seen and int(s.get("vetoed_finite", 0)):
            return [self._vetoed(s, context)]
        if not seen:
            return []
        # At one step, weights are measured before that step's update: they come first.
        order = {"weight": 0, "loss": 1, "gradient": 2}
        step, where, variables = min(seen, key=lambda src: (src[0], order[src[1]], len(src[2])))
        data_step = int(s.get("data_first", -1))
        if 0 <= data_step <= step:
            what = f"The gradient of {listing(variables)}" if where == "gradient" else "The loss"
            return [self._bad_data(s, data_step, what)]
        skipped = int(s["skipped"])
        if skipped and skipped >= context.steps:
            skip_text = (
                f" Every one of the {skipped} updates so far was skipped: the model has not "
                "trained at all."
            )
        elif skipped and where == "weight":
            skip_text = (
                f" {skipped} later update(s) were skipped, but the weights were already NaN/Inf: "
                "restore them from a checkpoint."
            )
        elif skipped:
            skip_text = f" {skipped} update(s) were skipped, so the weights are intact."
        elif where == "loss":
            skip_text = (
                " The update was applied: its gradients were finite, and "
                "gradguard.skip_nonfinite() skips only updates whose gradients are NaN/Inf."
            )
        else:
            skip_text = (
                " The update was applied: gradguard.skip_nonfinite() as the transform of "
                "TrainStep, guard or GuardCallback skips such updates."
            )
        if where == "loss":
            message = (
                f"The loss became NaN/Inf at step {step}: look for log(0), division by zero or "
                "sqrt of a negative in the loss (add an epsilon, or use from_logits=True), the "
                "log of a negative prediction (a loss that takes the log of the output, as "
                "Poisson does, needs a positive output: softplus or exp), and for an exploding "
                "learning rate."
            )
        elif where == "gradient":
            message = (
                f"The gradient of {listing(variables)} became NaN/Inf at step {step} while the "
                "loss was finite: an op with an unstable gradient (sqrt or log near 0, a "
                "division) or overflow; clip gradients or add an epsilon."
            )
        else:
            message = (
                f"The weights of {listing(variables)} became NaN/Inf (seen at step {step}) "
                "while loss and gradients were finite: the optimizer update overflowed; "
                "lower the learning rate or raise the optimizer's epsilon."
            )
        origin: dict[str, Any] = {"stage": _STAGES[where], "layer": None, "op": None, "step": step}
        replay = context.notes.get("non_finite_origin")
        if replay is not None and (replay["step"] == step or replay.get("latest")):
            late = replay.get("origin", {}).get("stage") == "update" and where != "weight"
            if late:
                # The weights a replay runs on came from that step's own non-finite update.
                message = (
                    f"{message[:-1]} (a replay of its batch could not tell where: that step's "
                    "non-finite update was applied and overwrote the weights; with "
                    "gradguard.skip_nonfinite() in the transform they are kept, and the replay "
                    "names the layer)."
                )
            elif replay["replayed"] and "exploding_norm" in replay["origin"]:
                origin = replay["origin"]
                message = (
                    f"The gradient of {listing(variables)} read as NaN/Inf at step {step}, "
                    f"but a replay of that batch shows {replay['where']}. {_EXPLODING}"
                )
            elif replay["replayed"]:
                origin = replay["origin"]
                what = {
                    "loss": "The loss",
                    "gradient": f"The gradient of {listing(variables)}",
                    "weight": f"The weights of {listing(variables)}",
                }[where]
                batch = (
                    "that batch"
                    if replay["step"] == step
                    else f"the batch of step {replay['step']} (the latest: an XLA step keeps no "
                    "batch)"
                )
                advice = _ADVICE.get(origin["stage"], "")
                if origin["stage"] == "loss" and origin.get("op") in _OVERFLOWING_LOSS_OPS:
                    advice = _LOSS_OVERFLOW
                message = (
                    f"{what} became NaN/Inf at step {step}; replaying {batch} found where it "
                    f"began: {replay['where']}. {advice}"
                )
            else:
                message = f"{message[:-1]} ({replay['where']})."
        details = {
            "first_in": where,
            "first_step": step,
            "skipped_updates": skipped,
            "origin": origin,
        }
        return [Finding("non-finite", message + skip_text, step, variables, details=details)]

    def _bad_data(self, s: Mapping[str, np.ndarray], step: int, what: str) -> Finding:
        faults = int(s["data_faults"])
        named = [text for bit, text in BATCH_FAULTS.items() if faults & bit]
        skipped = int(s["skipped"])
        kept = f" {skipped} update(s) were skipped, so the weights are intact." if skipped else ""
        if faults & EMPTY:
            message = (
                f"The batch of step {step} was empty (0 examples): the mean loss over no "
                "examples is NaN; drop empty batches (dataset.filter on the batch size, or "
                "batch(..., drop_remainder=True)) and check the input pipeline's filters."
            )
        else:
            message = (
                f"{what} became NaN/Inf at step {step} because the batch held NaN or Inf in "
                f"{' and '.join(named)}: the data, not the model, is at fault; clean it before "
                "training (e.g. np.nan_to_num, or drop the rows: x[np.isfinite(x).all(axis=1)]) "
                "and look for log(0) or a division by zero in the preprocessing."
            )
        origin = {"stage": "data", "step": step, "inputs": named}
        details = {
            "first_in": "data",
            "first_step": step,
            "skipped_updates": skipped,
            "origin": origin,
        }
        return Finding("non-finite", message + kept, step, details=details)

    def _vetoed(self, s: Mapping[str, np.ndarray], context: Context) -> Finding:
        count, since = int(s["vetoed_finite"]), int(s["vetoed_finite_first"])
        every = " (every update so far)" if count >= context.steps else ""
        message = (
            f"{count} update(s) were skipped from step {since} on{every} although the loss and "
            "the gradients were finite: a gradient transform turned them into NaN/Inf before "
            "the update (a clipping limit of 0 or inf, or a custom transform), so the weights "
            "do not change; check the transform passed to gradguard."
        )
        details = {
            "first_in": "transform",
            "first_step": since,
            "skipped_updates": count,
            "origin": {"stage": "update", "layer": None, "op": "transform", "step": since},
        }
        return Finding("non-finite", message, since, details=details)

    def notes(self, state: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        """``non_finite_from``: the first step anything went NaN/Inf.

        Other checks' judgments of what followed (units silenced by NaN weights) are moot.
        """
        steps = [int(state["loss_first"]), _earliest(state["grad_first"])]
        steps.append(_earliest(state["weight_first"]))
        seen = [s for s in steps if s >= 0]
        return {"non_finite_from": min(seen)} if seen else {}

    def summary(self, state: Mapping[str, np.ndarray]) -> Mapping[str, float]:
        return {
            "skipped_updates": int(state["skipped"]),
            "overflow_skips": int(state["overflows"]),
        }

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        loss, loss_present = logged.column(tags.LOSS)
        grad, grad_present = logged.groups_of(tags.LAYER_GRAD_NORM)
        weight, weight_present = logged.groups_of(tags.LAYER_WEIGHT_NORM)
        skipped, present = logged.column(tags.SKIPPED_UPDATES)
        steps = logged.steps
        return {
            "loss_first": np.int64(_first_step(steps, loss_present & ~np.isfinite(loss))),
            "grad_first": np.array(
                [_first_step(steps, p & ~np.isfinite(g)) for g, p in zip(grad, grad_present)],
                np.int64,
            ),
            "weight_first": np.array(
                [_first_step(steps, p & ~np.isfinite(w)) for w, p in zip(weight, weight_present)],
                np.int64,
            ),
            "skipped": np.int64(skipped[present][-1] if present.any() else 0),
            # The loss scale is not logged: inspect does not judge a collapsing one.
            "overflows": np.int64(0),
            "loss_scale_min": np.float32(1.0),
            # `not_logged`: values that make no finding.
            "vetoed_finite_first": np.int64(-1),
            "vetoed_finite": np.int64(0),
            "data_first": np.int64(-1),
            "data_faults": np.int32(0),
        }


def _earliest(first_steps: np.ndarray) -> int:
    seen = first_steps[first_steps >= 0]
    return int(seen.min()) if seen.size else -1


def _at(layout: Layout, first_steps: np.ndarray) -> tuple[str, ...]:
    step = _earliest(first_steps)
    return tuple(n for n, s in zip(layout.names, first_steps) if s == step and step >= 0)


def _first_step(steps: np.ndarray, bad: np.ndarray) -> int:
    hits = np.flatnonzero(bad)
    return int(steps[hits[0]]) if hits.size else -1
