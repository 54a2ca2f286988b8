"""`class-weights-inverted`: fit's class_weight that favours the frequent classes."""

from __future__ import annotations

import numpy as np
import pytest

from gradguard import classweights

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
        # Healthy: "balanced" (total / (n_classes * count)), a milder up-weighting of the rare
        # class, weights on balanced data, and a rare class a third of the way that stays
        # near its share.
        (IMBALANCED, {0: 1000 / (2 * 900), 1: 1000 / (2 * 100)}, 0.0, False),
        (IMBALANCED, {0: 1.0, 1: 3.0}, 0.0, False),
        (np.array([0, 1] * 500), {0: 4.0, 1: 1.0}, 0.0, False),
        (IMBALANCED, {0: 1.2, 1: 1.0}, 0.0, False),
        (THREE, {0: 1.0, 1: 2.0, 2: 4.0}, 0.0, False),
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
        "balanced",
        "rare-up-weighted",
        "balanced-data",
        "mild",
        "three-classes-inverse",
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
