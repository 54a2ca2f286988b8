"""Every check: its fold against a NumPy reference in every mode, its planted bug found and its
healthy twin silent through every entry point (`harness.py`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import MODES, Case, mlp, mode_kwargs, regression_data, run_case
from harness import DEFERRED_MODES, Scripted, fold, judge, numpy_cut_loss, stats

import gradguard
from gradguard import checks, padding, suspects, updating
from gradguard import inspect as inspect_lib
from gradguard.activations import Site
from gradguard.checks.base import StateReader
from gradguard.stats import Context, Layout

# -- each check's fold against a NumPy reference, eager, graph and XLA ------------------------

LAYOUT = Layout.from_names(["dense/kernel", "dense/bias", "out/kernel", "out/bias"])
# The same variables with the two kernels too large to measure whole (`deltas.stride`).
SAMPLED = dataclasses.replace(LAYOUT, sampled=(True, False, True, False))
STEPS = 12


def _field(steps: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    return np.array([s[name] for s in steps])


def _per_layer(per_variable: np.ndarray, layout: Layout) -> np.ndarray:
    """[..., variables] summed into [..., layers]."""
    out = np.zeros(per_variable.shape[:-1] + (len(layout.layers),))
    for i, layer in enumerate(layout.layer_index):
        out[..., layer] += per_variable[..., i]
    return out


def _first(bad: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Per column, the first step where `bad` holds (-1 if never)."""
    bad = bad.reshape(len(steps), -1)
    first = [int(steps[np.flatnonzero(col)[0]]) if col.any() else -1 for col in bad.T]
    return np.array(first)


def non_finite_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict[str, Any]:
    step, overflow = _field(steps, "step"), _field(steps, "overflow")
    grad, weight = _field(steps, "grad_sq"), _field(steps, "weight_sq")
    measured, skipped = _field(steps, "measured"), _field(steps, "vetoed")
    finite = np.isfinite(_field(steps, "loss")) & np.isfinite(grad).all(axis=1)
    vetoed = skipped & finite
    bad = _field(steps, "bad_input")
    return {
        "loss_first": _first(~np.isfinite(_field(steps, "loss")), step)[0],
        "grad_first": _first(~overflow[:, None] & ~np.isfinite(grad), step),
        "weight_first": _first(measured[:, None] & ~np.isfinite(weight), step),
        "skipped": np.sum(skipped),  # by the gate, not a call a Keras optimizer accumulates
        "overflows": np.sum(overflow),
        "loss_scale_min": min(np.inf, _field(steps, "loss_scale").min()),
        "vetoed_finite_first": _first(vetoed, step)[0],
        "vetoed_finite": np.sum(vetoed),
        "data_first": _first(bad != 0, step)[0],
        "data_faults": bad[bad != 0][0] if (bad != 0).any() else 0,
    }


def zero_gradient_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict[str, Any]:
    grad = _field(steps, "grad_sq")
    sq = np.where(np.isfinite(grad), grad, 1.0)
    stalled, since = 0, -1
    for values, row in zip(steps, sq):
        loss = values["loss"]
        if (row == 0).all() and np.isfinite(loss) and loss != 0 and values["loss_known"]:
            since = values["step"] if stalled == 0 else since
            stalled += 1
        else:
            stalled = 0
    return {
        "grad_sq_max": np.maximum(0.0, sq.max(axis=0)),
        "stalled_steps": stalled,
        "stalled_since": since,
    }


def update_ratio_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict:
    high = 0.5
    measured = _field(steps, "measured") & _field(steps, "applied")
    grad, update, weight, sample = (
        _field(steps, k) for k in ("grad_sq", "update_sq", "weight_sq", "grad_sample_sq")
    )
    w, u = np.sqrt(_per_layer(weight, layout)), np.sqrt(_per_layer(update, layout))
    valid = measured[:, None] & (w > 0) & (_per_layer(grad, layout) > 0)
    # A sampled variable whose sample did not change and had no gradient is unknown, and so is
    # its layer.
    known = ~np.array(layout.sampled or [False] * layout.size) | (update > 0) | (sample > 0)
    valid &= _per_layer((~known).astype(float), layout) == 0
    ratio = u / np.where(w > 0, w, 1.0)
    last = np.zeros(len(layout.layers))
    for layer in range(len(last)):
        hits = np.flatnonzero(valid[:, layer])
        if hits.size:
            last[layer] = ratio[hits[-1], layer]
    eligible = measured[:, None] & (grad > 0) & known
    still = eligible & (update == 0)
    norm = _field(steps, "grad_norm")
    below = valid & (ratio < 1e-7)
    streaks = {}
    for name, now, judged in (("unchanged", still, eligible), ("below", below, valid)):
        streak, since = np.zeros(now.shape[1]), np.full(now.shape[1], -1)
        for t, values in enumerate(steps):
            since = np.where(now[t] & (streak == 0), values["step"], since)
            streak = np.where(now[t], streak + 1, np.where(judged[t], 0, streak))
        streaks[f"{name}_streak"], streaks[f"{name}_since"] = streak, since
    return {
        **streaks,
        "measured": valid.sum(0),
        "above": (valid & (ratio > high) & (w >= 1e-3)).sum(0),  # weights not near 0
        "last": last,
        "largest": np.where(valid, ratio, 0.0).max(0, initial=0.0),
        "below": below.sum(0),
        "below_clip": (valid & (ratio < 1e-5)).sum(0),
        "below_floor": (valid & (ratio < 1e-4)).sum(0),
        "eligible": eligible.sum(0),
        "unchanged": still.sum(0),
        # The whole gradient's norm, smallest over the measured steps where it is finite.
        "smallest_grad": np.min(norm[measured & np.isfinite(norm)], initial=np.inf),
    }


def identical_units_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict:
    del layout
    moved = (_field(steps, "measured") & _field(steps, "applied"))[:, None] & (
        _field(steps, "update_sq") > 0
    )
    first = moved & (np.cumsum(moved, axis=0) <= 2)  # each kernel's first 2 measured updates
    identical = first & (_field(steps, "unit_spread") <= 1e-2)
    return {"moved": moved.sum(0), "identical": identical.sum(0)}


def _kernels_spread(spread: float) -> np.ndarray:
    """`Stats.unit_spread` of LAYOUT: the two kernels' units `spread` apart; biases not compared."""
    return np.array([spread, 1.0, spread, 1.0], np.float32)


def exploding_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict[str, Any]:
    norm, step = _field(steps, "grad_norm"), _field(steps, "step")
    finite = np.isfinite(norm)
    first = norm[finite][0] if finite.any() else -1.0
    largest, at = 0.0, -1
    for value, s, ok in zip(norm, step, finite):
        if ok and value > largest:
            largest, at = value, s
    layer = np.sqrt(_per_layer(_field(steps, "grad_sq"), layout))
    loss, known = _field(steps, "loss"), _field(steps, "loss_known")
    at_first = np.flatnonzero(finite)[:1]
    losses = loss[known & np.isfinite(loss)]
    return {
        "norm_first": first,
        "norm_max": largest,
        "loss_first": loss[at_first[0]] if at_first.size and known[at_first[0]] else np.nan,
        "norm_last": norm[finite][-1] if finite.any() else 0.0,
        "loss_last": losses[-1] if losses.size else np.nan,
        "norm_max_step": at,
        "layer_norm_max": np.where(np.isfinite(layer), layer, 0.0).max(axis=0),
    }


