"""Activation checks: `dead-units`, and saturation as the cause of `vanishing-gradient`."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard import suspects
from gradguard.checks.base import Check
from gradguard.findings import Finding
from gradguard.stats import Context, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["DEAD_UNITS", "SATURATION", "ActivationHealth"]

# TensorBoard sections of this check's scalars: f"{DEAD_UNITS}/{layer}".
DEAD_UNITS = "gradguard_dead_units"
SATURATION = "gradguard_saturation"


class ActivationHealth(Check):
    """`dead-units`, and saturation as the cause of `vanishing-gradient`: the activations.

    Watches the outputs of the model's activation-bearing layers (Dense/Conv with a ReLU,
    sigmoid or tanh activation, `Activation`, `ReLU`) in the training forward pass itself: no
    second forward pass, outputs and gradients unchanged. Layers with `trainable=False` (a
    frozen base) are not watched. `TrainStep`, the guard decorator given the model (and the
    checks as a list), and ``gradguard run`` (each optimizer watches the model it trains)
    capture activations. Under a multi-replica strategy each replica folds what it saw of its
    slice of the batch into its own copy of the state, and the host read combines them (a unit
    is alive if it fired on any replica's slice); the guard and ``run`` do not watch there, nor
    the guard without the model: the check stays silent. ``gradguard inspect`` judges dead
    units again from the logged ``gradguard_dead_units/<layer>`` scalars (`judge_logged`).

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
      likely cause when `vanishing-gradient` is reported (through `Context.notes`).

    Off by default in `TrainStep` and the guard (`default_checks()` does not include it): add
    it to the list, e.g.
    ``checks=[*gradguard.checks.default_checks(), gradguard.checks.ActivationHealth()]``.
    Measured with ``benchmarks/overhead.py --variants trainstep,trainstep-act`` (2 CPU cores,
    paired against the default `TrainStep`): about +2% per step on the MLP, +8-9% on the small
    CNN (a pass over every conv output), nothing on the LSTM (no watched layer).

    Args:
      dead_fraction: Report a layer when at least this fraction of its units is dead. Healthy
        runs used to calibrate it peaked at 0.69 (a bag-of-words model, its pooled embeddings
        nearly alike at first: Adam's first steps tip most of a small layer's units below 0
        for good, and the rest learn the task); a huge learning-rate step, an outlier batch,
        an inverted warmup, raw pixels or a bad bias initialization reach 0.89-1.0.
      window: Steps a unit must stay silent to count as dead; also the span of the
        saturation moving average. Nothing is judged before `window` steps are seen.
      margin: Distance from the activation's limits that counts as saturated.
      saturated: A layer with at least this fraction of saturated outputs is named as the
        likely cause of `vanishing-gradient`.
    """

    watches_activations = True

    def __init__(
        self,
        dead_fraction: float = 0.8,
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
        # Each replica folds its own slice of the batch; the host read combines the copies:
        # a unit fired on the latest step any replica saw it fire (max).
        sites = self.sites
        self.seen = self.add_state("act_steps", 0, tf.int64, replicas="max")
        # Per site, the latest step its layer was called on.
        self.latest = self.add_state("act_latest_step", [-1] * len(sites), tf.int64, replicas="max")
        self.saturation = self.add_state(
            "act_saturation",
            [0.0] * len(sites),
            replicas="mean",  # equal slices: the mean of the replicas' fractions is the batch's
        )
        self.last_active = [
            self.add_state(f"act_last_active_{i}", [-1] * site.units, tf.int64, replicas="max")
            for i, site in enumerate(sites)
        ]
        for i, site in enumerate(sites):
            if site.kind == "relu":
                self.add_scalar(f"{DEAD_UNITS}/{site.name}", functools.partial(self._dead_share, i))
            else:
                self.add_scalar(f"{SATURATION}/{site.name}", functools.partial(self._saturated, i))

    def _dead_share(self, i: int) -> tf.Tensor:
        """The share of site `i`'s units silent for the last `window` steps (in-graph)."""
        silent = self.latest[i] - self.last_active[i] >= self.window
        return tf.reduce_mean(tf.cast(silent, tf.float32))

    def _saturated(self, i: int) -> tf.Tensor:
        """Site `i`'s saturated share, as a moving average (in-graph)."""
        return self.saturation[i]

    def update(self, stats: Stats) -> None:
        if not self.sites or len(stats.activations) != len(self.sites):
            return
        step = tf.cast(stats.step, tf.int64)
        decay = 2.0 / (self.window + 1)
        observed = [outputs is not None for outputs in stats.activations]
        fractions = []
        for i, (site, outputs) in enumerate(zip(self.sites, stats.activations)):
            if outputs is None:  # not called on this step: nothing seen, nothing changes
                fractions.append(self.saturation[i])
                continue
            if site.kind == "relu":
                # One reduction over the output (ReLU outputs are >= 0): the cheapest pass.
                peak = tf.reduce_max(outputs, axis=0)
                # A NaN output is not a silent unit: the non-finite check reports it.
                fired = (peak > 0) | ~tf.math.is_finite(peak)
                last = self.last_active[i]
                last.assign(tf.where(fired, step, last))
                fractions.append(tf.constant(0.0))
                continue
            a = tf.cast(outputs, tf.float32)
            # sigmoid: below margin or above 1 - margin; tanh: |a| above 1 - margin.
            centre, limit = (0.5, 0.5) if site.kind == "sigmoid" else (0.0, 1.0)
            flat = tf.abs(a - centre) > limit - self.margin
            fractions.append(tf.reduce_mean(tf.cast(flat, tf.float32)))
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

    def notes(self, state: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        """``saturation``: the sigmoid/tanh outputs at or above `saturated`, with their share."""
        if not self.sites or int(state.get("act_steps", 0)) < self.window:
            return {}
        fractions = np.asarray(state["act_saturation"])
        saturated = {
            site.name: float(fractions[i])
            for i, site in enumerate(self.sites)
            if site.kind != "relu" and fractions[i] >= self.saturated
        }
        return {"saturation": saturated} if saturated else {}

    def summary(self, state: Mapping[str, np.ndarray]) -> Mapping[str, float]:
        """``dead_fraction/<layer>`` and ``saturation/<layer>`` per watched output."""
        if not self.sites:
            return {}
        result = {f"dead_fraction/{name}": f for name, (f, _) in self.dead(state).items()}
        fractions = np.asarray(state["act_saturation"])
        for i, site in enumerate(self.sites):
            if site.kind != "relu":
                result[f"saturation/{site.name}"] = float(fractions[i])
        return result

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        if not self.sites or int(state["act_steps"]) < self.window:
            return []
        results = []
        broken = context.notes.get("non_finite_from")
        for site in self.sites:
            if site.kind != "relu":
                continue
            fraction, since = self.dead(state)[site.name]
            if broken is not None and since >= broken:
                continue  # silenced by NaN weights (a NaN input is 0 after ReLU on some kernels)
            finding = self._dead_units(site.name, fraction, context, site.units, since)
            if finding is not None:
                results.append(finding)
        return results

    def judge_logged(self, logged: Logged, context: Context) -> list[Finding]:
        """`dead-units` from the logged ``gradguard_dead_units/<layer>`` scalars.

        The per-unit state is not logged: each layer's dead share at its latest logged step
        (computed by the live run with its own `window`) is judged against this check's
        `dead_fraction`; the unit count and the step the units died at are left out.
        """
        results = []
        for name, fraction in logged.latest_in(DEAD_UNITS).items():
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
            "initialization; from the first step on, also all-zero weights, inputs that are all "
            "zero or negative (a cast that truncated them) or a normalization over a batch of "
            "one example. Use LeakyReLU or ELU, a lower learning rate (or clipping), and "
            "normalized inputs."
        )
        message += suspects.sentence(context.notes)
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
