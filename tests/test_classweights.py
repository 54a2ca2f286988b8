"""fit's weights judged: `class-weights-inverted` (a class_weight that favours the frequent
classes), `class-weights-misnumbered` (one keyed one class id above the labels) and
`labels-uninformative` (a sample_weight non-zero on one label's examples only)."""

from __future__ import annotations

import numpy as np
import pytest

from gradguard import classweights, lossmask

# 900 examples of class 0, 100 of class 1 (and one-hot rows of the same).
IMBALANCED = np.array([0] * 900 + [1] * 100)
ONE_HOT = np.eye(2, dtype="float32")[IMBALANCED]
THREE = np.array([0] * 700 + [1] * 200 + [2] * 100)


@pytest.mark.parametrize(
    "y,class_weight,split,found",
    [
        (IMBALANCED, {0: 0.9, 1: 0.1}, 0.0, True),  # count / total: the imbalance squared
        (ONE_HOT, {0: 0.9, 1: 0.1}, 0.0, True),
        (IMBALANCED[:, None], {0: 9.0}, 0.0, True),  # a class left out weighs 1
        (THREE, {0: 0.7, 1: 0.2, 2: 0.1}, 0.0, True),
        (IMBALANCED, {0: 1000 / (2 * 100), 1: 1000 / (2 * 900)}, 0.0, True),  # swapped
        # Healthy: "balanced" (total / (n_classes * count)), a milder up-weighting of the rare
        # class, weights on balanced data, and a rare class a third of the way that stays
        # near its share.
        (IMBALANCED, {0: 1000 / (2 * 900), 1: 1000 / (2 * 100)}, 0.0, False),
        (IMBALANCED, {0: 1.0, 1: 3.0}, 0.0, False),
        (np.array([0, 1] * 500), {0: 4.0, 1: 1.0}, 0.0, False),
        (IMBALANCED, {0: 1.2, 1: 1.0}, 0.0, False),
        (THREE, {0: 1.0, 1: 2.0, 2: 4.0}, 0.0, False),
        # hunt14: cost-sensitive, a false positive costing 4 times a miss (counts 3:1).
        (np.array([0] * 750 + [1] * 250), {0: 4.0, 1: 1.0}, 0.0, False),
        # Not judged: no class_weight, labels that are not class ids.
        (IMBALANCED, None, 0.0, False),
        (IMBALANCED.astype("float32") + 0.5, {0: 0.9, 1: 0.1}, 0.0, False),
        (np.array(["a", "b"] * 10), {0: 0.9, 1: 0.1}, 0.0, False),
    ],
    ids=[
        "proportional",
        "one-hot",
        "left-out",
        "three-classes",
        "balanced-swapped",
        "balanced",
        "rare-up-weighted",
        "balanced-data",
        "mild",
        "three-classes-inverse",
        "cost-sensitive",
        "no-weights",
        "soft-labels",
        "strings",
    ],
)
def test_class_weights_that_favour_the_frequent_classes(y, class_weight, split, found):
    arguments = {"y": y, "class_weight": class_weight, "validation_split": split}
    findings = classweights.inverted(arguments, step=7)
    assert [f.code for f in findings] == (["class-weights-inverted"] if found else [])
    if found:
        (finding,) = findings
        assert finding.step == 7 and 'compute_class_weight("balanced")' in finding.message
        assert finding.details["weighted_shares"][-1] < classweights.SHRUNK * 0.1


def test_the_validation_split_is_left_out_of_the_counts():
    # The training part (the first 80%) is 900:100; with the split's last 250 examples (all
    # class 1) counted too, 900:350 is under 3:1 and not judged.
    y = np.array([0] * 900 + [1] * 350)
    arguments = {"y": y, "class_weight": {0: 0.9, 1: 0.1}}
    assert classweights.inverted({**arguments, "validation_split": 0.2}, 0)
    assert not classweights.inverted({**arguments, "validation_split": 0.0}, 0)


def _balanced(labels, classes):
    """sklearn's "balanced" weights of `classes`, counted on `labels`: total / (n * count)."""
    counts = np.array([np.sum(labels == c) for c in classes])
    return len(labels) / (len(classes) * np.maximum(counts, 1)) * (counts > 0)


# 3 classes, 20% / 50% / 30% (2.5:1, below `inverted`'s imbalance), numbered from 0; and 2.
RAW = np.array([1] * 200 + [2] * 500 + [3] * 300)
BINARY_RAW = np.array([1] * 800 + [2] * 200)


