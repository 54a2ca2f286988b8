"""A lookup whose vocabulary misses most values `fit` trains on (`vocabulary-misses-data`).

`StringLookup`, `IntegerLookup` and `TextVectorization` map every value missing from their
vocabulary to one out-of-vocabulary index (``[UNK]``). Adapted on a sample of the data (or on
another split, or given a vocabulary spelled otherwise than the data: another case, ints
against strings), most of the training values land there, the embedding after the lookup sees
one id for all of them, and the model cannot tell them apart (a store's effect unlearnable:
test MSE 0.80 against 0.05). Nothing fails.

Taken: a lookup fed straight by one of the model's inputs that maps `OUT` or more of
`MIN_VALUES` or more values, in 1,024 of `fit`'s rows spread over its arrays (data may be
stored in order: a vocabulary adapted on the first rows holds them), to its out-of-vocabulary
index, where the values it misses are about as frequent as those it holds. A vocabulary that
leaves out only the rare values (capped by `max_tokens` on a long tail, or given with a least
count) does so on purpose, and is not judged; nor is an inverted lookup (ids to values). Told
once from the data on the host, as `fit` starts under ``gradguard run`` (its arrays, or the
first rows of those a data set only slices and batches).
"""

from __future__ import annotations

import collections
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import tokens as tokens_lib
from gradguard.findings import Finding

__all__ = ["MIN_VALUES", "OUT", "RARER", "findings"]

OUT = 0.3  # share of the training values out of vocabulary (0 when adapted on them)
RARER = 0.5  # values left out this much rarer than those kept: a cut of the rare ones
MIN_VALUES = 64  # values to see before judging
_LOOKUPS = (keras.layers.StringLookup, keras.layers.IntegerLookup, keras.layers.TextVectorization)


def findings(model: Any, x: Any, step: int) -> list[Finding]:
    """`vocabulary-misses-data` for the lookups of `model` fed by inputs of `x` they miss."""
    fed = tokens_lib.fed_layers(model, x, _reads, spread=True)
    found = [_judge(layer, name, array, step) for layer, name, array in fed]
    return [finding for finding in found if finding is not None]


def _reads(layer: Any) -> bool:
    return isinstance(layer, _LOOKUPS) and not getattr(layer, "invert", False)


def _judge(layer: Any, name: str, array: np.ndarray, step: int) -> Finding | None:
    index = getattr(layer, "_lookup_layer", layer)  # (TextVectorization's own StringLookup)
    try:
        size, vocabulary = index.vocabulary_size(), index.get_vocabulary(False)
        values = _values(layer, array)
    except (AttributeError, TypeError, ValueError, tf.errors.OpError):
        return None  # (not adapted yet, or inputs the layer cannot read)
    if getattr(index, "num_oov_indices", 1) < 1 or len(values) < MIN_VALUES:
        return None  # (no out-of-vocabulary index: Keras raises on a missing value)
    known = {_plain(v) for v in vocabulary}
    counts = collections.Counter(values)
    missed = [count for value, count in counts.items() if value not in known]
    kept = [count for value, count in counts.items() if value in known]
    out = sum(missed) / len(values)
    if out < OUT:
        return None
    if kept and np.mean(missed) < RARER * np.mean(kept):
        return None  # (the rare values cut on purpose: max_tokens, a least count)
    capped = index.max_tokens is not None and size >= index.max_tokens
    given = getattr(index, "_has_input_vocabulary", False)
    if not kept:
        cause = (
            "None of the data's values is in it: compare its entries with them (case, "
            "spelling, ints against strings), and adapt it on the data fit trains on."
        )
    elif capped:
        cause = (
            f"Its vocabulary is capped at max_tokens={index.max_tokens}, and the values it "
            "leaves out are as frequent as those it keeps: raise max_tokens, or leave it out."
        )
    elif given:
        cause = "Its vocabulary was given (vocabulary=...) and lacks them: complete it."
    else:
        cause = (
            "It was adapted on data that lacks them (a sample, or another split): adapt it "
            "on the values fit trains on (the whole training column)."
        )
    message = (
        f"{type(layer).__name__} {layer.name!r} maps {out:.0%} of the values of its input "
        f"{name} that fit trains on to its out-of-vocabulary index: {len(missed)} of the "
        f"{len(counts)} distinct values in {len(array)} of fit's rows are not among its "
        f"{len(vocabulary)} entries, so the layers after it see one id for all of them and "
        f"cannot tell them apart. {cause}"
    )
    details = {
        "layer": layer.name,
        "input": name,
        "out_of_vocabulary": out,
        "vocabulary": len(vocabulary),
        "distinct": len(counts),
        "unseen": len(missed),
    }
    return Finding("vocabulary-misses-data", message, step, details=details)


def _values(layer: Any, array: np.ndarray) -> list[Any]:
    """The values `layer` looks up in `array` (a text's tokens), mask and padding left out."""
    if isinstance(layer, keras.layers.TextVectorization):
        split = layer._preprocess(tf.constant(array))  # (standardized and split, as in call)
        tokens = split.flat_values if isinstance(split, tf.RaggedTensor) else split
        values = [_plain(v) for v in np.asarray(tokens).ravel().tolist()]
        return [v for v in values if v != ""]
    mask = getattr(layer, "mask_token", None)
    return [v for v in map(_plain, np.asarray(array).ravel().tolist()) if v != mask]


def _plain(value: Any) -> Any:
    """A value as the vocabulary lists it: text as `str`."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
