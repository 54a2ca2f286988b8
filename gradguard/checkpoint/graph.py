"""Matching saved values to live objects through the object graph, and naming both sides.

A TF checkpoint stores the graph of objects it was saved from (``model``, its layers, the
optimizer and its lists of slots). `tf.train.Checkpoint.restore` walks it breadth-first from
the root, binding each saved child to the live child of the same local name; `match` does the
same walk without restoring anything, so validation sees exactly what a restore would do.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import keras

from gradguard import _compat
from gradguard.checkpoint.values import is_optimizer
from gradguard.stats import names

__all__ = [
    "SavedOptimizer",
    "built",
    "children",
    "live_names",
    "match",
    "node_paths",
    "optimizer_nodes",
    "prepare_optimizers",
    "saved_names",
    "slot_lists",
    "slot_name",
    "walk",
]

_VALUE = "VARIABLE_VALUE"
# Lists an optimizer holds that are not slots (parallel to its trainable variables).
_NOT_SLOTS = frozenset({"_variables", "_trainable_variables", "_trainable_variables_indices"})


def children(obj: Any) -> dict[str, Any]:
    """The trackable children of `obj`, by local name."""
    return _compat.trackable_children(obj)


def walk(root: Any, substitutes: Mapping[int, Any]) -> dict[int, tuple[str, Any]]:
    """Every object reachable from `root`, by id, with its first (shortest) path."""
    seen: dict[int, tuple[str, Any]] = {}
    queue = collections.deque([("", root)])
    while queue:
        path, obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen[id(obj)] = (path, obj)
        for name, child in children(obj).items():
            child = substitutes.get(id(child), child)
            queue.append((f"{path}/{name}" if path else name, child))
    return seen


def _strip_first(path: str) -> str:
    return path.split("/", 1)[1] if "/" in path else path


def slot_name(attribute: str) -> str:
    """``_momentums`` -> ``momentum``, ``_velocities`` -> ``velocity``: the slot's name."""
    name = attribute.lstrip("_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def slot_lists(optimizer: Any) -> dict[str, list[Any]]:
    """A built Keras optimizer's slot lists by attribute (``_momentums``).

    Keras 3 optimizers keep each kind of slot in a list parallel to their trainable variables
    (``_momentums[i]`` belongs to variable ``i``).
    """
    trainable = _compat.optimizer_variables(optimizer)
    result = {}
    for attribute, child in children(optimizer).items():
        if attribute in _NOT_SLOTS or not isinstance(child, list) or not trainable:
            continue
        if len(child) == len(trainable) and all(_compat.is_variable(v) for v in child):
            result[attribute] = list(child)
    return result


def live_names(
    objects: Mapping[str, Any],
    seen: Mapping[int, tuple[str, Any]],
    optimizers: Iterable[tuple[str, Any]],
) -> dict[int, str]:
    """Display names of live variables: ``dense/kernel``, ``optimizer/dense/kernel/velocity``.

    A slot is named after the variable it belongs to.

    Args:
      objects: The objects passed by the user, by key.
      seen: Everything reachable from them (`walk`).
      optimizers: The optimizers among them, with their keys.
    """
    result: dict[int, str] = {}
    layers = {k: v for k, v in objects.items() if isinstance(v, keras.Layer)}
    for key, layer in layers.items():
        for variable, name in zip(layer.weights, names(layer.weights, layer.name), strict=True):
            result.setdefault(id(variable), f"{key}/{name}" if len(layers) > 1 else name)
    for key, optimizer in optimizers:
        trainable = _compat.optimizer_variables(optimizer)
        slots = {}
        for attribute, items in slot_lists(optimizer).items():
            for variable, slot in zip(trainable, items, strict=True):
                base = result.get(id(variable)) or names([variable])[0]
                slots[id(slot)] = f"{base}/{slot_name(attribute)}"
        for variable in optimizer.variables:
            result.setdefault(id(variable), f"{key}/{slots.get(id(variable), variable.name)}")
    for path, obj in seen.values():
        if _compat.is_variable(obj):
            result.setdefault(id(obj), path)
    return result


@dataclasses.dataclass
class SavedOptimizer:
    """A Keras 3 optimizer in a saved object graph, as node ids."""

    trainable: list[int]
    own: list[int]
    # slot node -> (the trainable variable's node, the slot's name)
    slots: dict[int, tuple[int, str]]
    # slot list attribute -> its nodes (``_momentums`` -> [...])
    lists: dict[str, list[int]] = dataclasses.field(default_factory=dict)


def optimizer_nodes(graph: Any) -> dict[int, SavedOptimizer]:
    """Saved Keras 3 optimizers, recognised by the lists every one of them holds."""
    result = {}
    for node_id, node in enumerate(graph.nodes):
        lists = {ref.local_name: _list_nodes(graph, ref.node_id) for ref in node.children}
        if not {"_variables", "_iterations", "_trainable_variables"} <= set(lists):
            continue
        trainable = lists["_trainable_variables"]
        slot_attributes = {
            attribute: items
            for attribute, items in lists.items()
            if attribute not in _NOT_SLOTS and trainable and len(items) == len(trainable)
        }
        slots = {
            slot: (variable, slot_name(attribute))
            for attribute, items in slot_attributes.items()
            for variable, slot in zip(trainable, items, strict=True)
        }
        result[node_id] = SavedOptimizer(trainable, lists["_variables"], slots, slot_attributes)
    return result


def _list_nodes(graph: Any, node_id: int) -> list[int]:
    """The items of a saved list (children named 0, 1, ...), in order; [] if not a list."""
    items = graph.nodes[node_id].children
    if not items or not all(c.local_name.isdigit() for c in items):
        return []
    return [c.node_id for c in sorted(items, key=lambda c: int(c.local_name))]


def saved_names(
    graph: Any, known: Mapping[int, str] | None = None
) -> tuple[dict[int, str], dict[str, str]]:
    """Display names of saved values, from the saved object graph.

    A model variable is named by its Keras path when the checkpoint recorded one
    (``sequential/dense/kernel`` -> ``dense/kernel``), else by its object path
    (``model/dense1/kernel``); slots as in `live_names`, so a value reads the same whichever
    side has it.

    Args:
      graph: The saved `TrackableObjectGraph`.
      known: Names already known for some nodes (those of the live variables they match), so
        that a slot is named after the variable as it is now.

    Returns:
      Names by node id and by checkpoint key.
    """
    paths = node_paths(graph)
    result: dict[int, str] = dict(known or {})
    for node_id, node in enumerate(graph.nodes):
        if node_id not in result and any(a.name == _VALUE for a in node.attributes):
            name = _strip_first(_full_name(graph, node_id))
            result[node_id] = name if "/" in name else paths.get(node_id, name)
    for opt_node, optimizer in optimizer_nodes(graph).items():
        for node in optimizer.own:
            if known and node in known:
                continue
            if node in optimizer.slots:
                variable, slot = optimizer.slots[node]
                result[node] = f"{paths[opt_node]}/{result.get(variable, variable)}/{slot}"
            else:
                result[node] = f"{paths[opt_node]}/{_strip_first(_full_name(graph, node))}"
    by_key = {
        a.checkpoint_key: result[i]
        for i, node in enumerate(graph.nodes)
        for a in node.attributes
        if i in result
    }
    return result, by_key


def _full_name(graph: Any, node_id: int) -> str:
    attrs = [a for a in graph.nodes[node_id].attributes if a.name == _VALUE]
    return attrs[0].full_name.split(":")[0] if attrs else ""


def node_paths(graph: Any) -> dict[int, str]:
    """A readable object path to each saved node (``model/dense1/kernel``), breadth-first.

    The way through an optimizer's list of trainable variables is not taken: the model's own
    path names them better.
    """
    paths = {0: ""}
    queue = collections.deque([0])
    while queue:
        node_id = queue.popleft()
        for ref in graph.nodes[node_id].children:
            if ref.node_id not in paths and ref.local_name != "_trainable_variables":
                parent, name = paths[node_id], ref.local_name.lstrip("_")
                paths[ref.node_id] = f"{parent}/{name}" if parent else name
                queue.append(ref.node_id)
    return paths


def match(graph: Any, root: Any, substitutes: Mapping[int, Any]) -> dict[int, Any]:
    """Binds saved nodes to live objects breadth-first, as `tf.train.Checkpoint.restore` does.

    Each saved node's children are looked up by their local name among the live object's
    trackable children; the first path to reach a node binds it (see TF's
    `restore._queue_children_for_restoration`).
    """
    bound = {0: root}
    queue = collections.deque([0])
    while queue:
        node_id = queue.popleft()
        obj = bound[node_id]
        live = children(obj)
        for ref in graph.nodes[node_id].children:
            if ref.node_id in bound:
                continue
            child = _compat.lookup_dependency(obj, ref.local_name, live)
            if child is None:
                continue
            bound[ref.node_id] = substitutes.get(id(child), child)
            queue.append(ref.node_id)
    return bound


def prepare_optimizers(graph: Any, bound: Mapping[int, Any], build: bool) -> dict[int, Any]:
    """Makes unbuilt Keras optimizers comparable: their slots exist only once built.

    The variables to build with are those the saved optimizer was built with (its saved
    `_trainable_variables`, mapped to live variables through the object graph), in the saved
    order, so that slot `i` lands where it was. With `build`, the live optimizer is built (for a
    restore); otherwise a built copy stands in for it, so that validation changes nothing.

    Returns:
      Stand-ins by id of the live optimizer they replace.
    """
    substitutes: dict[int, Any] = {}
    for node_id, saved in optimizer_nodes(graph).items():
        optimizer: Any = bound.get(node_id)
        if not is_optimizer(optimizer) or optimizer.built or not saved.trainable:
            continue
        variables = [bound.get(n) for n in saved.trainable]
        if not all(_compat.is_variable(v) for v in variables):
            continue  # the model changed; its slots are reported as not restorable
        substitutes[id(optimizer)] = built(optimizer, variables, build)
    return substitutes


def built(optimizer: Any, variables: list[Any], build: bool) -> Any:
    """The optimizer built with `variables`: itself if `build`, else a built copy of it."""
    if not build:
        try:
            optimizer = type(optimizer).from_config(optimizer.get_config())
        except Exception:  # noqa: BLE001 - a custom optimizer that cannot be copied
            pass  # is built itself, as its first step would do anyway
    optimizer.build(variables)
    return optimizer