def vanishing_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict[str, Any]:
    finite = np.isfinite(_field(steps, "grad_norm"))
    layer = np.sqrt(_per_layer(_field(steps, "grad_sq"), layout))
    return {
        "layer_norm_sum": np.where(finite[:, None], layer, 0.0).sum(axis=0),
        "layer_norm_count": finite.sum(),
    }


def loss_reference(
    steps: Sequence[Mapping[str, Any]], window: int, samples: int | None = None
) -> dict[str, Any]:
    samples = samples or -(-300 // window)  # the default chance_steps, in samples
    first_sum, recent, count, low, high = 0.0, 0.0, 0, np.inf, -np.inf
    history = [NAN] * samples  # the moving average every `window` finite steps
    decay = 2.0 / (window + 1)
    for loss in _field(steps, "loss"):
        if not np.isfinite(loss):
            continue
        low, high = min(low, loss), max(high, loss)
        if count < window:
            first_sum += loss
        recent = loss if count == 0 else recent + decay * (loss - recent)
        count += 1
        if count % window == 0:
            history = [*history[1:], recent]
    return {
        "loss_first_sum": first_sum,
        "loss_recent": recent,
        "loss_count": count,
        "loss_min": low,
        "loss_max": high,
        "loss_history": history,
    }


def _steps(**per_step: Any) -> list[dict[str, Any]]:
    """STEPS healthy steps; each keyword maps a step to the fields it changes there."""
    result = []
    for step in range(STEPS):
        changes = {k: f(step) for k, f in per_step.items()}
        result.append(stats(LAYOUT, step, **{k: v for k, v in changes.items() if v is not None}))
    return result


def _ratios_fall(name: str, step: int, lr_start: float, codes: Any = ()) -> Scripted:
    """Update ratios of 1e-3 falling to 1e-8 from `step` on, the rate now 1e-8 (from `lr_start`)."""
    return Scripted(
        name,
        checks.UpdateRatio,
        LAYOUT,
        _steps(
            update_sq=lambda s: np.full(4, 1e-16 if s >= step else 1e-6, np.float32),
            measured=bool,
        ),
        update_ratio_reference,
        frozenset(codes),
        notes={"lr_start": lr_start},
        learning_rate=1e-8,
    )


SITES = (Site("hidden", "relu", 4), Site("gate", "sigmoid", 3))
HIDDEN = Layout.from_names(["hidden/kernel", "hidden/bias", "gate/kernel", "gate/bias"])


def activations_reference(steps: Sequence[Mapping[str, Any]], layout: Layout) -> dict[str, Any]:
    window = 10
    decay = 2.0 / (window + 1)
    saturation = np.zeros(len(SITES))
    last = [np.full(site.units, -1) for site in SITES]
    for k, values in enumerate(steps):
        fractions = np.zeros(len(SITES))
        for i, (site, a) in enumerate(zip(SITES, values["activations"])):
            if site.kind == "relu":
                last[i] = np.where(a.max(axis=0) > 0, values["step"], last[i])
            else:
                fractions[i] = np.mean(np.abs(a - 0.5) > 0.5 - 0.01)
        saturation = fractions if k == 0 else saturation + decay * (fractions - saturation)
    return {
        "act_steps": len(steps),
        "act_latest_step": np.full(len(SITES), steps[-1]["step"]),
        "act_saturation": saturation,
        **{f"act_last_active_{i}": last[i] for i in range(len(SITES))},
    }


def _activations(dead_from: int, dead_units: int, saturated: bool) -> Any:
    """Per step: ReLU outputs whose last `dead_units` units are 0 from `dead_from` on."""
    rng = np.random.default_rng(0)

    def at(step: int) -> list[np.ndarray]:
        relu = np.abs(rng.normal(size=(5, 4))).astype("float32")
        if step >= dead_from:
            relu[:, 4 - dead_units :] = 0.0
        gate = np.full((5, 3), 0.999 if saturated else 0.5, "float32")
        return [relu, gate]

    return at


NAN = float("nan")
SCRIPTED = [
    Scripted("non-finite-healthy", checks.NonFinite, LAYOUT, _steps(), non_finite_reference),
    Scripted(
        "non-finite-loss-at-step-3",
        checks.NonFinite,
        LAYOUT,
        _steps(loss=lambda s: NAN if s == 3 else None, applied=lambda s: False if s == 3 else None),
        non_finite_reference,
        frozenset({"non-finite"}),
    ),
    Scripted(
        "non-finite-labels-at-step-4",
        checks.NonFinite,
        LAYOUT,
        _steps(
            loss=lambda s: NAN if s == 4 else None,
            bad_input=lambda s: 2 if s == 4 else None,  # BAD_Y
            applied=lambda s: False if s == 4 else None,
        ),
        non_finite_reference,
        frozenset({"non-finite"}),
    ),
    Scripted(
        "non-finite-gradient-of-one-variable",
        checks.NonFinite,
        LAYOUT,
        _steps(grad_sq=lambda s: np.array([0.01, np.inf, 0.01, 0.01]) if s >= 7 else None),
        non_finite_reference,
        frozenset({"non-finite"}),
    ),
    Scripted(
        "loss-scale-overflows-are-not-non-finite",
        checks.NonFinite,
        LAYOUT,
        _steps(
            overflow=lambda s: s < 3 or None,
            grad_sq=lambda s: np.full(4, np.inf) if s < 3 else None,
            loss_scale=lambda s: 2.0 ** (15 - s),
        ),
        non_finite_reference,
    ),
    Scripted(
        "non-finite-transform-vetoes-finite-gradients",
        checks.NonFinite,
        LAYOUT,
        _steps(vetoed=lambda s: s >= 4 or None, applied=lambda s: False if s >= 4 else None),
        non_finite_reference,
        frozenset({"non-finite"}),
    ),
    Scripted(
        "zero-gradient-healthy", checks.ZeroGradient, LAYOUT, _steps(), zero_gradient_reference
    ),
    Scripted(
        "zero-gradient-of-one-layer",
        checks.ZeroGradient,
        LAYOUT,
        _steps(grad_sq=lambda s: np.array([0.0, 0.0, 0.01, 0.02])),
        zero_gradient_reference,
        frozenset({"zero-gradient"}),
    ),
    Scripted(
        "zero-gradient-every-gradient-stalls-at-step-2",
        lambda: checks.ZeroGradient(stalled_after=8),
        LAYOUT,
        _steps(grad_sq=lambda s: np.zeros(4, np.float32) if s >= 2 else None),
        zero_gradient_reference,
        frozenset({"zero-gradient"}),
    ),
    Scripted(
        "zero-gradient-of-a-bias-whose-kernel-learns",  # a Wasserstein critic's output bias
        checks.ZeroGradient,
        LAYOUT,
        _steps(grad_sq=lambda s: np.array([0.01, 0.01, 0.01, 0.0])),
        zero_gradient_reference,
    ),
    # Units initialized to one value stay copies (found), also when rounding parts them later; a
    # zero-initialized kernel whose first update parts its units, and units a few percent of the
    # kernel's scale apart from the start, do not.
    Scripted(
        "identical-units-constant-init",
        checks.IdenticalUnits,
        LAYOUT,
        _steps(unit_spread=lambda s: _kernels_spread(0.0)),
        identical_units_reference,
        frozenset({"units-identical"}),
    ),
    Scripted(
        "identical-units-parted-at-the-first-update",
        checks.IdenticalUnits,
        LAYOUT,
        _steps(unit_spread=lambda s: _kernels_spread(0.0 if s == 0 else 0.3)),
        identical_units_reference,
    ),
    Scripted(
        "identical-units-parted-later-by-rounding",  # (measured at steps 0, 5 and 10)
        checks.IdenticalUnits,
        LAYOUT,
        _steps(unit_spread=lambda s: _kernels_spread(1e-8 * 10**s if s < 10 else 0.5)),
        identical_units_reference,
        frozenset({"units-identical"}),
    ),
    Scripted(
        "identical-units-a-few-percent-apart",
        checks.IdenticalUnits,
        LAYOUT,
        _steps(unit_spread=lambda s: _kernels_spread(0.05)),
        identical_units_reference,
    ),
    Scripted(
        "identical-units-while-not-updated",  # a frozen kernel at its constant init: not trained
        checks.IdenticalUnits,
        LAYOUT,
        _steps(
            unit_spread=lambda s: _kernels_spread(0.0),
            update_sq=lambda s: np.array([0.0, 1e-6, 0.0, 1e-6], np.float32),
        ),
        identical_units_reference,
    ),
    Scripted("update-ratio-healthy", checks.UpdateRatio, LAYOUT, _steps(), update_ratio_reference),
    Scripted(
        "update-ratio-learning-rate-zero",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.zeros(4, np.float32)),
        update_ratio_reference,
        frozenset({"weights-unchanged", "update-too-small"}),
    ),
    # Ratios of 1e-6 with a gradient norm of 0.2: SGD's global_clipnorm binds 200x, or 20x.
    Scripted(
        "update-ratio-sgd-clip-binds-200x",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.full(4, 1e-12, np.float32)),
        update_ratio_reference,
        frozenset({"update-too-small"}),
        notes={"sgd_clip": (1e-3, 0.0)},
    ),
    Scripted(
        "update-ratio-sgd-clip-binds-20x",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.full(4, 1e-12, np.float32)),
        update_ratio_reference,
        notes={"sgd_clip": (1e-2, 0.0)},
    ),
    # Ratios of 3e-5, clip binding 200x: momentum 0.9 adds up to 10 clipped steps into one, so
    # the bar is 1e-4 (found); without momentum it is 1e-5 (silent).
    Scripted(
        "update-ratio-sgd-momentum-clip-binds-200x",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.full(4, 1e-9, np.float32)),
        update_ratio_reference,
        frozenset({"update-too-small"}),
        notes={"sgd_clip": (1e-3, 0.9)},
    ),
    Scripted(
        "update-ratio-sgd-clip-binds-200x-ratios-3e-5",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.full(4, 1e-9, np.float32)),
        update_ratio_reference,
        notes={"sgd_clip": (1e-3, 0.0)},
    ),
    # Ratios of 3e-5 under SGD with momentum 0.9, every sample weight 6e-4 or less (normalized
    # to sum to 1): each step shrinks 1600x (found); the same ratios with Adam, which undoes
    # the scale, or with weights reaching 1 (a mask, class weights), silent.
    *(
        Scripted(
            f"update-ratio-sample-weights-{name}",
            checks.UpdateRatio,
            LAYOUT,
            _steps(update_sq=lambda s: np.full(4, 1e-9, np.float32)),
            update_ratio_reference,
            codes,
            notes={"sgd_momentum": momentum, "sample_weight_largest": largest},
        )
        for name, momentum, largest, codes in (
            ("sum-to-one-sgd", 0.9, 6e-4, frozenset({"update-too-small"})),
            ("sum-to-one-adam", None, 6e-4, frozenset()),
            ("mask-sgd", 0.9, 1.0, frozenset()),
        )
    ),
    # Healthy ratios, Adam's epsilon of 1 against gradients of scale 0.03 (found), of 0.5
    # (the large gradients its docstring's advice is for), or in a run that learned: silent.
    *(
        Scripted(
            f"update-ratio-adam-epsilon-{name}",
            checks.UpdateRatio,
            LAYOUT,
            _steps(),
            update_ratio_reference,
            codes,
            notes={"adam_epsilon": scale, **learned},
        )
        for name, scale, learned, codes in (
            ("33x-the-gradients", (1.0, 0.03), {}, frozenset({"epsilon-dominates"})),
            ("2x-the-gradients", (1.0, 0.5), {}, frozenset()),
            ("33x-learned", (1.0, 0.03), {"chance_loss": 1.6, "loss_recent": 0.1}, frozenset()),
        )
    ),
    Scripted(
        "update-ratio-schedule-reaches-zero-at-step-6",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.zeros(4, np.float32) if s >= 6 else None, measured=bool),
        update_ratio_reference,
        frozenset({"weights-unchanged"}),
    ),
    # Ratios of 1e-3, then 1e-8 (below 1e-7) from step 4 of 12, every step measured: with the
    # learning rate brought down 1e6x, a schedule that decays too fast (found); below 1e-7 only
    # for the last 3 steps (a decay to 0 ending), or without the learning rate brought down
    # (vanishing gradients late in a run: not this cause), silent.
    _ratios_fall("update-ratio-learning-rate-decays-1e6x-by-step-4", 4, 1e-2, {"update-too-small"}),
    _ratios_fall("update-ratio-learning-rate-decays-1e6x-for-the-last-3-steps", 9, 1e-2),
    _ratios_fall("update-ratio-tiny-by-step-4-learning-rate-as-at-the-start", 4, 5e-6),
    Scripted(
        # Exactly zero on the whole: the biases show it; the kernels' samples cannot.
        "update-ratio-learning-rate-zero-sampled-kernels",
        checks.UpdateRatio,
        SAMPLED,
        _steps(update_sq=lambda s: np.zeros(4, np.float32)),
        update_ratio_reference,
        frozenset({"weights-unchanged"}),
    ),
    Scripted(
        # Exactly zero everywhere, and the kernels' samples had gradients: they did not move.
        "update-ratio-learning-rate-zero-sampled-kernels-whose-samples-had-gradients",
        checks.UpdateRatio,
        SAMPLED,
        _steps(
            update_sq=lambda s: np.zeros(4, np.float32),
            grad_sample_sq=lambda s: np.array([1e-4, 0.0, 1e-4, 0.0], np.float32),
        ),
        update_ratio_reference,
        frozenset({"weights-unchanged", "update-too-small"}),
    ),
    Scripted(
        # Sparse inputs: the kernels changed only in rows their samples do not visit.
        "update-ratio-sampled-kernels-unchanged-on-their-samples",
        checks.UpdateRatio,
        SAMPLED,
        _steps(update_sq=lambda s: np.array([0.0, 1e-6, 0.0, 1e-6], np.float32)),
        update_ratio_reference,
    ),
    Scripted(
        "update-ratio-far-too-large",
        checks.UpdateRatio,
        LAYOUT,
        _steps(update_sq=lambda s: np.ones(4, np.float32)),
        update_ratio_reference,
        frozenset({"update-too-large"}),
    ),
    *(
        Scripted(
            # Rewritten on most steps: a loss still near chance is a run the steps keep from
            # learning (Adam at 1); one far below it learned (SGD's momentum at 0.1 rewrote a
            # fresh head on its first steps), and is not flagged.
            f"update-ratio-large-with-the-loss-{where}-chance",
            checks.UpdateRatio,
            LAYOUT,
            _steps(update_sq=lambda s: np.ones(4, np.float32)),
            update_ratio_reference,
            codes,
            notes={"chance_loss": 1.6, "loss_recent": recent},
        )
        for where, recent, codes in (
            ("near", 1.58, frozenset({"update-too-large"})),
            ("far-below", 0.02, frozenset()),
        )
    ),
    Scripted(
        # Two large first updates, then the loss exactly 0 (a hinge on separable data): no
        # gradient, so no ratio measured after them; the first two steps are not most steps.
        "update-ratio-large-at-first-then-converged",
        checks.UpdateRatio,
        LAYOUT,
        _steps(
            update_sq=lambda s: np.full(4, 1.0 if s < 2 else 0.0, np.float32),
            grad_sq=lambda s: None if s < 2 else np.zeros(4, np.float32),
            measured=lambda s: s < 2 or s % 5 == 0,  # steps 0, 1, then every 5
        ),
        update_ratio_reference,
    ),
    Scripted(
        # A gain initialized near 0 (LayerScale at 1e-6): rewritten while its weights grow
        # from about 0, for most steps here; then at its scale, with healthy ratios.
        "update-ratio-large-while-the-weights-are-near-zero",
        checks.UpdateRatio,
        LAYOUT,
        _steps(
            weight_sq=lambda s: np.full(4, 1e-14 * 100**s, np.float32) if s < 8 else None,
            update_sq=lambda s: np.full(4, 1e-14 * 100 ** (s + 1), np.float32) if s < 8 else None,
        ),
        update_ratio_reference,
    ),
    Scripted("exploding-healthy", checks.ExplodingGradient, LAYOUT, _steps(), exploding_reference),
    Scripted(
        "exploding-grows-10000x",
        checks.ExplodingGradient,
        LAYOUT,
        _steps(
            grad_norm=lambda s: 0.01 * 10.0**s,
            grad_sq=lambda s: np.full(4, (0.01 * 10.0**s) ** 2 / 4),
        ),
        exploding_reference,
        frozenset({"exploding-gradient"}),
    ),
    Scripted(
        "exploding-huge-from-the-first-step",  # unscaled targets: a norm of 1e7 before any update
        checks.ExplodingGradient,
        LAYOUT,
        _steps(
            grad_norm=lambda s: 1e7 * (1 + s), grad_sq=lambda s: np.full(4, 1e14 * (1 + s) ** 2)
        ),
        exploding_reference,
        frozenset({"exploding-gradient"}),
    ),
    Scripted(
        # Unscaled regression targets under Adam: a norm of 9e5 before any update, 4e7 later
        # (the limit, not growth) while the loss, 4.6e10, barely moves.
        "exploding-from-9e5-before-any-update",
        checks.ExplodingGradient,
        LAYOUT,
        _steps(
            grad_norm=lambda s: 9e5 * (1 + 5 * s),
            grad_sq=lambda s: np.full(4, (9e5 * (1 + 5 * s)) ** 2 / 4),
            loss=lambda s: 4.6e10 - 1e6 * s,
        ),
        exploding_reference,
        frozenset({"exploding-gradient"}),
    ),
    Scripted(
        # An LSTM crossing a cliff as it starts to learn: 1000x its first norm at one step,
        # back to a tenth of that while its loss fell by more than half (hunt34 f04).
        "exploding-spike-the-run-recovered-from",
        checks.ExplodingGradient,
        LAYOUT,
        _steps(
            grad_norm=lambda s: 200.0 if s == 5 else 0.1 * (1 + s),
            loss=lambda s: 0.7 / (1 + s),
        ),
        exploding_reference,
    ),
    Scripted(
        "exploding-spike-the-loss-did-not-fall-from",  # the same norms, the loss up: diverging
        checks.ExplodingGradient,
        LAYOUT,
        _steps(
            grad_norm=lambda s: 200.0 if s == 5 else 0.1 * (1 + s),
            loss=lambda s: 0.7 * (1 + s),
        ),
        exploding_reference,
        frozenset({"exploding-gradient"}),
    ),
    Scripted("vanishing-healthy", checks.VanishingGradient, LAYOUT, _steps(), vanishing_reference),
    Scripted(
        "vanishing-first-layer-1e-6",
        checks.VanishingGradient,
        Layout.from_names([f"d{i}/kernel" for i in range(4)]),
        _steps(grad_sq=lambda s: np.array([1e-12, 1e-4, 1e-2, 1.0])),
        vanishing_reference,
        frozenset({"vanishing-gradient"}),
    ),
    Scripted(  # dead first layers (zero-gradient's finding): nothing vanished
        "vanishing-first-layers-exactly-zero",
        checks.VanishingGradient,
        Layout.from_names([f"d{i}/kernel" for i in range(4)]),
        _steps(grad_sq=lambda s: np.array([0.0, 0.0, 1e-2, 1.0])),
        vanishing_reference,
    ),
    Scripted(
        "loss-decreasing",
        lambda: checks.LossNotDecreasing(window=4),
        LAYOUT,
        _steps(loss=lambda s: 1.0 / (1 + s)),
        lambda steps, layout: loss_reference(steps, window=4),
    ),
    *(
        Scripted(
            # A loss that starts above 0 and runs away below it (a KL without its minus) has no
            # floor; healthy losses that go below 0 (a Gaussian NLL) settle near it, and a
            # surrogate that starts below 0 is not judged.
            f"loss-{name}",
            lambda: checks.LossNotDecreasing(window=4),
            LAYOUT,
            _steps(loss=loss),
            lambda steps, layout: loss_reference(steps, window=4),
            codes,
        )
        for name, loss, codes in (
            (
                "runs-away-below-zero",
                lambda s: 8.0 if s < 4 else 8.0 - 10.0 ** (s - 2),
                frozenset({"loss-sign-flipped"}),
            ),
            ("settles-below-zero", lambda s: 0.4 - 0.7 * (1 - 0.5**s), frozenset()),
            # A critic's score drifting far below 0, but slowly (no order of magnitude a window).
            ("drifts-far-below-zero", lambda s: 0.5 if s < 4 else -1000.0 * (s - 3), frozenset()),
            ("starts-below-zero-and-falls", lambda s: -0.5 * 10.0**s, frozenset()),
        )
    ),
    Scripted(
        "loss-flat",
        lambda: checks.LossNotDecreasing(window=4),
        LAYOUT,
        _steps(loss=lambda s: NAN if s == 5 else 0.7),
        lambda steps, layout: loss_reference(steps, window=4),
        frozenset({"loss-not-decreasing"}),
    ),
]


