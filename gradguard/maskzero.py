"""An `Embedding(mask_zero=True)` whose id 0 is a real token (`zero-token-masked`).

``mask_zero=True`` tells the layers after the embedding that id 0 is padding: recurrent
layers skip those steps, pooling and attention leave them out. When the data uses 0 as a real
token (a vocabulary numbered from 0: DNA bases A, C, G, T as 0..3, categories, characters),
every occurrence of that token is hidden from the model, and whatever it carried is lost (a
sequence classifier counting bases: accuracy 0.69 against 1.0 without the mask). Nothing fails.

Taken: a token input (integer ids of more than two values) fed straight to an embedding that
masks 0, with 32 or more 0s in its first rows, where fewer than half of the rows with 0s hold
them as padding does: in one run, or two (two sequences padded, then joined: a question and its
answer), and no lone 0 inside the row. Padded sequences, joined padded sequences (any number of
fixed-length fields, whose runs of 0s start or end on the same few columns), and tokens
numbered from 1 stay silent.

Told once from the data on the host, like `tokenlabels`: `TrainStep`'s first batch, or `fit`'s
arrays under ``gradguard run`` (or those a data set only slices and batches).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from gradguard import tokens as tokens_lib
from gradguard.findings import Finding

__all__ = ["findings"]

MIN_ZEROS = 32  # 0s to see before judging where they are
# Padding is a run of 0s per padded sequence: one, or two for two sequences padded and joined
# (a question and its answer); a real token 0 recurs wherever the sequence holds it.
PADDING_RUNS = 2
PADDED = 0.5  # share of the rows with 0s that hold them as padding does
FIELD_EDGES = 0.95  # share of the runs of 0s that start (or end) on a few shared columns


def findings(model: Any, x: Any, step: int) -> list[Finding]:
    """`zero-token-masked` for the token inputs of `x` whose masking embedding hides tokens."""
    found = []
    for layer, name, array in tokens_lib.fed_layers(model, x, _masks_zero):
        if array.ndim != 2 or not tokens_lib.is_tokens(array):
            continue
        zeros = array == 0
        count = int(zeros.sum())
        if count < MIN_ZEROS or _fields_padded(zeros):
            continue
        # (a lone 0 inside a row is a token: padding between two sequences pads the first)
        lone = (zeros[:, 1:-1] & ~zeros[:, :-2] & ~zeros[:, 2:]).any(axis=1)
        runs = tokens_lib.runs(zeros)
        padded = float(np.mean(((runs <= PADDING_RUNS) & ~lone)[runs > 0]))
        if padded >= PADDED:
            continue
        inside = 1.0 - padded
        message = (
            f"The embedding {layer.name!r} masks id 0 (mask_zero=True) as padding, but in its "
            f"input {name} 0 is a real token: {inside:.0%} of the rows with 0s hold a lone 0 "
            f"inside, or three runs or more ({count / zeros.size:.0%} of all positions), where "
            "padding makes one run (two for two padded sequences joined). Every occurrence of "
            "that token is hidden from the layers "
            "after it. Number the tokens from 1 (ids + 1, input_dim + 1) to keep 0 for "
            "padding, or set mask_zero=False when nothing is padded."
        )
        details = {"layer": layer.name, "input": name, "inside": inside, "zeros": count}
        found.append(Finding("zero-token-masked", message, step, details=details))
    return found


def _fields_padded(zeros: np.ndarray) -> bool:
    """Whether the runs of 0s start, or end, on as few columns as a row has runs.

    So do fields of fixed length each padded, then joined (however many); a real 0 falls anywhere.
    """
    fields = int(tokens_lib.runs(zeros).max())
    before = np.pad(zeros, ((0, 0), (1, 0)))[:, :-1]  # (the left neighbour is a 0)
    after = np.pad(zeros, ((0, 0), (0, 1)))[:, 1:]
    for edges in (zeros & ~before, zeros & ~after):  # (the runs' first and last columns)
        columns = np.bincount(np.nonzero(edges)[1], minlength=zeros.shape[1])
        if np.sort(columns)[::-1][:fields].sum() >= FIELD_EDGES * columns.sum():
            return True
    return False


def _masks_zero(layer: Any) -> bool:
    return isinstance(layer, keras.layers.Embedding) and getattr(layer, "mask_zero", False)
