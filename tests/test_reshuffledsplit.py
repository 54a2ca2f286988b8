"""`split-reshuffled`: fit's training and validation data sets split (take, skip, shard) after a
shuffle that reshuffles every epoch; a split before the shuffle, or of a shuffle told not to
reshuffle, is silent. `predictions-reshuffled`: predict given a data set that reshuffles every
pass; arrays, unshuffled, shuffled-once or cached data sets, and evaluate, are silent. Judged
from real `tf.data` pipelines; `fit` and `predict` themselves in the corpus."""

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


@pytest.mark.parametrize(
    "given, call, found",
    [
        (lambda: _DATA.shuffle(100).batch(10), "predict", True),  # tensorflow#57636
        (lambda: _DATA.shuffle(100, seed=1).batch(10).take(5), "predict", True),
        (lambda: _DATA.shuffle(100).batch(10).prefetch(2), "predict", True),
        (lambda: tf.keras.utils.image_dataset_from_directory, "predict", None),  # (below)
        (lambda: _DATA.batch(10), "predict", False),
        (lambda: _DATA.shuffle(100, reshuffle_each_iteration=False).batch(10), "predict", False),
        (lambda: _DATA.shuffle(100).cache().batch(10), "predict", False),
        (lambda: _DATA.shuffle(100).batch(10), "evaluate", False),
        (lambda: np.arange(100.0), "predict", False),
    ],
    ids=[
        "reshuffled",
        "seeded-reshuffle-taken",
        "reshuffled-prefetched",
        "image-directory",
        "unshuffled",
        "shuffled-once",
        "cached-after-the-shuffle",
        "evaluate",
        "arrays",
    ],
)
def test_predict_given_a_data_set_that_reshuffles_every_pass_is_found(given, call, found, tmp_path):
    if found is None:  # image_dataset_from_directory shuffles every pass unless told not to
        for label in ("a", "b"):
            (tmp_path / label).mkdir()
            for i in range(3):
                tf.io.write_file(
                    str(tmp_path / label / f"{i}.png"),
                    tf.io.encode_png(tf.zeros([4, 4, 1], "uint8")),
                )
        for shuffle in (True, False):
            data = given()(str(tmp_path), image_size=(4, 4), batch_size=2, shuffle=shuffle)
            codes = [f.code for f in reshuffledsplit.predicted("predict", data, step=3)]
            assert codes == (["predictions-reshuffled"] if shuffle else [])
        return
    codes = [f.code for f in reshuffledsplit.predicted(call, given(), step=3)]
    assert codes == (["predictions-reshuffled"] if found else [])