def _chance_case(name: str, loss: Any, codes: frozenset[str] = frozenset()) -> Scripted:
    """A 10-class cross-entropy (chance level ln 10), judged on the last 8 steps."""
    return Scripted(
        name,
        lambda: checks.LossNotDecreasing(window=4, chance_steps=8),
        LAYOUT,
        _steps(loss=loss),
        lambda steps, layout: loss_reference(steps, window=4, samples=2),
        codes,
        notes={"chance_loss": float(np.log(10))},
    )


SCRIPTED += [
    # Falls from a bad start, then sits at ln 10: decreasing, yet no better than guessing.
    _chance_case(
        "loss-falls-to-chance-and-stays",
        lambda s: 2.6 if s == 0 else 2.3 + 0.001 * (s % 2),
        frozenset({"loss-not-decreasing"}),
    ),
    # Stays a little above chance while creeping down: a rate far too small, from scratch.
    _chance_case(
        "loss-creeps-down-above-chance",
        lambda s: 2.36 - 0.001 * s,
        frozenset({"loss-not-decreasing"}),
    ),
    # Labels mostly noise (40% of them flipped): below chance and still falling, or settled
    # 1.5% below it: learning what there is to learn, silent.
    _chance_case("noisy-labels-still-falling-below-chance", lambda s: 2.36 - 0.008 * s),
    _chance_case(
        "noisy-labels-settled-just-below-chance",
        lambda s: 2.6 if s == 0 else 2.268 + 0.001 * (s % 2),
    ),
    # Falls steadily from far above chance (a new head on frozen features): silent until it
    # stops falling.
    _chance_case("loss-falls-steeply-from-far-above-chance", lambda s: 3.5 - 0.1 * s),
    # Warms up at chance, then learns: silent.
    _chance_case("loss-leaves-chance", lambda s: 2.3 if s < 6 else 1.0),
    # Below chance throughout (a model that learned): silent.
    _chance_case("loss-below-chance", lambda s: 1.5 - 0.01 * s),
    # A trained model fine-tuned on its plateau, far below chance: holding, silent.
    _chance_case("trained-model-holds-its-loss", lambda s: 1.0 + 0.004 * (s % 3)),
    # ... and one whose loss rises (training undone): flagged, though still below chance.
    _chance_case(
        "trained-model-unlearns", lambda s: 1.0 + 0.05 * s, frozenset({"loss-not-decreasing"})
    ),
]


