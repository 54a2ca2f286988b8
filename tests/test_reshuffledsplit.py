"""`split-reshuffled`: fit's training and validation data sets split (take, skip, shard) after a
shuffle that reshuffles every epoch; a split before the shuffle, or of a shuffle told not to
reshuffle, is silent. Judged from real `tf.data` pipelines; `fit` itself in the corpus."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gradguard import reshuffledsplit

_DATA = tf.data.Dataset.from_tensor_slices((np.arange(100.0), np.arange(100) % 2))


def _take_skip(dataset):
    return dataset.take(8), dataset.skip(8)


@pytest.mark.parametrize(
    "split, found",
    [
        (lambda: _take_skip(_DATA.shuffle(100).batch(10)), True),  # tensorflow#59279
        (lambda: _take_skip(_DATA.shuffle(100, seed=1).batch(10)), True),  # (a seed: still)
        (lambda: (_DATA.shard(5, 1).shuffle(20), _DATA.shard(5, 0)), False),
        (lambda: (lambda d: (d.shard(5, 1), d.shard(5, 0)))(_DATA.shuffle(100)), True),
        (lambda: _take_skip(_DATA.shuffle(100, reshuffle_each_iteration=False).batch(10)), False),
        (lambda: (_DATA.skip(80).shuffle(80).batch(10), _DATA.take(80).batch(10)), False),
        (lambda: _take_skip(_DATA.batch(10)), False),  # (no shuffle)
        (lambda: _take_skip(_DATA.shuffle(100).cache().batch(10)), False),  # (not judged)
    ],
    ids=[
        "take-skip-after-reshuffle",
        "seeded-reshuffle",
        "sharded-then-shuffled",
        "shards-of-one-reshuffle",
        "shuffled-once",
        "split-then-shuffled",
        "unshuffled",
        "cached-after-the-shuffle",
    ],
)
def test_a_split_after_a_shuffle_redrawn_every_epoch_is_found(split, found):
    train, validation = split()
    arguments = {"x": train, "validation_data": validation}
    findings = reshuffledsplit.findings(arguments, step=3)
    assert [f.code for f in findings] == (["split-reshuffled"] if found else [])
    # Not judged without both data sets (arrays, a validation_split).
    assert not reshuffledsplit.findings({"x": train, "validation_data": None}, step=3)
