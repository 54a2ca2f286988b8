"""A stateful recurrent layer trained by `fit` on shuffled rows (`stateful-shuffled`).

A recurrent layer built with ``stateful=True`` carries each row's last state into the same row
of the next batch: the data must be laid out so that row i of batch k+1 continues row i of
batch k, and fed in that order. `fit` shuffles arrays by default (``shuffle=True``, and
``"batch"`` shuffles too), so each row starts from the state of an unrelated sequence and the
state cannot carry what came before (hunt18, keras#1820: 0.48 accuracy on the chunks only the
state can label, 1.00 with ``shuffle=False``). The loss still falls, on what each chunk shows
alone.

Read under ``gradguard run`` as `fit` starts, from its arguments and the model's layers; a data
set is judged by the shuffles it reads (Keras ignores `shuffle` for it), a `PyDataset` by
`shuffle` (its batches' order), a generator not at all (it orders its own batches).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from gradguard import _compat
from gradguard.augmentation import upstream
from gradguard.findings import Finding

__all__ = ["finding"]

_REGROUPING = ("FlatMap", "Interleave", "Unbatch", "Window")


def _shuffles(dataset: tf.data.Dataset) -> bool:
    """Whether `dataset` reads a shuffle of its rows.

    Not one of groups that a `flat_map`, `interleave` or `unbatch` then lays out in order
    (streams shuffled whole, each read in sequence).
    """
    return any("Shuffle" in type(each).__name__ for each in upstream(dataset, _regrouping))


def _regrouping(dataset: Any) -> bool:
    return any(name in type(dataset).__name__ for name in _REGROUPING)


def finding(model: Any, arguments: Mapping[str, Any], step: int) -> Finding | None:
    """`stateful-shuffled` for a `fit` shuffling the rows a stateful layer carries state across."""
    stateful = stateful_layers(model)
    if not stateful:
        return None
    x = arguments.get("x")
    if isinstance(x, tf.data.Dataset):
        if not _shuffles(x):
            return None
        how = "its data set is shuffled (Dataset.shuffle)"
        fix = "Drop the data set's shuffle"
    elif isinstance(x, keras.utils.PyDataset) or _arrays(x):
        if not arguments.get("shuffle", True):
            return None
        given = f"shuffle={arguments['shuffle']!r}" if "shuffle" in arguments else "its default"
        rows = "batches" if isinstance(x, keras.utils.PyDataset) else "rows"
        how = f"fit shuffles the {rows} ({given})"
        fix = "Pass shuffle=False to fit"
    else:  # (a generator orders its own batches)
        return None
    message = (
        f"Layer {stateful[0]!r} is stateful (stateful=True): it carries each row's state into "
        f"the same row of the next batch, but {how}, so every row starts from the state of "
        "another sequence and the state cannot carry what came before. "
        f"{fix}, lay the data out so that row i of batch k+1 continues row i of batch k, and "
        "reset the states between sequences (layer.reset_states())."
    )
    return Finding("stateful-shuffled", message, step, details={"layers": stateful})


def _arrays(x: Any) -> bool:
    return x is not None and all(hasattr(a, "shape") for a in tf.nest.flatten(x))


def stateful_layers(model: Any) -> list[str]:
    """The names of `model`'s layers built with ``stateful=True``."""
    # (An RNN wrapper or a Keras RNN layer; a Bidirectional wrapper passes it to its halves.)
    layers = _compat.flatten_layers(model)
    return [layer.name for layer in layers if getattr(layer, "stateful", False) is True]