def _resumed_case(name: str, loss: Any, codes: frozenset[str] = frozenset()) -> Scripted:
    """A run whose optimizer had made updates before it was watched; no chance level known."""
    return Scripted(
        name,
        lambda: checks.LossNotDecreasing(window=4),
        LAYOUT,
        _steps(loss=loss),
        lambda steps, layout: loss_reference(steps, window=4),
        codes,
        notes={"resumed": True},
    )


SCRIPTED += [
    # A regression resumed at its noise floor (a second fit): holding, silent.
    _resumed_case("resumed-run-holds-its-loss", lambda s: 0.265 + 0.001 * (s % 3)),
    # ... and one whose loss rises (training undone): flagged.
    _resumed_case(
        "resumed-run-unlearns", lambda s: 0.265 * (1 + 0.05 * s), frozenset({"loss-not-decreasing"})
    ),
    # A policy-gradient surrogate: below 0, rising while the reward rises: silent.
    Scripted(
        "loss-below-zero-rises",
        lambda: checks.LossNotDecreasing(window=4),
        LAYOUT,
        _steps(loss=lambda s: -0.36 + 0.02 * s),
        lambda steps, layout: loss_reference(steps, window=4),
    ),
]


SCRIPTED += [
    Scripted(
        "activations-healthy",
        checks.ActivationHealth,
        HIDDEN,
        _steps(activations=_activations(dead_from=99, dead_units=0, saturated=False)),
        activations_reference,
        sites=SITES,
    ),
    Scripted(
        "activations-three-of-four-units-die-at-step-1",
        lambda: checks.ActivationHealth(dead_fraction=0.6),
        HIDDEN,
        _steps(activations=_activations(dead_from=1, dead_units=3, saturated=True)),
        activations_reference,
        frozenset({"dead-units"}),
        sites=SITES,
    ),
]


