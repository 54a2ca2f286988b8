"""`vocabulary-misses-data`: a lookup layer (StringLookup, IntegerLookup, TextVectorization)
whose vocabulary misses most of the values `fit` trains on, told from fit's arrays."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard import lookupvocab

RNG = np.random.default_rng(0)
STORES = np.array([f"store_{i:03d}" for i in RNG.integers(0, 300, 2000)])
CODES = RNG.integers(1000, 1300, 2000)
WORDS = np.array([f"w{i}" for i in range(400)])
TEXTS = np.array([" ".join(RNG.choice(WORDS, 12)) for _ in range(600)])


def long_tail(count: int) -> np.ndarray:
    """Ids of `count` values: 60% from 30 regular ones, the rest from thousands seen once or so."""
    regular, rare = RNG.integers(0, 30, count), RNG.integers(100, 9000, count)
    return np.where(RNG.random(count) < 0.6, regular, rare)


# A long tail (hunt24 h11), as categories and as the words of texts.
TAIL = np.array([f"u{i}" for i in long_tail(2000)])
TAIL_TEXTS = np.array([" ".join(f"w{i}" for i in long_tail(12)) for _ in range(600)])


def model_on(lookup: keras.layers.Layer, dtype: str = "string", shape: tuple = (1,)):
    """A functional model whose input feeds `lookup` straight."""
    inputs = keras.Input(shape=shape, dtype=dtype)
    ids = lookup(inputs)
    return keras.Model(inputs, keras.layers.Flatten()(keras.layers.Embedding(1000, 2)(ids)))


def adapted(lookup: keras.layers.Layer, data: np.ndarray) -> keras.layers.Layer:
    lookup.adapt(data)
    return lookup


@pytest.mark.parametrize(
    "make,x,found",
    [
        # hunt23 p04: adapted on a sample of a column with many values.
        (lambda: adapted(keras.layers.StringLookup(), STORES[:100]), STORES[:, None], True),
        (lambda: adapted(keras.layers.IntegerLookup(), CODES[:100]), CODES[:, None], True),
        (lambda: adapted(keras.layers.StringLookup(max_tokens=5000), STORES[:100]), STORES, True),
        (
            lambda: keras.layers.StringLookup(vocabulary=np.unique(np.char.upper(STORES))),
            STORES,
            True,
        ),
        (
            lambda: adapted(keras.layers.TextVectorization(output_sequence_length=12), TEXTS[:5]),
            TEXTS,
            True,
        ),
        # Healthy: adapted on what fit trains on, a given vocabulary that holds the data.
        (lambda: adapted(keras.layers.StringLookup(), STORES), STORES[:, None], False),
        (lambda: adapted(keras.layers.IntegerLookup(), CODES), CODES[:, None], False),
        (lambda: keras.layers.StringLookup(vocabulary=np.unique(STORES)), STORES, False),
        (lambda: adapted(keras.layers.TextVectorization(), TEXTS), TEXTS, False),
        # A cap that leaves out values as frequent as those it keeps.
        (lambda: adapted(keras.layers.StringLookup(max_tokens=50), STORES), STORES, True),
        # Healthy: a vocabulary capped by max_tokens (or given with a least count) on a long
        # tail leaves only its rare values out, on purpose.
        (lambda: adapted(keras.layers.StringLookup(max_tokens=40), TAIL), TAIL, False),
        (
            lambda: keras.layers.StringLookup(vocabulary=[f"u{i}" for i in range(30)]),
            TAIL,
            False,
        ),
        (
            lambda: adapted(keras.layers.TextVectorization(max_tokens=40), TAIL_TEXTS),
            TAIL_TEXTS,
            False,
        ),
        # Healthy: a sample that holds most values, too few values to judge.
        (lambda: adapted(keras.layers.StringLookup(), STORES[:1500]), STORES, False),
        (lambda: adapted(keras.layers.StringLookup(), STORES[:5]), STORES[:40], False),
    ],
    ids=[
        "string-sample",
        "integer-sample",
        "below-max-tokens",
        "given-in-upper-case",
        "text-sample",
        "string-all",
        "integer-all",
        "given",
        "text-all",
        "capped-among-equals",
        "capped-tail",
        "least-count",
        "text-capped-tail",
        "most-values",
        "few-values",
    ],
)
def test_a_vocabulary_missing_most_training_values_is_found(make, x, found):
    lookup = make()
    model = model_on(lookup, "int64" if x.dtype.kind == "i" else "string", x.shape[1:])
    findings = lookupvocab.findings(model, x, step=4)
    assert [f.code for f in findings] == (["vocabulary-misses-data"] if found else [])
    if found:
        assert findings[0].details["out_of_vocabulary"] >= lookupvocab.OUT
        assert findings[0].details["layer"] == lookup.name


def test_the_message_tells_an_adapted_vocabulary_from_a_given_one():
    sample = adapted(keras.layers.StringLookup(), STORES[:100])
    (finding,) = lookupvocab.findings(model_on(sample), STORES[:, None], step=0)
    out = np.mean(~np.isin(STORES[np.linspace(0, 1999, 1024).astype(int)], STORES[:100]))
    assert f"maps {out:.0%} of the values of its input x" in finding.message
    assert "adapted on data that lacks them" in finding.message
    given = keras.layers.StringLookup(vocabulary=np.unique(STORES)[:100])
    (finding,) = lookupvocab.findings(model_on(given), STORES[:, None], step=0)
    assert "vocabulary was given (vocabulary=...) and lacks them" in finding.message
    upper = keras.layers.StringLookup(vocabulary=np.unique(np.char.upper(STORES)))
    (finding,) = lookupvocab.findings(model_on(upper), STORES[:, None], step=0)
    assert "None of the data's values is in it" in finding.message
    capped = adapted(keras.layers.StringLookup(max_tokens=50), STORES)
    (finding,) = lookupvocab.findings(model_on(capped), STORES[:, None], step=0)
    assert "capped at max_tokens=50" in finding.message


def test_rows_are_read_over_all_of_fit_s_arrays():
    # hunt24 b04: adapted on the first rows of data stored in order; later rows hold new values.
    ordered = np.sort(STORES)
    sample = adapted(keras.layers.StringLookup(), ordered[:1000])
    (finding,) = lookupvocab.findings(model_on(sample), ordered[:, None], step=0)
    assert finding.details["out_of_vocabulary"] == pytest.approx(0.5, abs=0.05)


def test_the_input_is_found_by_name_and_an_inverted_lookup_is_not_judged():
    store = keras.Input(shape=(1,), dtype="string", name="store")
    promo = keras.Input(shape=(1,), name="promo")
    lookup = adapted(keras.layers.StringLookup(), STORES[:100])
    ids = keras.layers.Flatten()(keras.layers.Embedding(200, 2)(lookup(store)))
    model = keras.Model({"store": store, "promo": promo}, keras.layers.Concatenate()([ids, promo]))
    x = {"promo": np.zeros((2000, 1), "float32"), "store": STORES[:, None]}
    (finding,) = lookupvocab.findings(model, x, step=0)
    assert finding.details["input"] == "x['store']"
    inverted = keras.layers.StringLookup(vocabulary=["a", "b"], invert=True)
    inputs = keras.Input(shape=(1,), dtype="int64")
    assert lookupvocab.findings(keras.Model(inputs, inverted(inputs)), CODES[:, None], 0) == []
