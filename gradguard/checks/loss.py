"""Loss checks: `loss-not-decreasing`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard import suspects
from gradguard.checks.base import Check
from gradguard.findings import Finding, number
from gradguard.sinks import tags
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["LossNotDecreasing"]


class LossNotDecreasing(Check):
    """`loss-not-decreasing`: the loss is not improving, or sits where an untrained model is.

    Judged once `2 * window` steps are seen, on three signs:

    * the moving average of the recent loss is no lower than the mean of the first `window`
      steps (a loss that improved and then plateaus is not flagged);
    * the moving average has stayed at or above the chance level (less than `chance_tolerance`
      below it) for the last `chance_steps` steps, when the entry point knows that level
      (``Context.notes["chance_loss"]``: ln C for a C-class cross-entropy, the labels' entropy
      or variance when the labels were seen): the model predicts no better than the label
      distribution, whatever the loss did at first. A model that warms up near chance and
      leaves it within `chance_steps` steps is not flagged, nor is one below chance that fell by
      more than `chance_tolerance` over them (still learning, from labels that may be mostly
      noise), nor one above it that fell at every sample, by `FALLING` of chance in all (coming
      down from a start far above it). At the final read (the whole run seen) its last half
      is enough, if that is at least `2 * window` steps;
    * the loss is exactly the same on every step: it does not depend on the weights.

    And `loss-sign-flipped` for a loss that started above 0 (its first window) and whose moving
    average fell below `RUNAWAY` times that start, negated (1 at least), and to 10 times what
    it was a window or two before: an objective with no floor, a term of it with the wrong
    sign (a KL divergence without its minus). Healthy losses that go below 0 (a Gaussian
    negative log-likelihood, a policy-gradient surrogate, a negative correlation) settle within
    a few units of 0, and a critic's score that drifts does so slowly.

    A run that starts from a trained model (fine-tuning, a resumed run) may hold its loss: when
    its first window is already below `TRAINED` times the chance level, or its optimizer had
    made updates before it was watched (``Context.notes["resumed"]``: a second `fit`, a
    restored checkpoint), and the loss has not risen more than `HOLDING` since, it is not
    flagged for not decreasing; a loss that rises (training being undone: wrong labels, a rate
    too large) still is. Nor is a loss whose first window is below 0 (a policy-gradient
    surrogate, a critic's score): an objective with no floor, whose trend says nothing; nor an
    eager step's whose model acts between its updates, on one example at a time outside a tape
    (``Context.notes["acting"]``, `Tap.eager_loss_notes`: an agent learning from its own data);
    nor one read while the learning rate is being raised (``Context.notes["lr_before"]``,
    `updating.RateHistory`: a learning-rate range test).

    Args:
      window: Steps in the first window, and the moving average's span.
      min_improvement: Relative improvement that counts as decreasing.
      chance_tolerance: How far (relative) below the chance level still counts as at chance.
      chance_steps: How long the loss must have stayed at chance: the moving average is sampled
        every `window` steps, and the last ``chance_steps / window`` samples must all be there.
    """

    deferrable = True
    TRAINED = 0.75  # a first window this far below chance: trained before the run began
    HOLDING = 0.05  # ... and a recent loss at most this much above it: holding, not stuck
    FALLING = 0.05  # a loss above chance falling steadily by this share of it: still learning
    RUNAWAY = 1000.0  # a loss that started above 0 and fell below -this times its start
    RAISED = 3.0  # a learning rate this many times the one 50 steps or more before: raised

    def __init__(
        self,
        window: int = 50,
        min_improvement: float = 1e-3,
        chance_tolerance: float = 0.01,
        chance_steps: int = 300,
    ):
        self.window = window
        self.min_improvement = min_improvement
        self.chance_tolerance = chance_tolerance
        self.chance_samples = max(1, -(-chance_steps // window))  # ceil

    # A loss constant on the logged steps may move in between, and the moving average's history
    # is not logged: neither sign is judged from logs (the chance level, logged in the run's
    # configuration when known, still tells a trained model holding its loss).
    not_logged = frozenset({"loss_min", "loss_max", "loss_history"})

    def _build(self) -> None:
        # The first window's sum, the moving average, the extremes, and the moving average every
        # `window` finite steps, latest last (NaN: not yet).
        self.losses = self.add_states(
            {
                "loss_first_sum": 0.0,
                "loss_recent": 0.0,
                "loss_min": np.inf,
                "loss_max": -np.inf,
                "loss_history": [np.nan] * self.chance_samples,
            }
        )
        self.count = self.add_state("loss_count", 0, tf.int64)

    def update(self, stats: Stats) -> None:
        loss = tf.cast(stats.loss, tf.float32)
        # A loss the entry point does not know (the guard before it saw one) is not judged.
        finite = tf.math.is_finite(loss) & tf.convert_to_tensor(stats.loss_known)
        loss = tf.where(finite, loss, 0.0)
        losses = self.losses.read_value()
        latest, history = tf.split(losses, [4, self.chance_samples])
        first_sum, recent, low, high = tf.unstack(latest)
        count = self.count.read_value()
        first_sum += tf.where(count < self.window, loss, 0.0)
        decay = 2.0 / (self.window + 1)
        recent = tf.where(count == 0, loss, recent + decay * (loss - recent))
        sample = tf.equal((count + 1) % self.window, 0)
        shifted = tf.concat([history[1:], tf.reshape(recent, [1])], axis=0)
        latest = tf.stack([first_sum, recent, tf.minimum(low, loss), tf.maximum(high, loss)])
        new = tf.concat([latest, tf.where(sample, shifted, history)], axis=0)
        self.losses.assign(tf.where(finite, new, losses))
        self.count.assign_add(tf.cast(finite, tf.int64))

    def notes(self, state: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        # The moving average, once it spans a window: how far the run got (`UpdateRatio`).
        if int(state["loss_count"]) < self.window:
            return {}
        return {"loss_recent": float(state["loss_recent"])}

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        s = state
        below = _below_floor(float(s.get("loss_min", np.inf)), context)
        if below is not None:
            return [below]
        if int(s["loss_count"]) < 2 * self.window:
            return []
        first = float(s["loss_first_sum"]) / self.window
        recent = float(s["loss_recent"])
        details: dict[str, Any] = {"first_mean": first, "recent": recent, "window": self.window}
        # A window or two before, 10 times nearer 0: still falling by orders of magnitude (an
        # adversarial score may drift far below 0, but slowly).
        before = np.asarray(s.get("loss_history", [np.nan]), np.float64)[-2:][0]
        runaway = first > 0 and recent < -self.RUNAWAY * max(first, 1.0)
        if runaway and recent < 10.0 * min(before, -1.0):
            message = (
                f"The loss started at {number(first)} (the mean of its first {self.window} "
                f"steps) and is {number(recent)} now (step {context.step}): below 0 by more than "
                f"{number(self.RUNAWAY)} times its start, it has no floor, and minimizing it "
                "drives the weights to infinity (gradients explode, then NaN). A term of the "
                "loss has the wrong sign: a KL "
                "divergence written without its minus (-0.5 * sum(1 + log_var - mu^2 - "
                "exp(log_var)) is the KL), a likelihood maximized where its negative is "
                "minimized; print each term of the loss: a divergence or a cross-entropy is "
                "never below 0."
            )
            return [Finding("loss-sign-flipped", message, context.step, details=details)]
        if float(s.get("loss_min", np.nan)) == float(s.get("loss_max", np.nan)):
            message = (
                f"The loss was exactly {number(recent)} on every one of {int(s['loss_count'])} "
                "steps: it does not depend on the weights (a categorical cross-entropy on a "
                "single output unit is always 0; a loss computed from constants or from "
                "rounded predictions); check the loss against the model's output."
            )
            return [Finding("loss-not-decreasing", message, context.step, details=details)]
        # A rate raised `RAISED` times or more since a read 50 steps or more before (a
        # learning-rate range test): the loss's trend says nothing of learning.
        before, rate = context.notes.get("lr_before"), context.learning_rate
        if before and rate and rate >= self.RAISED * before:
            return []
        chance = float(context.notes.get("chance_loss") or 0.0)
        floor = (1.0 - self.chance_tolerance) * chance if chance > 0 else None
        history = np.asarray(s.get("loss_history", [np.nan]), np.float64)
        half = int(s["loss_count"]) // (2 * self.window)
        if context.final and half >= 2:  # the whole run seen: its last half, if two windows
            history = history[-min(len(history), half) :]
        # Below chance and still falling over the window: learning, on labels that may be
        # mostly noise (40% of binary labels flipped leave a best loss 3% below chance). Above
        # it, falling at every sample by `FALLING` of chance in all: coming down from a start
        # far above (a new head on frozen features, its dropout keeping the training loss up).
        fell = history[0] - recent
        # (Labels all of one value: a loss falling toward its level of ~0 learns nothing.)
        one_value = context.notes.get("labels_one_value")
        steadily = one_value is None and bool(np.all(np.diff(history) < 0))
        steadily = steadily and fell > self.FALLING * chance
        falling = steadily or (recent < chance and fell > self.chance_tolerance * chance)
        if floor is not None and recent >= floor and bool(np.all(history >= floor)) and not falling:
            steps = len(history) * self.window
            details["chance_loss"] = chance
            message = (
                f"The loss has stayed at the chance level (less than "
                f"{self.chance_tolerance:.0%} below it) or above for the last {steps} steps: "
                f"{number(recent)} now (step {context.step}) against {number(chance)} for a "
                "model that ignores its inputs (ln C for C classes, or the labels' own entropy "
                "or variance): the model predicts hardly better than guessing (unless the "
                "labels themselves are mostly noise). Check that labels "
                "stay paired with their inputs (shuffle them together), that softmax is not "
                "applied twice (a softmax output with from_logits=True), and the learning rate."
            )
            if one_value is not None:  # the chance level of one class is 0: nothing to learn
                message = (
                    f"Every label sampled over the run was {number(one_value)}: the model "
                    f"learns to predict that value whatever the input (its loss, "
                    f"{number(recent)} now, falls toward 0 with nothing learned). Check how the "
                    "labels are made (a threshold on the wrong scale, the wrong column, a "
                    "filter that kept one class; positive interactions alone, with no sampled "
                    "negatives labelled 0)."
                )
            message += suspects.sentence(context.notes)
            return [Finding("loss-not-decreasing", message, context.step, details=details)]
        # A loss that starts below 0 is an objective with no floor (a policy-gradient
        # surrogate, a critic's score), and an agent acting between its eager updates learns
        # from data its own policy makes (`Tap.eager_loss_notes`): the trend says nothing.
        acting = context.notes.get("acting")
        if acting or first < 1e-8 or first - recent > self.min_improvement * first:
            return []
        trained = (floor is not None and first < self.TRAINED * chance) or context.notes.get(
            "resumed"
        )
        if trained and recent <= first * (1.0 + self.HOLDING):
            return []  # a trained model holding its loss
        message = (
            f"The loss has not decreased: it averaged {number(first)} over the first "
            f"{self.window} steps and is {number(recent)} now (step {context.step}); the weights "
            "are not moving usefully. Other findings, if any, may name why (the learning rate, "
            "the gradients, the updates); check that the labels match the model's outputs."
        )
        message += suspects.sentence(context.notes)
        return [Finding("loss-not-decreasing", message, context.step, details=details)]

    def replay(self, logged: Logged) -> Mapping[str, Any]:
        window = self.window
        loss, present = logged.column(tags.LOSS)
        finite = present & np.isfinite(loss)
        losses = loss[finite]
        if not losses.size:
            return {
                "loss_first_sum": 0.0,
                "loss_recent": 0.0,
                "loss_count": np.int64(0),
                "loss_min": np.inf,
                "loss_max": -np.inf,
                "loss_history": np.full(self.chance_samples, np.nan, np.float32),
            }
        # The first window is the first `window` finite steps: a logged non-finite step pushes
        # its end one step later.
        finite_steps = logged.steps - np.cumsum(present & ~finite)
        early = loss[finite & (finite_steps < window)]
        first_mean = float(early.mean() if early.size else losses[0])
        # The live moving average decays by `decay` per finite step; between two samples `gap`
        # finite steps apart it decays by (1 - decay) ** gap. A logged non-finite loss is a step
        # the live check skipped.
        decay = 2.0 / (window + 1)
        recent: float | None = None
        gap = 0
        previous = None
        for step, value, ok in zip(logged.steps[present], loss[present], finite[present]):
            if previous is not None:
                gap += int(step - previous)
            previous = step
            if not ok:
                gap -= 1
            elif recent is None:
                recent, gap = float(value), 0
            else:
                recent += (1.0 - (1.0 - decay) ** gap) * (float(value) - recent)
                gap = 0
        seen = logged.last_step + 1
        count = round(seen * finite.sum() / max(int(present.sum()), 1))
        return {
            "loss_first_sum": first_mean * window,
            "loss_recent": recent if recent is not None else 0.0,
            "loss_count": np.int64(count),
            # `not_logged`: values that make no finding.
            "loss_min": -np.inf,
            "loss_max": np.inf,
            "loss_history": np.full(self.chance_samples, np.nan, np.float32),
        }


def _below_floor(lowest: float, context: Context) -> Finding | None:
    """`labels-out-of-range` for a loss below the floor its traced graph shows.

    A binary cross-entropy cannot go below 0 with labels in [0, 1] (``notes["loss_floor"]``,
    `losslevel.graph_loss_floor`): below it, its labels are not probabilities.
    """
    floor = context.notes.get("loss_floor")
    if floor is None or not lowest < floor - 1e-3:  # (float32 round-off near 0)
        return None
    message = (
        f"The loss, a binary cross-entropy, went down to {number(lowest)}, below {floor:g}, "
        "which it cannot reach with labels in [0, 1]: it reads labels as probabilities, and "
        "labels outside (classes numbered -1 and 1, or 1 and 2) make it fall without limit "
        "while the model learns nothing. Number the two classes 0 and 1 ((y + 1) / 2 for -1 "
        "and 1, y - 1 for 1 and 2); for more than two classes, one softmax unit per class with "
        "sparse categorical cross-entropy."
    )
    details = {"loss_min": lowest, "loss_floor": floor}
    return Finding("labels-out-of-range", message, context.step, details=details)
