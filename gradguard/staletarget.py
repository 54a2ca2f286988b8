"""A target network whose updates never move it (`ema-weights-stale`).

DQN, DDPG and BYOL keep a target network that follows the online one: copied every few hundred
steps (``target.set_weights(online.get_weights())``) or blended each step, ``tau * online +
(1 - tau) * target``. Written with the target on both sides (``0.99 * target + 0.01 * target``,
ageron/handson-ml2#89), the update changes nothing: the target keeps its first, random weights
for the whole run, and the bootstrapped targets it computes never improve, while the online
network's loss falls all the same (hunt29 b05: a return of -0.06 against 0.97).

Under ``gradguard run`` every `set_weights` of a Keras layer or model is compared with the
weights it replaces: a layer set `MIN_CALLS` times or more, none of which after the first (the
initial copy) moved any weight by more than `SAME` of the largest it held, in a run that made
`MIN_CALLS` updates or more, is reported when the run ends. A hard copy of an online network
that trains moves it; so does a soft update once the online network has moved.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from absl import logging

from gradguard.findings import Finding, Report
from gradguard.patching import Patch

__all__ = ["MIN_CALLS", "SAME", "watch"]

MIN_CALLS = 20  # set_weights calls that left a layer as it was: a target never updated
SAME = 1e-6  # a change this small against the largest weight: rounding, not a move


class _Sets:
    """Per layer set by `set_weights`: calls, and the largest relative change one made."""

    def __init__(self) -> None:
        self.layers: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self.calls: dict[int, list[float]] = {}  # [calls, largest change]

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def set_weights(layer: Any, weights: Any) -> Any:
            before = None
            with contextlib.suppress(Exception):  # (gradguard's reading never fails the call)
                before = layer.get_weights()
            result = original(layer, weights)
            if before is not None:
                with contextlib.suppress(Exception):
                    self._note(layer, before, weights)
            return result

        return set_weights

    def _note(self, layer: Any, before: list[np.ndarray], after: Any) -> None:
        change = 0.0
        for old, new in zip(before, after):
            old, new = np.asarray(old, np.float64), np.asarray(new, np.float64)
            scale = float(np.max(np.abs(old), initial=0.0)) or 1.0
            change = max(change, float(np.max(np.abs(new - old), initial=0.0)) / scale)
        self.layers[id(layer)] = layer
        calls = self.calls.setdefault(id(layer), [0, 0.0])
        # (The first call is the initial copy of the online weights: it may move the target.)
        calls[0], calls[1] = calls[0] + 1, max(calls[1], change) if calls[0] else 0.0

    def findings(self, updates: int) -> list[Finding]:
        found = []
        for key, (calls, change) in self.calls.items():
            layer = self.layers.get(key)
            if layer is None or min(calls, updates) < MIN_CALLS or change > SAME:
                continue
            message = (
                f"{layer.name}.set_weights was called {int(calls)} times while the training "
                f"made {updates} updates, and after the first it never moved a weight (the "
                f"largest change {change:.1g} of the largest weight): {layer.name} keeps the "
                "weights it was first given. A target network's update that blends it with "
                "itself (0.99 * target + 0.01 * target, the online weights left out) computes "
                "its targets from the network it started as. Blend in the online weights: "
                "tau * online + (1 - tau) * target."
            )
            details = {"layer": layer.name, "calls": int(calls)}
            found.append(Finding("ema-weights-stale", message, updates, details=details))
        return found


def watch(report: Report, updates: Callable[[], int]) -> Callable[[], None]:
    """Watches `set_weights` calls (module docstring) until the returned function is called.

    Args:
      report: Where the findings go when the watch ends.
      updates: The optimizer updates made so far (the run's steps).
    """
    sets, stack = _Sets(), contextlib.ExitStack()
    stack.enter_context(Patch(keras.layers.Layer, "set_weights", sets.wrap))

    def unwatch() -> None:
        stack.close()
        for finding in sets.findings(updates()):
            if report.add(finding):
                logging.warning("gradguard [%s]: %s", finding.code, finding.message)

    return unwatch
