"""Validation: each saved value side by side with the live variable it would restore into."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.checkpoint import files, graph
from gradguard.checkpoint.config import config_findings
from gradguard.checkpoint.messages import findings
from gradguard.checkpoint.values import Check, Value, is_optimizer, is_variable, natural, spec
from gradguard.findings import Report

__all__ = ["check", "model_of"]

_VALUE = "VARIABLE_VALUE"


def check(path: str, objects: Mapping[str, Any], build: bool, root: Any = None) -> Check:
    """Compares the checkpoint at `path` (resolved) with `objects`.

    Args:
      path: A resolved TF checkpoint prefix or Keras weights file.
      objects: What it would be restored into, as passed to `tf.train.Checkpoint`.
      build: Build unbuilt Keras optimizers for real (a restore follows); otherwise a built copy
        stands in for each, and nothing is changed.
      root: The `tf.train.Checkpoint` to match against (made from `objects` if None).

    Raises:
      ValueError: if a Keras layer or model among `objects` has not been built.
    """
    for key, obj in objects.items():
        if isinstance(obj, keras.Layer) and not obj.built:
            raise ValueError(
                f"{key} has not been built, so it has no variables to compare or restore into; "
                "call it on a batch (or model.build(input_shape)) first."
            )
    if files.is_keras_file(path):
        return _check_keras(path, objects, build)
    if root is None:
        root = tf.train.Checkpoint(**objects)
    return _check_tf(path, objects, root, build)


def _check_tf(prefix: str, objects: Mapping[str, Any], root: Any, build: bool) -> Check:
    # `build` comes from a restore, right after a validation that read every tensor.
    reader, problems = files.read_tf(prefix, read_data=not build)
    result = Check(prefix, [], Report(problems))
    if reader is None or not objects:
        return result
    if _compat.CHECKPOINT_GRAPH_KEY not in reader.get_variable_to_shape_map():
        raise ValueError(
            f"{prefix} has no object graph: it is a name-based (TF1 Saver) checkpoint; "
            "gradguard validates checkpoints written by tf.train.Checkpoint or Keras."
        )
    result.read = reader.get_tensor
    saved_graph = files.object_graph(reader)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    substitutes = graph.prepare_optimizers(saved_graph, graph.match(saved_graph, root, {}), build)
    bound = graph.match(saved_graph, root, substitutes)
    seen = graph.walk(root, substitutes)
    optimizers = [(path, obj) for path, obj in seen.values() if is_optimizer(obj)]
    live_names = graph.live_names(objects, seen, optimizers)
    known = {n: live_names[id(v)] for n, v in bound.items() if id(v) in live_names}
    saved_names = graph.saved_names(saved_graph, known)[0]
    paths = graph.node_paths(saved_graph)
    optimizer_owned = {id(v) for _, opt in optimizers for v in opt.variables}
    saved_optimizers = graph.optimizer_nodes(saved_graph)
    saved_owner = {n: o for o, saved in saved_optimizers.items() for n in saved.own}

    restored: set[int] = set()
    for node_id, node in enumerate(saved_graph.nodes):
        if paths.get(node_id) == "save_counter":
            continue  # bookkeeping of tf.train.Checkpoint.save, not user state
        for attr in node.attributes:
            if attr.name != _VALUE:
                continue  # other state (iterators, tables) has no shape to compare
            key = attr.checkpoint_key
            saved = (tuple(shapes[key]), dtypes[key].name)
            live = bound.get(node_id)
            if is_variable(live):
                restored.add(id(live))
                current = spec(live)
                problem = None
                if saved[0] != current[0]:
                    problem = "checkpoint-shape-mismatch"
                elif saved[1] != current[1]:
                    problem = "checkpoint-dtype-mismatch"
                value = Value(
                    live_names.get(id(live), saved_names[node_id]),
                    key,
                    saved,
                    live,
                    current,
                    id(live) in optimizer_owned,
                    problem,
                )
            else:
                # A saved optimizer slot whose optimizer is here but did not get it is lost
                # state; a value of an object not passed at all is merely unexpected.
                owner = saved_owner.get(node_id)
                lost = owner is not None and is_optimizer(bound.get(owner))
                value = Value(
                    saved_names[node_id],
                    key,
                    saved,
                    optimizer=owner is not None,
                    problem="checkpoint-optimizer-state-not-restored"
                    if lost
                    else "checkpoint-unexpected-variables",
                )
            result.values.append(value)
    for path, obj in seen.values():
        if is_variable(obj) and id(obj) not in restored and path != "save_counter":
            result.values.append(
                Value(
                    live_names[id(obj)],
                    variable=obj,
                    current=spec(obj),
                    optimizer=id(obj) in optimizer_owned,
                    problem="checkpoint-missing-variables",
                )
            )
    for finding in findings(result.values, prefix):
        result.report.add(finding)
    for finding in config_findings(prefix, objects):
        result.report.add(finding)
    return result


def model_of(objects: Mapping[str, Any]) -> Any:
    """The one Keras model among `objects` (a Keras weights file holds one model's weights)."""
    layers = [v for v in objects.values() if isinstance(v, keras.Layer)]
    if len(layers) != 1:
        raise ValueError(
            "a Keras weights file holds one model's weights; pass that model as model=...; "
            f"got {sorted(objects)}."
        )
    return layers[0]


def _check_keras(path: str, objects: Mapping[str, Any], build: bool) -> Check:
    specs, arrays, problems = files.read_h5(path)
    result = Check(path, [], Report(problems))
    if problems or not objects:
        return result
    result.read = arrays.__getitem__
    model = model_of(objects)
    optimizer = getattr(model, "optimizer", None)
    layout = _compat.keras_weights_layout(model, [optimizer] if optimizer is not None else [])
    if optimizer is not None:
        # Like a Keras `.keras` load, which builds the optimizer before loading its slots.
        if not optimizer.built and any(k.startswith("optimizer/") for k in specs):
            optimizer = graph.built(optimizer, model.trainable_variables, build)
        for i, variable in enumerate(optimizer.variables):
            layout[f"optimizer/vars/{i}"] = variable
    live_names = graph.live_names(
        {"model": model}, {}, [("optimizer", optimizer)] if optimizer else []
    )
    for key in sorted(set(specs) | set(layout), key=natural):
        live = layout.get(key)
        is_optimizer_value = key.startswith("optimizer/")
        name = live_names.get(id(live), key) if is_variable(live) else key
        current = spec(live) if is_variable(live) else None
        if live is not None and current is None:
            array = np.asarray(live)
            current = (tuple(array.shape), array.dtype.name)
        saved = specs.get(key)
        problem = None
        if saved is None:
            problem = "checkpoint-missing-variables"
        elif current is None:
            problem = (
                "checkpoint-optimizer-state-not-restored"
                if is_optimizer_value and optimizer is not None
                else "checkpoint-unexpected-variables"
            )
        elif saved[0] != current[0]:
            problem = "checkpoint-shape-mismatch"
        elif saved[1] != current[1]:
            problem = "checkpoint-dtype-mismatch"
        value = Value(
            name,
            key,
            saved,
            live if is_variable(live) else None,
            current,
            is_optimizer_value,
            problem,
        )
        result.values.append(value)
    for finding in findings(result.values, path):
        result.report.add(finding)
    return result
