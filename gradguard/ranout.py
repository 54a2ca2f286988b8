"""A `fit` whose data ran out long before ``steps_per_epoch * epochs`` (`data-exhausted`).

With `steps_per_epoch` set, Keras draws that many batches each epoch from the data it was given.
A `tf.data.Dataset` without `.repeat()`, a generator or a `PyDataset` with fewer batches ends
the epoch early: Keras warns ("Your input ran out of data") and goes on, and the run trains on
a fraction of the steps asked for, while the progress bar may still count whole epochs.

Judged at half the steps asked for or fewer. Under ``gradguard run``, which wraps `fit`: Keras'
warning seen while the `fit` ran, and its optimizer's `iterations`, read as it starts and as it
returns (`FitLength`). Under `GuardCallback`: the batches of the epochs that ran, when no
callback stopped the training (`EarlyStopping` ends an epoch too, but then the `fit`). Without
`steps_per_epoch` nothing was asked for: Keras also warns once while it learns the length of a
data set of unknown length, which is healthy.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from gradguard.findings import Finding

__all__ = ["FitLength", "finding"]

OUT_OF_DATA = "ran out of data"  # in Keras' warning
SHARE = 0.5  # steps run, as a share of the steps asked for, at or below which it is a finding
_FIX = {  # by whether the data is a tf.data.Dataset (None: not known)
    True: "Call .repeat() on the tf.data.Dataset, or set",
    None: "Call .repeat() on a tf.data.Dataset, or set",
    False: "Set",
}


class FitLength:
    """The steps one `fit` ran against the steps it asked for, and whether its data ran out."""

    def __init__(self) -> None:
        self._start: int | None = None  # the optimizer's iterations as the fit started
        self._ran_out = False

    def start(self, model: Any) -> None:
        """`fit` starts (on the host)."""
        self._start, self._ran_out = _iterations(model), False

    def on_warning(self, message: str) -> None:
        """A Python warning while the guard listens: Keras' own when the data ran out."""
        self._ran_out |= OUT_OF_DATA in message

    def judge(self, model: Any, arguments: Mapping[str, Any], step: int) -> list[Finding]:
        """`data-exhausted` for the `fit` that returned, given its `arguments` by name."""
        per_epoch, end = arguments.get("steps_per_epoch"), _iterations(model)
        epochs = int(arguments.get("epochs", 1)) - int(arguments.get("initial_epoch", 0))
        if not self._ran_out or self._start is None or end is None:
            return []
        repeats = hasattr(arguments.get("x"), "cardinality")  # (a tf.data.Dataset)
        return finding(per_epoch, epochs, end - self._start, repeats, step)


def finding(
    per_epoch: Any, epochs: int, ran: int, repeats: bool | None, step: int
) -> list[Finding]:
    """`data-exhausted` if `ran` steps are `SHARE` or less of `per_epoch` x `epochs`.

    `repeats`: the data is a `tf.data.Dataset` (`.repeat()` is then the fix); None: not known.
    """
    if not isinstance(per_epoch, numbers.Integral) or per_epoch < 1 or epochs < 1:
        return []
    asked = int(per_epoch) * epochs
    if ran > SHARE * asked:
        return []
    message = (
        f"fit ran {ran} steps of the {asked} asked for (steps_per_epoch={per_epoch} x "
        f"{epochs} epochs): its data ran out (Keras warned 'Your input ran out of data') "
        f"and ended each epoch there, so the model trained {ran / asked:.0%} of the steps "
        f"planned. {_FIX[repeats]} steps_per_epoch to the batches one pass of the data holds "
        "(or leave it out)."
    )
    details = {"ran": ran, "asked": asked}
    return [Finding("data-exhausted", message, max(step, 0), details=details)]


def _iterations(model: Any) -> int | None:
    """The model's optimizer's update count (a host read), or None without one."""
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    try:
        return int(iterations.numpy())  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return None