@pytest.mark.parametrize(
    "scripted, mode",
    [
        pytest.param(s, mode, id=f"{s.name}-{mode}")
        for s in SCRIPTED
        for mode in MODES + (DEFERRED_MODES if s.check().deferrable else ())
    ],
)
def test_fold_matches_numpy_and_judges(scripted, mode):
    check, state = fold(scripted, mode)
    expected = scripted.reference(scripted.steps, scripted.layout)
    assert set(state) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(state[key], np.float64),
            np.asarray(value, np.float64),
            rtol=1e-5,
            err_msg=key,
        )
    codes = judge(check, state, len(scripted.steps), scripted.notes, scripted.learning_rate)
    assert codes == set(scripted.codes)


@pytest.mark.parametrize(
    "name,resumed,cause",
    [
        ("exploding-grows-10000x", False, "diverging"),
        ("exploding-huge-from-the-first-step", False, "before any update"),
        (
            "exploding-from-9e5-before-any-update",
            False,
            "a loss of 4.6e+10, before any update",
        ),
        # A resumed run's first step seen came after updates: it may be diverging.
        ("exploding-huge-from-the-first-step", True, "diverging"),
    ],
)
def test_gradients_huge_before_any_update_are_blamed_on_the_datas_scale(name, resumed, cause):
    (scripted,) = [s for s in SCRIPTED if s.name == name]
    check, state = fold(scripted, "graph")
    steps = len(scripted.steps)
    context = Context(steps=steps, step=steps - 1, notes={"resumed": resumed})
    (finding,) = check.judge(state, context)
    assert cause in finding.message, finding.message


def test_settings_that_keep_a_model_from_learning_are_named_when_the_loss_does_not_fall():
    layers = keras.layers
    suspect = keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(16, kernel_initializer="zeros", name="zeros"),
            layers.Dropout(0.99, name="drop"),
            layers.Dense(16, kernel_regularizer=keras.regularizers.l2(1.0), name="l2"),
            layers.Dense(1),
        ]
    )
    found = suspects.of_model(suspect)
    assert [phrase.split(":")[0] for phrase in found] == ["'drop'", "'l2'", "'zeros'"]
    # Usual settings: moderate dropout, a small penalty, a zero-initialized last layer.
    healthy = keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(16, kernel_regularizer=keras.regularizers.l2(1e-4)),
            layers.Dropout(0.5),
            layers.Dense(1, kernel_initializer="zeros"),
        ]
    )
    assert suspects.of_model(healthy) == []
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=1.0)
    assert [p.split(":")[0] for p in suspects.of_model(healthy, smoothed)] == ["the loss"]
    usual = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    assert suspects.of_model(healthy, usual) == suspects.of_model(healthy, "mse") == []
    flat = keras.optimizers.Adam(epsilon=1.0)  # steps about lr * gradient
    assert [p.split(":")[0] for p in suspects.of_model(healthy, None, flat)] == ["the optimizer"]
    assert suspects.of_model(healthy, None, keras.optimizers.Adam()) == []
    # Weights shrunk 5% a step (learning rate * weight_decay); AdamW's default and 0.1 are usual.
    shrinking = keras.optimizers.AdamW(1e-3, weight_decay=50.0)
    (decay,) = suspects.of_model(healthy, None, shrinking)
    assert decay.startswith("the optimizer: weight_decay=50 at learning rate 0.001 shrinks")
    for usual in (keras.optimizers.AdamW(1e-3), keras.optimizers.AdamW(1e-3, weight_decay=0.1)):
        assert suspects.of_model(healthy, None, usual) == []
    (scripted,) = [s for s in SCRIPTED if s.name == "loss-falls-to-chance-and-stays"]
    check, state = fold(scripted, "graph")
    steps = len(scripted.steps)
    notes = {**scripted.notes, "suspects": found}
    context = Context(steps=steps, step=steps - 1, notes=notes)
    (finding,) = check.judge(state, context)
    assert "'drop': drop 99% of their inputs" in finding.message, finding.message


