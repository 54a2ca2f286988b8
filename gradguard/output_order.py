"""Losses listed for a model whose outputs are a dict: Keras matches them in sorted-key order.

A functional model built with ``outputs={"main": ..., "aux": ...}`` orders its outputs by
sorted key (``model.output_names`` is the layers of "aux", then "main"), and `compile`'s
``loss=[...]`` and ``loss_weights=[...]`` given as lists are matched to the outputs by position
in that order, not the order the dict was written in. ``loss=["binary_crossentropy", "mse"],
loss_weights=[1.0, 0.0]`` meant for (main, aux) puts the cross-entropy with weight 1 on "aux"
and leaves "main" with weight 0, untrained; Keras neither raises nor warns, and the total loss
falls as usual.

Loss weights given as a dict are matched by name only when their keys are the losses' keys. A
key that names no output (one left from before a head was renamed) makes Keras match them by
position too, in sorted-key order: ``loss={"price": ..., "dept": ...}, loss_weights={"price":
1.0, "segment": 0.0}`` gives "dept" weight 1 and "price" weight 0, silently.

Weights keyed by the output layers' names (Keras 2 matched those) are matched the same way:
``loss_weights={"label_head": 1.0, "amount_head": 0.0005}`` for outputs "category" and "price"
made by those layers gives "category" 0.0005 and "price" 1.

Read from the model and its compile arguments when a Keras train step is traced (`fit`). Silent
for dicts written in sorted order, for losses and weights given as dicts keyed alike (matched by
name), for lists whose entries are all the same (any order gives the same result), and for
weights keyed otherwise whose outputs, named in both or by their layers, still get the weights
written for them.

`fit`'s targets given as a list for such a model land the same way (``fit(x, [y_priority,
y_eta])`` for outputs written ``{"priority": ..., "eta_days": ...}`` trains "eta_days" on the
priorities; Keras 3 neither raises nor warns, and each head learns the other's target: the
priority head's test error was 9.4 against 0.24). `ListedTargets` folds in-graph whether the
listed targets were the same in every batch (deep supervision: one target for every head, any
order gives the same), judged at reads; silent for targets given as a dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding

__all__ = ["ListedTargets", "findings", "listed_for_dict", "weights_keyed_off"]


def findings(model: Any, step: int) -> list[Finding | None]:
    """Both ways compile's losses and weights land on other outputs than written (or None)."""
    return [listed_for_dict(model, step), weights_keyed_off(model, step)]


def _name(entry: Any) -> str:
    """A loss or weight as the user wrote it: a string, a number, a function's or class's name."""
    if isinstance(entry, (str, int, float)) or entry is None:
        return str(entry)
    return str(getattr(entry, "name", None) or getattr(entry, "__name__", type(entry).__name__))


def listed_for_dict(model: Any, step: int) -> Finding | None:
    """`loss-misassigned` when list-form losses or loss weights meet dict outputs out of order.

    Args:
      model: The compiled model a Keras train step is being traced for.
      step: The step to date the finding at.
    """
    written = getattr(model, "_outputs_struct", None)
    compiled = getattr(model, "_compile_loss", None)
    if not isinstance(written, dict) or compiled is None:
        return None
    keys = list(written)
    order = sorted(keys)
    if keys == order:
        return None
    lists: dict[str, list[str]] = {}
    for argument, value in (
        ("loss", getattr(compiled, "_user_loss", None)),
        ("loss_weights", getattr(compiled, "_user_loss_weights", None)),
    ):
        if isinstance(value, (list, tuple)) and len(value) == len(keys):
            names = [_name(entry) for entry in value]
            if len(set(names)) > 1:  # the same everywhere: any order gives the same
                lists[argument] = names
    if not lists:
        return None
    given = " and ".join(f"{argument} [{', '.join(v)}]" for argument, v in lists.items())
    losses, weights = lists.get("loss"), lists.get("loss_weights")
    landed = " and ".join(
        f"{key!r} gets "
        + " with ".join(
            ([losses[i]] if losses else []) + ([f"weight {weights[i]}"] if weights else [])
        )
        for i, key in enumerate(order)
    )
    message = (
        f"compile's {given} are lists, and the model's outputs a dict written in the order "
        f"{keys}: Keras matches lists to outputs by position in sorted-key order, {order}, so "
        f"{landed}, not as the written order says. Pass dicts keyed by output name "
        f"(loss={{{keys[0]!r}: ..., {keys[1]!r}: ...}}), which Keras matches by name."
    )
    details = {"written": keys, "order": order, "lists": lists}
    return Finding("loss-misassigned", message, step, details=details)