@pytest.mark.parametrize(
    "raw,class_weight,outputs,found",
    [
        # Counted on the raw ids: a bincount's (key 0 weighs 0), or keyed by the raw ids
        # (class 0 left out: it weighs 1); a sigmoid's two classes.
        (RAW, dict(enumerate(_balanced(RAW, range(4)))), 3, True),
        (RAW, dict(zip(range(1, 4), _balanced(RAW, range(1, 4)))), 3, True),
        (BINARY_RAW, dict(enumerate(_balanced(BINARY_RAW, range(3)))), 1, True),
        # Healthy: keyed by the labels; a fourth class the model can output, absent from this
        # data; a dict for 5 classes given to a 3-class model; costs one above the labels.
        (RAW, dict(enumerate(_balanced(RAW - 1, range(3)))), 3, False),
        (RAW, dict(enumerate(_balanced(np.append(RAW - 1, [3] * 50), range(4)))), 4, False),
        (RAW, dict(enumerate(_balanced(np.append(RAW - 1, [3, 4] * 50), range(5)))), 3, False),
        (RAW, {0: 1.0, 1: 2.0, 2: 1.0, 3: 1.0}, 3, False),
        (RAW, dict(enumerate(_balanced(RAW, range(4)))), None, False),  # (outputs not read)
    ],
    ids=[
        "bincount",
        "raw-keys",
        "sigmoid",
        "keyed-by-labels",
        "absent-class",
        "more-classes",
        "costs",
        "unknown-outputs",
    ],
)
def test_class_weights_keyed_one_above_the_labels(raw, class_weight, outputs, found):
    labels = raw - 1
    findings = classweights.misnumbered({"y": labels, "class_weight": class_weight}, outputs, 7)
    assert [f.code for f in findings] == (["class-weights-misnumbered"] if found else [])
    if found:
        (finding,) = findings
        counts = np.bincount(labels)
        assert finding.details["classes"] == list(range(len(counts)))
        meant_mass = np.array(finding.details["meant"]) * counts  # the weights one key up
        np.testing.assert_allclose(meant_mass, meant_mass[0])  # are balanced
        assert f"class 0 ({counts[0] / len(labels):.0%} of the examples)" in finding.message


# Sequences of 6 tokens, the last 2 padding (label 0); the real tokens' labels are 1 to 3.
TOKENS = np.tile(np.array([1, 2, 3, 1, 0, 0]), (50, 1))


@pytest.mark.parametrize(
    "y,sample_weight,split,found",
    [
        (TOKENS, (TOKENS == 0).astype("float32"), 0.0, True),  # the padding kept
        (TOKENS[..., None], (TOKENS == 0).astype("float32"), 0.0, True),  # labels (n, T, 1)
        (IMBALANCED, (IMBALANCED == 1).astype("float32"), 0.0, True),  # only the positives
        (ONE_HOT, (IMBALANCED == 1).astype("float32"), 0.0, True),
        (TOKENS, (TOKENS != 0).astype("float32"), 0.0, False),  # the padding dropped
        (TOKENS, np.ones(TOKENS.shape, "float32"), 0.0, False),
        (THREE, np.where(THREE == 2, 0.0, 1.0), 0.0, False),  # one class left out, two kept
        (IMBALANCED, np.where(IMBALANCED == 0, 0.2, 1.8), 0.0, False),  # balanced by weights
        # Fewer than a tenth of the labels left out (one outlier dropped): not judged.
        (np.array([0] * 99 + [1]), np.array([1.0] * 99 + [0.0]), 0.0, False),
        # The examples kept of label 1 are all in the held-out split: the training part is 0s
        # only, weighted 0 (nothing kept, nothing to say).
        (np.array([1] * 80 + [0] * 20), np.array([0.0] * 80 + [1.0] * 20), 0.2, False),
        (TOKENS * 0.5, (TOKENS == 0).astype("float32"), 0.0, False),  # a regression's targets
    ],
)
def test_sample_weights_that_keep_one_label(y, sample_weight, split, found):
    arguments = {"y": y, "sample_weight": sample_weight, "validation_split": split}
    finding = lossmask.fit_weights_keep_one_label(arguments, 7)
    assert (finding is not None) == found
    if found:
        assert finding.code == "labels-uninformative" and finding.step == 7
        label = finding.details["label"]
        assert f"sample_weight=(y != {label})" in finding.message