def test_a_recurrent_layer_reading_its_whole_input_unmasked_is_told_from_the_model():
    layers = keras.layers

    def sequential(*middle: Any, masked: bool = False) -> keras.Model:
        embedding = layers.Embedding(20, 4, mask_zero=masked)
        return keras.Sequential([keras.Input((12,)), embedding, *middle, layers.Dense(1)])

    assert padding.unmasked_rnn(sequential(layers.LSTM(4, name="lstm"))) == "lstm"
    assert padding.unmasked_rnn(sequential(layers.Bidirectional(layers.GRU(4), name="bi"))) == "bi"
    # A mask, a layer that returns every step or reads backwards: the padding does not come last.
    assert padding.unmasked_rnn(sequential(layers.LSTM(4), masked=True)) is None
    assert padding.unmasked_rnn(sequential(layers.LSTM(4, return_sequences=True))) is None
    assert padding.unmasked_rnn(sequential(layers.LSTM(4, go_backwards=True))) is None
    series = keras.Sequential([keras.Input((12, 3)), layers.Masking(), layers.LSTM(4)])
    assert padding.unmasked_rnn(series) is None
    assert padding.unmasked_rnn(mlp()) is None

    class Subclassed(keras.Model):  # its call may pass a mask of its own
        def __init__(self):
            super().__init__()
            self.embed, self.rnn = layers.Embedding(20, 4), layers.LSTM(4)

        def call(self, x):
            return self.rnn(self.embed(x))

    subclassed = Subclassed()
    subclassed(np.ones((2, 12), "int32"))
    assert padding.unmasked_rnn(subclassed) is None
    # Float series padded at the end: a step is padding when all its features are 0.
    unmasked_series = keras.Sequential([keras.Input((12, 3)), layers.LSTM(4, name="lstm")])
    steps = np.ones((8, 12, 3), "float32")
    steps[:, 3:] = 0.0  # 9 of 12 steps after the last
    assert "75% of each one" in padding.first_batch_suspect(unmasked_series, steps)
    assert padding.first_batch_suspect(unmasked_series, steps[:, ::-1]) is None  # pre-padded
    text = np.array([["a good film", "a bad one"]] * 4)  # strings a layer would vectorize
    assert padding.first_batch_suspect(unmasked_series, text) is None


def test_zero_gradients_under_float16_without_loss_scaling_name_the_underflow():
    (scripted,) = [s for s in SCRIPTED if s.name == "zero-gradient-of-one-layer"]
    check, state = fold(scripted, "graph")
    steps = len(scripted.steps)
    for unscaled in (True, False):
        context = Context(steps=steps, step=steps - 1, notes={"float16_unscaled": unscaled})
        (finding,) = check.judge(state, context)
        assert ("LossScaleOptimizer" in finding.message) == unscaled, finding.message
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:  # told from the policy and the optimizer when a core is built
        assert updating.notes_of(keras.optimizers.Adam())["float16_unscaled"]
        scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
        assert not updating.notes_of(scaled)["float16_unscaled"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert not updating.notes_of(keras.optimizers.Adam())["float16_unscaled"]


@pytest.mark.parametrize("pooled", ["first", "last"])
def test_a_recurrent_layer_read_at_its_first_step_only_is_named(pooled):
    # h[:, 0] of return_sequences=True: no recurrence reaches it, its recurrent kernel gets
    # exactly zero gradient while its input kernel learns.
    keras.utils.set_random_seed(8)
    tokens = keras.Input((6,), dtype="int32")
    steps = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Embedding(9, 4)(tokens))
    pick = keras.layers.Lambda(lambda h: h[:, 0] if pooled == "first" else h[:, -1])
    model = keras.Model(tokens, keras.layers.Dense(2)(pick(steps)))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), loss, every=1)
    rng = np.random.default_rng(8)
    for _ in range(4):
        step(rng.integers(1, 9, (16, 6)), rng.integers(0, 2, 16))
    found = [f for f in step.report().findings if f.code == "zero-gradient"]
    assert bool(found) == (pooled == "first"), found
    if found:
        assert found[0].variables[0].endswith("recurrent_kernel"), found[0].variables
        assert "first time step only" in found[0].message
        assert "dead ReLU" not in found[0].message


def test_adams_epsilon_is_held_against_the_gradients_typical_scale():
    variable = keras.Variable(np.zeros(100, "float32"))
    large = keras.optimizers.Adam(1e-3, epsilon=1.0)
    assert updating.adam_epsilon_scale(large) is None  # no update yet
    for _ in range(3):  # a constant gradient of 0.02: v, bias-corrected, is 0.02 squared
        large.apply([tf.fill([100], 0.02)], [variable])
    epsilon, typical = updating.adam_epsilon_scale(large)
    assert epsilon == 1.0 and typical == pytest.approx(0.02, rel=1e-3)
    for usual in (keras.optimizers.Adam(1e-3), keras.optimizers.SGD(1e-3)):
        usual.apply([tf.fill([100], 0.02)], [variable])
        assert updating.adam_epsilon_scale(usual) is None


@pytest.mark.parametrize("resumed", [False, True])
@pytest.mark.parametrize("key", ["trailing_padding", "data_scale"])
def test_input_suspects_join_the_loss_not_decreasing_message(key, resumed):
    (scripted,) = [s for s in SCRIPTED if s.name == "loss-falls-to-chance-and-stays"]
    check, state = fold(scripted, "graph")
    if key == "data_scale":  # told by the exploding-gradient check from a first norm of 9e5
        (exploding,) = [s for s in SCRIPTED if s.name == "exploding-from-9e5-before-any-update"]
        phrase = fold(exploding, "graph")[0].notes(fold(exploding, "graph")[1])[key]
        assert "already 9e+05 at the first step with a loss of 4.6e+10" in phrase, phrase
    else:
        phrase = "'lstm' reads its sequences without a mask, and they end in padding"
    steps = len(scripted.steps)
    notes = {**scripted.notes, "suspects": [], key: phrase, "resumed": resumed}
    (finding,) = check.judge(state, Context(steps=steps, step=steps - 1, notes=notes))
    # A resumed run's first step came after updates: its gradients say nothing of the data.
    named = not (resumed and key == "data_scale")
    assert (phrase in finding.message) == named, finding.message