def weights_keyed_off(model: Any, step: int) -> Finding | None:
    """`loss-misassigned` when loss weights keyed otherwise than the losses move a weight.

    Both dicts, for a model with dict outputs; a weight moved off an output named in both.
    """
    compiled = getattr(model, "_compile_loss", None)
    losses = getattr(compiled, "_user_loss", None)
    weights = getattr(compiled, "_user_loss_weights", None)
    if not isinstance(getattr(model, "_outputs_struct", None), dict):
        return None
    if not isinstance(losses, dict) or not isinstance(weights, dict):
        return None
    if set(losses) == set(weights) or len(losses) != len(weights):
        return None  # (matched by name; Keras raises on another count)
    # Keras flattens both by sorted key and pairs them by position.
    landed = dict(zip(sorted(losses), (weights[key] for key in sorted(weights))))
    # The weight meant for each output: keyed by its name, or by its layer's (Keras 2's habit).
    layers = {_layer_name(t): key for key, t in model._outputs_struct.items()}
    meant = {layers.get(key, key): weight for key, weight in weights.items()}
    moved = [key for key in sorted(set(losses) & set(meant)) if landed[key] != meant[key]]
    if not moved:
        return None
    unknown = sorted(set(weights) - set(losses))
    what = "names no output"
    if set(unknown) <= set(layers):
        what = "are the output layers' names, not the outputs' (Keras 2 matched those)"
    gets = " and ".join(f"{key!r} gets weight {_name(landed[key])}" for key in sorted(losses))
    message = (
        f"compile's loss_weights are keyed {sorted(weights)}, its losses {sorted(losses)}: "
        f"{', '.join(map(repr, unknown))} {what}, so Keras matches the weights to the "
        f"losses by position in sorted-key order, and {gets}. Key loss_weights by the output "
        "names, as the losses are."
    )
    details = {"losses": sorted(losses), "weights": sorted(weights), "landed": landed}
    return Finding("loss-misassigned", message, step, details=details)


def _layer_name(output: Any) -> str | None:
    """The name of the layer that made a functional model's `output`."""
    layer = getattr(getattr(output, "_keras_history", None), "operation", None)
    return getattr(layer, "name", None)


class ListedTargets:
    """`fit`'s targets listed for a model's dict outputs written out of sorted order.

    Folded in-graph (`observe`: whether the listed targets were all the same in every batch),
    judged on the host (`finding`).

    Args:
      written: The outputs' keys in the order the dict was written.
    """

    def __init__(self, written: list[str]):
        self.written = written
        with _compat.outside_trace():
            # [batches seen, batches whose listed targets were all the same]
            self._seen = replicas.state_variable(np.zeros(2, np.float32), name="gradguard_listed")

    @classmethod
    def of(cls, model: Any, y: Any) -> ListedTargets | None:
        """One for `model` if `y` lists a target per output of a dict written out of order."""
        written = getattr(model, "_outputs_struct", None)
        if not isinstance(written, dict) or not isinstance(y, (list, tuple)):
            return None
        if not all(
            isinstance(t, tf.Tensor) and (t.dtype.is_floating or t.dtype.is_integer) for t in y
        ):
            return None  # (a None for an output without a loss, strings: not compared)
        keys = list(written)
        return cls(keys) if len(y) == len(keys) and keys != sorted(keys) else None

    def observe(self, y: Any) -> None:
        """In-graph: folds a batch's listed targets."""
        flat = [tf.reshape(tf.cast(target, tf.float32), [-1]) for target in y]
        same = tf.constant(True)
        for other in flat[1:]:
            same &= tf.cond(  # (targets of other shapes are other targets)
                tf.size(other) == tf.size(flat[0]),
                lambda other=other: tf.reduce_all(tf.equal(other, flat[0])),
                lambda: tf.constant(False),
            )
        self._seen.assign_add(tf.stack([1.0, tf.cast(same, tf.float32)]))

    def finding(self, step: int) -> Finding | None:
        """`loss-misassigned` once a batch's listed targets differed (a host read)."""
        batches, same = self._seen.numpy()
        if not batches or same == batches:
            return None
        order = sorted(self.written)
        moved = [
            f"{key!r} trains on the targets listed {_ordinal(i)} (meant for {meant!r})"
            for i, (key, meant) in enumerate(zip(order, self.written))
            if key != meant
        ]
        keys = ", ".join(f"{key!r}: ..." for key in self.written)
        message = (
            f"fit's targets are a list of {len(order)}, and the model's outputs a dict written "
            f"in the order {self.written}: Keras matches a list of targets to the outputs by "
            f"position in sorted-key order, {order}, so {' and '.join(moved)}. Each of those "
            "heads learns another's target, silently. Pass the targets as a dict keyed by "
            f"output name, fit(x, {{{keys}}}), which Keras matches by name."
        )
        details = {"written": self.written, "order": order, "targets": "list"}
        return Finding("loss-misassigned", message, step, details=details)


def _ordinal(i: int) -> str:
    return {0: "first", 1: "second", 2: "third"}.get(i, f"at position {i}")
