"""`sample-weights-misaligned`: class-balancing `sample_weight` left in another order than the
labels `fit` is given (computed, then x and y permuted without it)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import fit_batches, weightorder

RNG = np.random.default_rng(0)
# 5% positives; the examples of each class in a random order.
LABELS = (RNG.random(3000) < 0.05).astype("float32")
PERM = RNG.permutation(3000)
THREE = RNG.choice(3, size=3000, p=[0.6, 0.3, 0.1])
# A group with about as many members as LABELS has positives, drawn apart from them.
GROUP = np.isin(np.arange(3000), RNG.choice(3000, int(LABELS.sum()) + 9, replace=False))


def balanced(y: np.ndarray) -> np.ndarray:
    """sklearn's "balanced" weight of each example's class: n / (n_classes * count)."""
    ids = y.astype(int)
    counts = np.bincount(ids)
    return (len(ids) / (len(counts) * counts))[ids]


@pytest.mark.parametrize(
    "y,weights,split,found",
    [
        (LABELS[PERM], balanced(LABELS), 0.0, True),  # hunt23 p13: x, y permuted, w not
        (LABELS[PERM][:2000], balanced(LABELS)[:2000], 0.0, True),  # ... then sliced
        (THREE[PERM], balanced(THREE), 0.0, True),
        (np.eye(3)[THREE[PERM]], balanced(THREE), 0.0, True),  # one-hot labels
        (LABELS[PERM], balanced(LABELS)[:, None], 0.0, True),  # a weight per row, (n, 1)
        (np.sort(LABELS), balanced(LABELS), 0.0, True),  # the labels sorted, the weights not
        (LABELS[PERM], balanced(LABELS), 0.2, True),
        # Healthy: weights that follow the labels (permuted with them, or given as computed).
        (LABELS[PERM], balanced(LABELS)[PERM], 0.0, False),
        (THREE, balanced(THREE), 0.2, False),
        (LABELS[PERM], 3.0 * balanced(LABELS)[PERM], 0.0, False),
        # Healthy: weights for something else than the classes.
        (LABELS, np.linspace(0.1, 1.0, 3000), 0.0, False),  # recency: many values
        (LABELS, balanced((RNG.random(3000) < 0.3).astype(int)), 0.0, False),  # a group's balance
        (LABELS, balanced(GROUP), 0.0, False),  # hunt24 h13: a group about as large as a class
        (LABELS, (RNG.random(3000) < 0.95).astype("float32"), 0.0, False),  # a 0/1 mask
        (LABELS, np.ones(3000), 0.0, False),
        (np.arange(3000) % 2, balanced(LABELS), 0.0, False),  # balanced classes
        # Not judged: soft labels, weights of another shape, not finite.
        (LABELS + 0.5, balanced(LABELS), 0.0, False),
        (LABELS[PERM], balanced(LABELS)[:100], 0.0, False),
        (LABELS[PERM], np.where(balanced(LABELS) > 1, np.nan, 1.0), 0.0, False),
    ],
    ids=[
        "permuted",
        "permuted-then-sliced",
        "three-classes",
        "one-hot",
        "column",
        "sorted",
        "validation-split",
        "permuted-together",
        "as-computed",
        "scaled",
        "recency",
        "group-balance",
        "group-as-large-as-a-class",
        "mask",
        "ones",
        "balanced-classes",
        "soft-labels",
        "other-shape",
        "not-finite",
    ],
)
def test_balancing_weights_in_another_order_than_the_labels(y, weights, split, found):
    arguments = {"y": y, "sample_weight": weights, "validation_split": split}
    findings = weightorder.shuffled_apart(arguments, step=3)
    assert [f.code for f in findings] == (["sample-weights-misaligned"] if found else [])
    if found:
        assert findings[0].step == 3
        assert findings[0].details["between_share"] < weightorder.FOLLOWS
        assert "w[perm]" in findings[0].message


def test_the_message_names_the_rare_class_and_its_weight():
    y, weights = LABELS[PERM], balanced(LABELS)
    (finding,) = weightorder.shuffled_apart({"y": y, "sample_weight": weights}, step=0)
    heaviest, rare = weights.max(), int(np.sum(LABELS))
    assert f"{heaviest:.3g} on {rare} examples, as class 1 has {rare}" in finding.message
    held = np.mean(weights[y == 1] == heaviest)
    assert f"only {held:.0%} of class 1's examples weigh {heaviest:.3g}" in finding.message


def test_a_data_set_of_arrays_and_weights_is_judged_from_its_first_rows():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    x = np.zeros((3000, 2), "float32")
    for weights, found in ((balanced(LABELS), True), (balanced(LABELS)[PERM], False)):
        data = tf.data.Dataset.from_tensor_slices((x, LABELS[PERM], weights))
        findings = fit_batches.FitBatches().given(model, {"x": data.shuffle(64).batch(32)}, 0)
        codes = [f.code for f in findings]
        assert ("sample-weights-misaligned" in codes) == found, codes