@pytest.mark.parametrize(
    "learning_rate,schedule,blamed",
    [
        (0.0, None, True),  # a schedule that ran out reaches 0
        (1e-10, None, False),  # a constant 1e-10 is below float precision
        (1e-10, ("ExponentialDecay", 1e-3), True),  # a schedule brought it there
        (9e-4, ("CosineDecay", 1e-3), None),  # barely decayed, so not the schedule: converged
        (3e-3, None, None),  # a rate that moves weights: the loss converged (hunt26 h01, h10)
    ],
)
def test_weights_that_stopped_are_blamed_on_a_schedule_only_when_it_ran_out(
    learning_rate, schedule, blamed
):
    (scripted,) = [s for s in SCRIPTED if s.name == "update-ratio-schedule-reaches-zero-at-step-6"]
    check, state = fold(scripted, "graph")
    steps = len(scripted.steps)
    notes = {"schedule": schedule}
    context = Context(steps=steps, step=steps - 1, learning_rate=learning_rate, notes=notes)
    stopped = [f for f in check.judge(state, context) if f.code == "weights-unchanged"]
    if blamed is None:  # gradients that shrank below precision at this rate: converged
        assert stopped == []
        return
    (stopped,) = stopped
    assert ("decay_steps" in stopped.message) == blamed, stopped.message
    assert (schedule is not None and blamed) == ("ExponentialDecay" in stopped.message)
    tiny = 0 < learning_rate < 1e-6 and not blamed
    assert ("too small for float precision" in stopped.message) == tiny, stopped.message


def test_a_stall_of_every_gradient_names_a_loss_whose_rest_is_cut_from_the_tape():
    # hunt22 p10: a PINN's boundary term fitted exactly, its residual a constant (the derivative
    # taken on a tape not nested in the training tape): every gradient exactly 0, loss 0.5.
    (scripted,) = [s for s in SCRIPTED if s.name == "zero-gradient-every-gradient-stalls-at-step-2"]
    check, state = fold(scripted, "graph")
    steps = len(scripted.steps)
    (finding,) = check.judge(state, Context(steps=steps, step=steps - 1))
    assert "since step 2" in finding.message and "not nested in it" in finding.message


@pytest.mark.parametrize("decay", ["halved-every-10-steps", "cosine-to-0"])
def test_a_learning_rate_brought_down_1000x_is_named_when_the_weights_stop_moving(decay, tmp_path):
    # Halving the rate every 10 steps (a schedule that compounds, set from the host as a
    # callback does) stops training by step ~180 of 300; a cosine decay to 0 at the last step
    # is that low for its last few steps only.
    steps = 300
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, steps)
    optimizer = keras.optimizers.Adam(1e-3 if decay.startswith("halved") else schedule)
    step = gradguard.TrainStep(mlp(), optimizer, "mse", every=10, log_dir=tmp_path)
    x, y = regression_data()
    for i in range(steps):
        if decay.startswith("halved") and i and i % 10 == 0:
            optimizer.learning_rate.assign(optimizer.learning_rate * 0.5)
        step(x, y)
    named = [f for f in step.report().findings if "brought down from 0.001" in f.message]
    (result,) = inspect_lib.inspect(str(tmp_path)).results
    logged = result.report.findings
    if decay == "cosine-to-0":
        assert named == [] and not {"update-too-small", "weights-unchanged"} & {
            f.code for f in step.report().findings + logged
        }
        return
    (finding,) = named
    assert finding.code in ("update-too-small", "weights-unchanged")
    assert "during training" in finding.message and finding.severity is gradguard.Severity.WARNING
    assert [f.code for f in logged if "brought down from 0.001" in f.message] == [finding.code]


def test_every_built_in_check_is_scripted():
    scripted = {type(s.check()) for s in SCRIPTED}
    assert {c for c, _ in checks.BUILT_IN} <= scripted


class _Packed(checks.Check):
    """Two counters and a per-variable maximum folded through one packed variable."""

    def _build(self):
        n = self.layout.size
        self.packed = self.add_states({"steps": 0.0, "top": [0.0] * n, "last": -1.0})

    def update(self, stats):
        steps, top, last = tf.split(self.packed.read_value(), [1, self.layout.size, 1])
        self.packed.assign(tf.concat([steps + 1, tf.maximum(top, stats.grad_sq), last * 0], 0))

    def judge(self, state, context):
        return []


def test_packed_states_read_back_by_name_and_shape():
    check = _Packed()
    check.build(Layout.from_names(["a/kernel", "a/bias", "b/kernel"]))
    assert len({id(spec.variable) for spec in check.state_specs.values()}) == 1
    for grad_sq in ([1.0, 5.0, 2.0], [3.0, 0.0, 2.5]):
        check.update(SimpleNamespace(grad_sq=tf.constant(grad_sq)))
    state = check.state()
    assert state["steps"].shape == () and state["steps"] == 2
    np.testing.assert_allclose(state["top"], [3.0, 5.0, 2.5])
    assert state["last"] == 0
    # The checks' one-sync reader splits it the same way.
    (read,) = StateReader([check])()
    assert {k: np.asarray(v).tolist() for k, v in read.items()} == {
        k: np.asarray(v).tolist() for k, v in state.items()
    }


def test_a_state_declared_twice_across_packs_is_refused():
    class Twice(_Packed):
        def _build(self):
            super()._build()
            self.add_states({"other": 0.0, "top": 1.0})

    with pytest.raises(ValueError, match="declares state 'top' twice"):
        Twice().build(Layout.from_names(["a/kernel"]))


class _Counting(checks.Check):
    """Counts the steps it folds, and (when it folds every step) those that measured."""

    def __init__(self, measured_only):
        self.measured_only = measured_only

    def _build(self):
        self.counts = self.add_states({"folded": 0.0, "measured": 0.0})

    def update(self, stats):
        measured = tf.cast(tf.convert_to_tensor(stats.measured), tf.float32)
        self.counts.assign_add(tf.stack([1.0, measured]))

    def judge(self, state, context):
        return []


