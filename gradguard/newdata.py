"""A `fit` on other data than the model's last one: the loss's trend starts again.

Curriculum learning trains on the easy examples first, then on all of them; a trained model goes
on to a new data set. The loss jumps when the data changes, by design, and the loss of the first
steps, on other data, says nothing about the loss now: held against it, a curriculum's training
looked stuck (hunt32: 0.168 on the easy half, 0.308 on all the data, falling from 0.342 there).

Told at `fit`'s start (`gradguard run`): when a model's `fit` is given arrays other than its last
`fit`'s (their shapes, or a sample of their rows), `loss-not-decreasing` of the core training it
starts again from that step (`Check.reset`), on a trained model (``notes["resumed"]``: its loss
may hold). The same arrays fitted again (a loop of one-epoch fits) keep one trend. Data sets and
generators are not read: their trend goes on.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.checks import LossNotDecreasing

__all__ = ["FitData", "SAMPLED_ROWS"]

SAMPLED_ROWS = 64  # rows of each array read for its fingerprint, evenly spaced


class FitData:
    """The arrays each model's last `fit` was given, as fingerprints."""

    def __init__(self) -> None:
        self._last: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def given(self, model: Any, arguments: Mapping[str, Any], cores: Mapping[int, Any]) -> None:
        """`fit` starts on `arguments`: other arrays than last time restart the loss's trend."""
        data = _fingerprint(arguments.get("x"), arguments.get("y"))
        last = self._last.get(model)
        self._last[model] = data
        core = cores.get(id(_compat.inner_optimizer(getattr(model, "optimizer", None))))
        if core is None or data is None or last is None or data == last or not core.steps:
            return
        for check in core.checks:
            if isinstance(check, LossNotDecreasing):
                check.reset()
        core.notes["resumed"] = True


def _fingerprint(*data: Any) -> tuple[Any, ...] | None:
    """Each array's shape, dtype and a hash of `SAMPLED_ROWS` of its rows; None if not arrays."""
    found = []
    for leaf in tf.nest.flatten(data):
        if leaf is None:
            continue
        shape = getattr(leaf, "shape", None)
        if shape is None or not hasattr(leaf, "__array__"):
            return None  # (a data set, a generator, a Keras PyDataset: not read)
        shape = tuple(shape)
        rows = np.asarray(leaf[:: max(1, shape[0] // SAMPLED_ROWS)] if shape else leaf)
        digest = hashlib.sha1(np.ascontiguousarray(rows).tobytes()).hexdigest()
        found.append((shape, str(rows.dtype), digest))
    return tuple(found) or None
