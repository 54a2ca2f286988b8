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
"""

from __future__ import annotations

from typing import Any

from gradguard.findings import Finding

__all__ = ["findings", "listed_for_dict", "weights_keyed_off"]


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
