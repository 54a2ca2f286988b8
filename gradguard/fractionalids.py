"""Ids an `Embedding` truncates: float inputs that are not whole numbers.

A Keras `Embedding` casts a float input to int32 before its lookup, which truncates: 0.37 and
0.99 both read row 0. Ids scaled with the other features (min-max, standardized) or averaged
then reach the layer as fractions, most collapse onto a few rows, and the rest of the table never
gets a gradient; nothing raises. Ids held as floats but whole (a float32 array of 0, 1, 2, ...)
look up what they say and are not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import replicas
from gradguard.findings import Finding

__all__ = ["FractionalIds"]


class FractionalIds:
    """The share of each `Embedding`'s float ids that are not whole numbers, per batch.

    Folded in-graph on each update (`observe`), its largest over the batches; judged on the host
    (`findings`). Integer ids, the usual case, add nothing to the step.
    """

    def __init__(self) -> None:
        self._shares = replicas.LayerMaxima("gradguard_fractional_ids")
        self._reported: set[int] = set()

    def observe(self, inputs: Iterable[tuple[Any, Any]]) -> None:
        """In-graph: folds each float-fed `Embedding`'s share of fractional ids.

        Args:
          inputs: ``(layer, x)`` pairs from the guard's `Tap`: `x` what the layer read in the
            latest forward pass (None when not seen here); layers other than `Embedding` are
            left alone.
        """
        for layer, x in inputs:
            if not isinstance(layer, keras.layers.Embedding):
                continue
            if isinstance(x, np.ndarray):
                x = tf.constant(x)  # (an eager step's batch, as the user's code gave it)
            if not tf.is_tensor(x) or not x.dtype.is_floating:
                continue
            x = tf.cast(x, tf.float32)
            self._shares.fold(
                layer, tf.reduce_mean(tf.cast(tf.not_equal(x, tf.round(x)), tf.float32))
            )

    def findings(self, step: int) -> list[Finding]:
        """An `embedding-ids-fractional` finding per `Embedding` fed fractional ids."""
        found = []
        for layer, share in self._shares.read():
            if id(layer) in self._reported or share == 0:
                continue
            self._reported.add(id(layer))
            message = (
                f"The Embedding layer '{layer.name}' is given float ids of which {share:.0%} "
                "(in a batch) are not whole numbers: Keras casts them to int32, which truncates "
                "(0.37 and 0.99 both look up row 0), so the ids collapse onto a few rows and "
                "the rest of the table never trains. Feed it the raw integer ids, as int32, "
                "not scaled, standardized or averaged with the other features."
            )
            details = {"layer": layer.name, "fractional_share": share}
            found.append(Finding("embedding-ids-fractional", message, step, details=details))
        return found
