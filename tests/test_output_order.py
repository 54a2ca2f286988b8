"""Losses listed for dict outputs (`loss-misassigned`): Keras matches the lists in sorted-key
order; dicts, lists in that order, and lists whose entries are all the same stay silent. So it
does loss weights keyed by a name no output has: each output named right keeps its weight, or
not; weights keyed by the output layers' names (Keras 2's habit) are judged the same way."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from conftest import WARN_ALL

import gradguard

layers = keras.layers


def _fit(
    outputs: list[str],
    as_dict: bool = True,
    layer_names: dict[str, str] | None = None,
    targets: str | None = None,
    **compiled: Any,
) -> gradguard.Report:
    """Two regression heads, `outputs` in the order written, fit for two steps under the guard.

    Each head's layer is named as its output, or as `layer_names` says. `targets`: ``"list"``
    (each head's, in the order written) or ``"one"`` (the first head's, for each) whatever the
    outputs' structure.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    labels = {name: rng.normal(size=(64, 1)).astype("float32") for name in outputs}
    inputs = keras.Input((4,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    named = layer_names or {}
    heads = {name: layers.Dense(1, name=named.get(name, name))(hidden) for name in outputs}
    model = keras.Model(inputs, heads if as_dict else list(heads.values()))
    model.compile("adam", **compiled)
    y = labels if as_dict else list(labels.values())
    if targets is not None:
        y = list(labels.values()) if targets == "list" else [labels[outputs[0]]] * len(outputs)
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    return callback.report()


def test_targets_listed_for_dict_outputs_land_in_sorted_order():
    # Keras 3 matches fit's list of targets to dict outputs by sorted key, silently.
    report = _fit(["priority", "eta"], targets="list", loss={"priority": "mse", "eta": "mse"})
    (found,) = [f for f in report.findings if f.code == "loss-misassigned"]
    assert found.details["targets"] == "list"
    assert "'eta' trains on the targets listed first (meant for 'priority')" in found.message
    assert "fit(x, {'priority': ..., 'eta': ...})" in found.message


@pytest.mark.parametrize(
    "outputs, targets",
    [
        (["priority", "eta"], None),  # a dict of targets: matched by name
        (["priority", "eta"], "one"),  # one target for every head: any order gives the same
        (["eta", "priority"], "list"),  # written in sorted order
    ],
    ids=["dict", "one-target-for-each", "sorted"],
)
def test_targets_matched_as_written_stay_silent(outputs, targets):
    losses = {name: "mse" for name in outputs}
    report = _fit(outputs, targets=targets, loss=losses)
    assert [f for f in report.findings if f.code == "loss-misassigned"] == []


def test_loss_weights_listed_for_dict_outputs_land_in_sorted_order():
    report = _fit(["main", "aux"], loss=["mse", "mse"], loss_weights=[1.0, 0.0])
    (found,) = [f for f in report.findings if f.code == "loss-misassigned"]
    assert found.details["order"] == ["aux", "main"], found.details
    # What each output gets, as Keras matches it: the weight meant for 'main' is on 'aux'.
    assert "'aux' gets weight 1.0 and 'main' gets weight 0.0" in found.message, found.message
    assert "loss={'main': ..., 'aux': ...}" in found.message


def test_losses_listed_for_dict_outputs_name_each_outputs_loss():
    report = _fit(["main", "aux"], loss=["mae", "mse"])
    (found,) = [f for f in report.findings if f.code == "loss-misassigned"]
    assert "'aux' gets mae and 'main' gets mse" in found.message, found.message
    assert found.details["lists"] == {"loss": ["mae", "mse"]}


def test_loss_weights_keyed_by_a_name_no_output_has_land_in_sorted_order():
    losses = {"price": "mse", "dept": "mae"}
    report = _fit(["price", "dept"], loss=losses, loss_weights={"price": 1.0, "segment": 0.0})
    (found,) = [f for f in report.findings if f.code == "loss-misassigned"]
    assert found.details["landed"] == {"dept": 1.0, "price": 0.0}, found.details
    assert "'segment' names no output" in found.message, found.message
    assert "'dept' gets weight 1.0 and 'price' gets weight 0.0" in found.message


def test_loss_weights_keyed_by_the_output_layers_names_land_in_sorted_order():
    """Keras 2 matched loss weights by the output layers' names; Keras 3 by sorted position."""
    report = _fit(
        ["category", "price"],
        layer_names={"category": "label_head", "price": "amount_head"},
        loss={"category": "mse", "price": "mse"},
        loss_weights={"label_head": 1.0, "amount_head": 0.0005},
    )
    (found,) = [f for f in report.findings if f.code == "loss-misassigned"]
    assert found.details["landed"] == {"category": 0.0005, "price": 1.0}, found.details
    assert "output layers' names" in found.message, found.message


def test_loss_weights_keyed_off_take_effect_as_the_finding_says():
    """What Keras does, not what the finding assumes: the head the finding says gets weight 0
    does not move, and the one said to get 1 does (`landed`, by a real fit)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    inputs = keras.Input((4,))
    heads = {name: layers.Dense(1, name=name)(inputs) for name in ("price", "dept")}
    model = keras.Model(inputs, heads)
    model.compile(
        "sgd",
        loss={"price": "mse", "dept": "mse"},
        loss_weights={"price": 1.0, "segment": 0.0},
    )
    before = {name: model.get_layer(name).get_weights()[0].copy() for name in heads}
    labels = {name: rng.normal(size=(64, 1)).astype("float32") for name in heads}
    model.fit(x, labels, batch_size=32, epochs=1, verbose=0)
    moved = {n: bool(np.any(model.get_layer(n).get_weights()[0] != before[n])) for n in heads}
    assert moved == {"dept": True, "price": False}


@pytest.mark.parametrize(
    "outputs,as_dict,compiled",
    [
        # Matched by name.
        (["main", "aux"], True, {"loss": {"main": "mse", "aux": "mae"}}),
        (
            ["main", "aux"],
            True,
            {"loss": {"main": "mse", "aux": "mse"}, "loss_weights": {"main": 1.0, "aux": 0.0}},
        ),
        # Written in sorted order: the lists land as written.
        (["aux", "main"], True, {"loss": ["mae", "mse"], "loss_weights": [0.0, 1.0]}),
        # The same in every position: any order gives the same.
        (["main", "aux"], True, {"loss": ["mse", "mse"]}),
        # A list of outputs keeps its order.
        (["main", "aux"], False, {"loss": ["mae", "mse"], "loss_weights": [1.0, 0.0]}),
        # A weight keyed by a name no output has, but every output keeps its own.
        (
            ["price", "dept"],
            True,
            {
                "loss": {"price": "mse", "dept": "mae"},
                "loss_weights": {"price": 1.0, "department": 0.0},
            },
        ),
        # Keyed by the output layers' names, which sort as the outputs do.
        (
            ["category", "price"],
            True,
            {
                "layer_names": {"category": "a_head", "price": "b_head"},
                "loss": {"category": "mse", "price": "mae"},
                "loss_weights": {"a_head": 1.0, "b_head": 0.5},
            },
        ),
    ],
    ids=[
        "dict-losses",
        "dict-weights",
        "written-sorted",
        "same-losses",
        "list-outputs",
        "weights-keyed-off-in-place",
        "weights-keyed-by-layers-in-place",
    ],
)
def test_losses_matched_as_written_stay_silent(outputs, as_dict, compiled):
    report = _fit(outputs, as_dict, **compiled)
    assert "loss-misassigned" not in report.codes(), str(report)