@pytest.mark.parametrize("entry", ["train_step", "guard"])
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_a_measured_only_check_folds_exactly_the_measuring_steps(entry, mode):
    # TrainStep knows when tracing whether a step measures; the guard decides in-graph.
    every_step, measuring = _Counting(False), _Counting(True)
    model, (x, y) = mlp(), regression_data()
    optimizer, loss_fn = keras.optimizers.SGD(0.01), keras.losses.MeanSquaredError()
    options = dict(checks=[every_step, measuring], every=5)
    if entry == "train_step":
        step = gradguard.TrainStep(model, optimizer, loss_fn, **options, **mode_kwargs(mode))
    else:

        def body(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        step = gradguard.guard(model, optimizer, **options)(
            body if mode == "eager" else tf.function(body)
        )
    for _ in range(12):
        step(x, y)
    folded, measured = every_step.state()["folded"], every_step.state()["measured"]
    assert folded == 12 and 0 < measured < 12
    assert measuring.state()["folded"] == measured == measuring.state()["measured"]


# -- each check's particulars -------------------------------------------------------------------


def test_none_gradient_names_only_the_disconnected_head(mode):
    inputs = keras.Input((8,))
    used = keras.layers.Dense(1, name="used")(inputs)
    unused = keras.layers.Dense(1, name="unused_head")(inputs)
    model = keras.Model(inputs, [used, unused])
    step, report = run_case(
        Case(
            "unused-head",
            lambda: model,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(tf.square(yt - yp[0])),
            steps=3,
        ),
        mode,
    )
    (finding,) = [f for f in report.findings if f.code == "none-gradient"]
    assert finding.variables == ("unused_head/kernel", "unused_head/bias")
    assert finding.severity is gradguard.Severity.WARNING
    assert "not used in computing the loss" in finding.message


@pytest.mark.parametrize(
    "cut,phrase",
    [
        (lambda p: tf.cast(tf.cast(p, tf.int32), tf.float32), "a cast to int32"),
        (lambda p: tf.cast(tf.argmax(p, axis=1), tf.float32)[:, None], "argmax"),
        (lambda p: tf.round(p), "round"),
        (lambda p: tf.stop_gradient(p), "tf.stop_gradient"),
    ],
    ids=["cast-int", "argmax", "round", "stop-gradient"],
)
def test_none_gradient_names_the_break(cut, phrase):
    _, report = run_case(
        Case(
            "cut",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(tf.square(yt - cut(yp))),
            steps=2,
        ),
        "graph",
    )
    (finding,) = [f for f in report.findings if f.code == "none-gradient"]
    assert phrase in finding.message
    assert finding.severity is gradguard.Severity.ERROR


@pytest.mark.parametrize("mode", MODES)
def test_no_gradient_raises_at_trace_with_model_untouched(mode):
    model = mlp()
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(
        model, keras.optimizers.Adam(1e-3), numpy_cut_loss, **mode_kwargs(mode)
    )
    x, y = regression_data()
    with pytest.raises(gradguard.GradientError, match="tf.numpy_function") as info:
        step(x, y)
    assert info.value.finding.code == "none-gradient"
    assert len(info.value.finding.variables) == 4
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_numpy_call_in_compiled_loss_is_named():
    def loss(yt, yp):
        return tf.reduce_mean(tf.square(yt - yp.numpy()))

    step = gradguard.TrainStep(mlp(), keras.optimizers.Adam(1e-3), loss)
    x, y = regression_data()
    with pytest.raises(gradguard.GradientError, match=r"\.numpy\(\)"):
        step(x, y)


def test_numpy_call_in_eager_loss_is_named():
    def loss(yt, yp):
        return tf.reduce_mean(tf.square(yt - yp.numpy()))

    model = mlp()
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3), loss, run_eagerly=True)
    x, y = regression_data()
    with pytest.raises(gradguard.GradientError, match=r"\.numpy\(\)") as info:
        step(x, y)
    assert info.value.finding.code == "none-gradient"
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_default_policy_raises_errors_at_the_host_read():
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.SGD(0.0), keras.losses.MeanSquaredError(), every=5
    )
    x, y = regression_data()
    for _ in range(5):
        step(x, y)  # steps 0 and 1 are measured; the read after step 0 has seen one of them
    with pytest.raises(gradguard.UpdateError) as info:
        step(x, y)  # the read after step 5
    assert info.value.finding.code == "weights-unchanged"


def test_warmup_from_a_zero_learning_rate_is_not_weights_unchanged():
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=100, warmup_target=1e-2, warmup_steps=10
    )
    _, report = run_case(
        Case("warmup", mlp, lambda: keras.optimizers.Adam(schedule), steps=30, every=100), "graph"
    )
    assert report.findings == [], str(report)


def test_warnings_are_logged_not_raised(caplog):
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-10),
        keras.losses.MeanSquaredError(),
        policy={"weights-unchanged": "ignore"},
    )
    x, y = regression_data()
    step(x, y)
    step(x, y)  # two measured steps
    assert "update-too-small" in step.report().codes()
    assert "weights-unchanged" not in step.report().codes()


def test_nan_loss_is_skipped_and_raised_at_the_next_read():
    model = mlp()
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(
        model,
        keras.optimizers.Adam(1e-3),
        lambda yt, yp: tf.reduce_mean(tf.math.log(yp * 0.0)),
        every=3,
    )
    x, y = regression_data()
    with pytest.raises(gradguard.NonFiniteError, match="loss became NaN/Inf at step 0"):
        step(x, y)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())
    assert step.statistics()["skipped_updates"] == 1


def test_nan_between_host_reads_is_not_lost():
    # The loss is NaN only on step 2; the host reads at steps 0 and 5.
    x, y = regression_data()
    bad = x.copy()
    bad[0, 0] = np.nan
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.Adam(1e-3), keras.losses.MeanSquaredError(), every=5
    )
    for i in range(5):
        step(bad if i == 2 else x, y)
    with pytest.raises(gradguard.NonFiniteError) as info:
        step(x, y)
    assert info.value.finding.details["first_step"] == 2
    assert info.value.finding.details["skipped_updates"] == 1


def test_findings_are_deduplicated_with_count():
    step, report = run_case(
        Case("adam-lr-1e-10", mlp, lambda: keras.optimizers.Adam(1e-10), steps=20, every=5), "graph"
    )
    (finding,) = [f for f in report.findings if f.code == "update-too-small"]
    assert finding.step == 5  # the first read with two measured steps (0 and 1)
    # Read again at steps 10, 15 and in report(): the same occurrence, not four.
    assert finding.count == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "fault,phrase",
    [("x", "the inputs x"), ("y", "the labels y"), ("empty", "empty (0 examples)")],
)
def test_bad_data_is_named_not_blamed_on_the_loss(fault, phrase, mode):
    x, y = regression_data()
    bad_x, bad_y = x.copy(), y.copy()
    bad_x[3, 1], bad_y[5, 0] = np.nan, np.inf
    batch = {"x": (bad_x, y), "y": (x, bad_y), "empty": (x[:0], y[:0])}[fault]
    # A plain mean: NaN over no examples (Keras' losses give 0 there, and nothing is lost).
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-3),
        lambda yt, yp: tf.reduce_mean(tf.square(yt - yp)),
        every=5,
        policy={"non-finite": "warn"},
        **mode_kwargs(mode),
    )
    for i in range(6):
        step(*(batch if i == 2 else (x, y)))
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert phrase in finding.message and finding.step == 2, finding.message
    assert finding.details["origin"]["stage"] == "data"
    assert "log(0)" not in finding.message.split(":")[0]


def test_chance_level_over_the_last_half_of_a_finished_run():
    """Mid-run, the loss must sit at chance for `chance_steps`; once the run is over (or the
    report is asked for), its last half at chance is enough if it spans two windows: a run
    stuck there is found, a long one warming up near chance is not judged early, and a run
    shorter than four windows (a fine-tuning run of a few steps) is not judged at all."""
    scripted = _chance_case("at-chance", lambda s: 2.6 if s == 0 else 2.3)
    notes = {"chance_loss": float(np.log(10))}
    running = Context(steps=STEPS, step=STEPS - 1, notes=notes)
    finished = dataclasses.replace(running, final=True)
    messages = {}
    for window in (3, 4):  # 12 steps: four windows of 3, three of 4
        longer = dataclasses.replace(
            scripted, check=lambda w=window: checks.LossNotDecreasing(window=w, chance_steps=40)
        )
        check, state = fold(longer, "graph")
        assert check.judge(state, running) == []
        messages[window] = [f.message for f in check.judge(state, finished)]
    (message,) = messages[3]
    assert "or above for the last 6 steps" in message
    assert messages[4] == []
