"""Weights that moved, then stopped: `UpdateRatio`'s findings for a run that stalled partway.

Exactly (`weights-unchanged`: a schedule that reached 0, or a rate below float precision; at a
rate that moves weights, gradients that shrank below it mean the loss converged), or all but
(`update-too-small` under a learning rate brought down `DECAYED` times or more). Both read
`UpdateRatio`'s streak state; one cause is told once, the earlier one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gradguard.findings import Finding, Severity, listing, number
from gradguard.stats import Context, Layout

__all__ = ["DECAYED", "MOVING_RATE", "STALLED_SHARE", "judge"]

DECAYED = 1e-3  # a learning rate this far below its start was brought down by the run
STALLED_SHARE = 0.2  # ... and ratios below `low` for this share of the run: it stopped
# A rate this large changes a float32 weight of magnitude up to ~10 whenever the gradient (for
# Adam, its normalized step) is of order one: below precision at it, the gradients shrank.
MOVING_RATE = 1e-6


def judge(
    layout: Layout,
    s: Mapping[str, np.ndarray],
    context: Context,
    unchanged: list[int],
    low: float,
    stopped_after: int,
) -> list[Finding]:
    """The earlier of `_stopped` and `_collapsed`, if either holds (see `UpdateRatio`).

    Args:
      layout: The check's layout.
      s: `UpdateRatio`'s state.
      context: The judging context.
      unchanged: Variables already found unchanged on every measured step (not told twice).
      low: `UpdateRatio.low`.
      stopped_after: `UpdateRatio.stopped_after`.
    """
    stopped = _stopped(layout, s, context, unchanged, stopped_after)
    collapsed = _collapsed(layout, s, context, low, stopped_after)
    if stopped and collapsed:
        return [stopped if stopped.step <= collapsed.step else collapsed]
    return [f for f in (stopped, collapsed) if f is not None]


def _stopped(
    layout: Layout,
    s: Mapping[str, np.ndarray],
    context: Context,
    unchanged: list[int],
    stopped_after: int,
) -> Finding | None:
    """`weights-unchanged` for variables that changed, then stayed exactly unchanged."""
    # A learning rate that is exactly 0 now needs fewer measured steps to be sure.
    enough = 2 if context.learning_rate == 0.0 else stopped_after
    stopped = [
        i
        for i in range(layout.size)
        if i not in context.none
        and i not in unchanged
        and s["unchanged_streak"][i] >= enough
        and s["eligible"][i] > s["unchanged_streak"][i]
    ]
    decayed = _decayed(context)
    if not stopped or (not decayed and (context.learning_rate or 0.0) >= MOVING_RATE):
        # At a rate that moves weights, the gradients shrank below float precision: the loss
        # converged for these variables (a DQN's exact Q-values, a bias fitted early), which
        # is healthy. A loss left high by a term that does not reach them is `zero-gradient`.
        return None
    lr = "" if context.learning_rate is None else f" ({number(context.learning_rate)})"
    variables = tuple(layout.names[i] for i in stopped)
    since = int(min(s["unchanged_since"][i] for i in stopped))
    if decayed:
        cause = decayed
    elif context.learning_rate:  # still positive: not a schedule run out
        cause = f"the learning rate{lr} is too small for float precision at these weights"
    else:
        cause = (
            f"the learning rate{lr} reached 0 (a schedule whose decay_steps ran out: "
            "decay_steps counts optimizer steps, not epochs) or fell below float precision"
        )
    return Finding(
        "weights-unchanged",
        f"{listing(variables)} stopped changing by step {since}: the "
        f"{int(s['unchanged_streak'][stopped[0]])} measured updates since left them "
        f"unchanged despite non-zero gradients, after earlier ones moved them; {cause}.",
        since,
        variables,
        # The weights did train until then: the steps since are wasted, not broken.
        Severity.WARNING,
        details={"since_step": since, "learning_rate": context.learning_rate},
    )


def _collapsed(
    layout: Layout, s: Mapping[str, np.ndarray], context: Context, low: float, stopped_after: int
) -> Finding | None:
    """`update-too-small` for every layer below `low` since a step, the rate brought down.

    Each layer moved, then stayed below `low` for `STALLED_SHARE` of the run or more, with
    the learning rate `DECAYED` times its start or less: a schedule that decays too fast.
    (Cosine or linear decay to 0 is that low for the last few percent of steps only.)
    """
    decayed = _decayed(context)
    judged = [li for li in range(len(layout.layers)) if s["measured"][li] > 0]
    collapsed = [
        li
        for li in judged
        if s["measured"][li] > s["below_streak"][li] >= stopped_after
        and context.step - s["below_since"][li] >= (context.step + 1) * STALLED_SHARE
    ]
    if not decayed or not judged or collapsed != judged:
        return None
    since = int(min(s["below_since"][li] for li in collapsed))
    ratios = {layout.layers[li]: float(s["last"][li]) for li in collapsed}
    shown = ", ".join(f"{name} {number(r)}" for name, r in list(ratios.items())[:4])
    return Finding(
        "update-too-small",
        f"Update-to-weight ratio of {listing(list(ratios))} ({shown}) fell below "
        f"{number(low)} by step {since} and stayed there on the "
        f"{int(min(s['below_streak'][li] for li in collapsed))} measured steps since, after "
        f"earlier steps moved the weights: {decayed}, so training has all but stopped. "
        "Compute a scheduler's rate from the initial one, give the decay a floor (min_lr), "
        "or stop once the loss stops improving (EarlyStopping).",
        since,
        layout.variables_of(collapsed),
        Severity.WARNING,  # the weights trained until then: the steps since are wasted
        details={"since_step": since, "learning_rate": context.learning_rate},
    )


def _decayed(context: Context) -> str | None:
    """Why the learning rate is now `DECAYED` times its start or less (None if it is not)."""
    lr = context.learning_rate
    schedule = context.notes.get("schedule")  # (its name, its rate at step 0)
    start = schedule[1] if schedule else context.notes.get("lr_start")
    if lr is None or not start or lr >= DECAYED * start:
        return None
    if schedule:
        how = f"by its {schedule[0]} schedule (decay_steps counts optimizer steps, not epochs)"
    else:
        how = (
            "during training (a LearningRateScheduler function that multiplies the rate it "
            "is given compounds every epoch; ReduceLROnPlateau without a min_lr goes on "
            "dividing it)"
        )
    return f"the learning rate ({number(lr)}) was brought down from {number(start)} {how}"
