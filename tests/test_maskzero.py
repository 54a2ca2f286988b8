"""An embedding masking id 0 where 0 is a real token (`maskzero`, `zero-token-masked`): bases
numbered 0..3 are found, from `TrainStep`'s first batch and from `fit`'s arrays under run;
bases numbered from 1, padded sentences (at the start or the end, or two joined), no mask,
and a padded input beside an unpadded one stay silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness import findings_through

from gradguard import maskzero

T = 24


def _sequences(tokens: str, n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """`n` sequences of T ids, labelled by whether id 1 outnumbers id 2."""
    rng = np.random.default_rng(6)
    x = rng.integers(0, 4, size=(n, T))  # bases A, C, G, T as 0..3
    y = ((x == 1).sum(1) > (x == 2).sum(1)).astype("float32")
    if tokens == "from-1":
        x = x + 1
    elif tokens.startswith("padded"):  # sentences of 8..T tokens numbered from 1, then padded
        lengths = rng.integers(8, T + 1, size=n)
        keep = np.arange(T) < lengths[:, None]
        x = np.where(keep, x + 1, 0)
        x = (
            x
            if tokens == "padded-post"
            else np.stack([np.roll(r, T - k) for r, k in zip(x, lengths)])
        )
    elif tokens == "joined":  # a question and its answer, each padded after, then joined
        half = _sequences("padded-post", n)[0][:, : T // 2]
        x = np.concatenate([half, np.roll(half, 1, axis=0)], axis=1)
    elif tokens == "three-fields":  # three fields of 8, each padded after (one 0 or more)
        rng = np.random.default_rng(7)
        lengths = rng.integers(3, 8, size=(n, 3))  # (7 of 8: a lone 0 ends the field)
        fields = [np.where(np.arange(8) < k[:, None], x[:, :8] + 1, 0) for k in lengths.T]
        x = np.concatenate(fields, axis=1)
    return x.astype("int32"), y


def _model(mask_zero: bool = True, second_input: bool = False) -> keras.Model:
    tokens = keras.Input((T,), dtype="int32", name="tokens")
    hidden = keras.layers.Embedding(5, 8, mask_zero=mask_zero, name="bases")(tokens)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    inputs = [tokens]
    if second_input:  # padded positions of another kind, read by a layer that masks nothing
        other = keras.Input((T,), dtype="int32", name="other")
        inputs.append(other)
        pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(5, 8)(other))
        hidden = keras.layers.Concatenate()([hidden, pooled])
    keras.utils.set_random_seed(6)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


@pytest.mark.parametrize(
    "case",
    [
        "from-0",
        "from-1",
        "padded-pre",
        "padded-post",
        "joined",
        "three-fields",
        "no-mask",
        "two-inputs",
    ],
)
def test_an_embedding_masking_a_real_token_0_is_found(case):
    x, _ = _sequences("from-0" if case in ("no-mask", "two-inputs") else case)
    model = _model(mask_zero=case != "no-mask", second_input=case == "two-inputs")
    if case == "two-inputs":  # the masked input padded; the unmasked one holds 0s inside
        x = [_sequences("padded-post")[0], x]
    found = maskzero.findings(model, x, step=3)
    assert bool(found) == (case == "from-0"), found
    if found:
        assert found[0].code == "zero-token-masked" and found[0].step == 3
        assert "'bases' masks id 0" in found[0].message, found[0].message
        assert "input x 0 is a real token" in found[0].message
        assert found[0].details["inside"] > 0.9  # (a row's lone 0 may sit at an edge)


@pytest.mark.parametrize("entry", ["train_step", "run"])
@pytest.mark.parametrize("tokens", ["from-0", "padded-pre"])
def test_a_masked_token_0_is_found_at_the_first_batch_or_fits_start(entry, tokens):
    x, y = _sequences(tokens)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    findings = findings_through(entry, _model(), loss, x, y)
    codes = [f.code for f in findings]
    assert ("zero-token-masked" in codes) == (tokens == "from-0"), codes
