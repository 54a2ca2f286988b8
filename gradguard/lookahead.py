"""A model trained on next-token labels that sees the tokens ahead (`future-tokens-visible`).

A language model (or a teacher-forced decoder) learns each position's next token from the
tokens up to it: its labels are its input shifted one step (``x = seq[:, :-1], y = seq[:,
1:]``). Attention without a causal mask (`MultiHeadAttention(h, h)` with no
``use_causal_mask=True``), a bidirectional RNN or a centred convolution lets each position read
the next input token, which is its own label: the training loss falls towards 0 and the
teacher-forced accuracy towards 1, while generation, which sees only the prefix, is poor (a
two-block transformer: 0.13 of the next tokens right from the prefix, against 0.81 with the
mask). Nothing fails.

Told once on the host, from the first batch as `tokenlabels` is (`TrainStep`'s first batch, or
`fit`'s arrays under ``gradguard run``): an input of token ids whose tokens, one step later, are
the labels (`tokens.next_tokens`); the model is called in inference mode on a few of those
rows, and again with each row's last token changed, and its outputs at the positions before
must not change. Silent for causal models (a causal mask, a one-way RNN, a causal
convolution), a prefix language model (its prompt read both ways, the rest causally: no
earlier position sees the last token), labels that are not the next tokens (a masked language
model's, tags), models with a stateful layer (a call would move its state) and models not
built yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from gradguard import tokens as tokens_lib
from gradguard.findings import Finding
from gradguard.statefulshuffle import stateful_layers

__all__ = ["findings"]

ROWS = 8  # rows the model is called on, twice
CHANGED = 1e-4  # an output this much (relative to its largest) apart has read what changed


def findings(model: Any, x: Any, y: Any, step: int) -> list[Finding]:
    """`future-tokens-visible` for a model fed `x` with labels `y` (a batch, or fit's arrays)."""
    labels = tokens_lib.label_tokens(y)
    if labels is None or not getattr(model, "built", False) or stateful_layers(model):
        return []
    for name, tokens, _ in tokens_lib.named_inputs(model, x):
        if tokens.shape == labels.shape and tokens_lib.is_tokens(tokens):
            if tokens_lib.next_tokens(tokens, labels) and _sees_ahead(
                model, x, name, tokens[:ROWS]
            ):
                return [_finding(model, name, step)]
    return []


def _sees_ahead(model: Any, x: Any, name: str, tokens: np.ndarray) -> bool:
    """Whether `model`'s outputs before each row's last token change when only that one does.

    The last token: one no earlier position may see, in a causal model and in a prefix language
    model (whose prompt positions see each other) alike.
    """
    real = tokens != 0
    rows = np.flatnonzero(real.any(axis=1))
    last = tokens.shape[1] - 1 - np.argmax(real[rows, ::-1], axis=1)
    changed = tokens.copy()
    changed[rows, last] = tokens[rows, last] % tokens.max() + 1  # another of the same ids
    earlier = np.zeros(tokens.shape, bool)
    earlier[rows] = np.arange(tokens.shape[1]) < last[:, None]
    inputs = [tokens_lib.rows_with(x, name, t) for t in (tokens, changed)]
    if inputs[0] is None or not earlier.any():
        return False
    try:
        outputs = [tf.nest.flatten(model(given, training=False)) for given in inputs]
    except Exception as e:  # noqa: BLE001 - a model that cannot be called so: the script goes on
        logging.warning("gradguard: could not call %s on a few rows: %s", model.name, e)
        return False
    for before, after in zip(*outputs):
        before, after = np.asarray(before), np.asarray(after)
        if before.ndim < 2 or before.shape[:2] != tokens.shape:
            continue  # (not one output per position)
        scale = max(float(np.max(np.abs(before[earlier]))), 1e-6)
        if np.max(np.abs(after - before)[earlier]) > CHANGED * scale:
            return True
    return False


def _finding(model: Any, name: str, step: int) -> Finding:
    return Finding(
        "future-tokens-visible",
        f"The labels are the next tokens of the input {name} (a language model's, or a "
        f"teacher-forced decoder's), but model {model.name!r} sees ahead: its outputs at "
        "earlier positions change when only each row's last token does. Each position can "
        "read its own label from the next input token, so the training loss falls to about 0 "
        "while generation, which sees only the prefix, fails. Mask the future: "
        "MultiHeadAttention(...)(h, h, use_causal_mask=True), a one-way RNN (not "
        "Bidirectional), Conv1D(..., padding='causal').",
        step,
        details={"input": name},
    )
