"""Validation: each saved value side by side with the live variable it would restore into."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat
from gradguard.checkpoint import files, graph
from gradguard.checkpoint.config import SIDECAR, archive_config, config_findings, read_sidecar
from gradguard.checkpoint.messages import findings
from gradguard.checkpoint.values import (
    Check,
    OptimizerState,
    Value,
    is_optimizer,
    natural,
    spec,
)
from gradguard.findings import Report

__all__ = ["check", "model_of"]

_VALUE = "VARIABLE_VALUE"


def check(
    path: str,
    objects: Mapping[str, Any],
    build: bool,
    root: Any = None,
    *,
    plain: bool = False,
    learning_rate: bool = True,
) -> Check:
    """Compares the checkpoint at `path` (resolved) with `objects`.

    Args:
      path: A resolved TF checkpoint prefix or Keras weights file.
      objects: What it would be restored into, as passed to `tf.train.Checkpoint`.
      build: Build unbuilt Keras optimizers for real (a restore follows); otherwise a built copy
        stands in for each, and nothing is changed.
      root: The `tf.train.Checkpoint` to match against (made from `objects` if None).
      plain: Judge the restore the user's own code makes (`model.load_weights`,
        `tf.train.Checkpoint.restore`), not gradguard's `restore`: Keras skips the state of an
        optimizer that has not been built, where `restore` builds it first.
      learning_rate: Report a learning rate that differs from the saved one now (the restore
        watcher judges it after the restore instead).

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
        result = _check_keras(path, objects, build, plain)
    else:
        result = _check_tf(
            path, objects, tf.train.Checkpoint(**objects) if root is None else root, build
        )
    for finding in findings(result.values, path):
        result.report.add(finding)
    for finding in config_findings(path, result.optimizers, learning_rate):
        result.report.add(finding)
    return result


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
    live_bound = graph.match(saved_graph, root, {})
    substitutes = graph.prepare_optimizers(saved_graph, live_bound, build)
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
            if _compat.is_variable(live):
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
        if _compat.is_variable(obj) and id(obj) not in restored and path != "save_counter":
            result.values.append(
                Value(
                    live_names[id(obj)],
                    variable=obj,
                    current=spec(obj),
                    optimizer=id(obj) in optimizer_owned,
                    problem="checkpoint-missing-variables",
                )
            )
    configs, unreadable = read_sidecar(prefix) if optimizers else (None, None)
    if unreadable is not None:
        result.report.add(unreadable)
    keys = {id(obj): path for path, obj in seen.values()}
    for node_id, saved_optimizer in saved_optimizers.items():
        live = live_bound.get(node_id)
        if not is_optimizer(live):
            continue
        comparable = substitutes.get(id(live), live)
        key = keys.get(id(comparable), "optimizer")
        result.optimizers.append(
            OptimizerState(
                key,
                live,
                comparable,
                *_saved_scalars(result.values, comparable, reader.get_tensor),
                slots=frozenset(saved_optimizer.lists),
                config=(configs or {}).get(key),
                config_source=prefix + SIDECAR if configs else "",
            )
        )
    return result


def _saved_scalars(
    values: list[Value], optimizer: Any, read: Callable[[str], Any]
) -> tuple[float | None, int | None]:
    """The learning rate and iteration count saved for `optimizer` (None where not saved)."""
    keys = {id(v.variable): v.key for v in values if v.variable is not None and v.saved}
    return _scalars_at(keys, optimizer, read)


def _scalars_at(
    keys: Mapping[int, str], optimizer: Any, read: Callable[[str], Any]
) -> tuple[float | None, int | None]:
    """The learning rate and iteration count read at the keys of their variables (by id)."""
    rate, iterations = None, None
    learning_rate = optimizer.learning_rate
    if isinstance(learning_rate, keras.Variable) and id(learning_rate) in keys:
        rate = float(np.asarray(read(keys[id(learning_rate)])))
    if id(optimizer.iterations) in keys:
        iterations = int(np.asarray(read(keys[id(optimizer.iterations)])))
    return rate, iterations


def model_of(objects: Mapping[str, Any]) -> Any:
    """The one Keras model among `objects` (a Keras weights file holds one model's weights)."""
    layers = [v for v in objects.values() if isinstance(v, keras.Layer)]
    if len(layers) != 1:
        raise ValueError(
            "a Keras weights file holds one model's weights; pass that model as model=...; "
            f"got {sorted(objects)}."
        )
    return layers[0]


def _keras_optimizer(objects: Mapping[str, Any], model: Any, saved: list[str]) -> tuple[str, Any]:
    """The optimizer a Keras weights file's optimizer values go into, and its name.

    One passed as ``optimizer=`` (or under any key); else the model's own (`compile`), but only
    when the file holds optimizer values: a model-only file restores no optimizer, and loading
    one into a compiled model (fine-tuning, inference) is not a change worth a word.
    """
    for key, obj in objects.items():
        if is_optimizer(obj):
            return key, obj
    own = getattr(model, "optimizer", None)
    return "optimizer", own if saved else None


def _check_keras(path: str, objects: Mapping[str, Any], build: bool, plain: bool) -> Check:
    specs, arrays, problems = files.read_h5(path)
    result = Check(path, [], Report(problems))
    if problems or not objects:
        return result
    result.read = arrays.__getitem__
    model = model_of(objects)
    saved_optimizer = sorted((k for k in specs if k.startswith("optimizer/")), key=natural)
    key, optimizer = _keras_optimizer(objects, model, saved_optimizer)
    own = getattr(model, "optimizer", None)
    layout = _compat.keras_weights_layout(model, [own] if own is not None else [])
    comparable, skipped = optimizer, False
    if optimizer is not None:
        if plain and saved_optimizer and len(saved_optimizer) != len(optimizer.variables):
            # Keras' own rule (`load_own_variables`): a count that differs skips them all.
            skipped = True
        elif not optimizer.built and saved_optimizer:
            # As gradguard's restore (and a `.keras` load) does: build before loading slots.
            comparable = graph.built(optimizer, model.trainable_variables, build)
        if not skipped:
            for i, variable in enumerate(comparable.variables):
                layout[f"optimizer/vars/{i}"] = variable
    live_names = graph.live_names(
        {"model": model}, {}, [(key, comparable)] if comparable is not None else []
    )
    for name in sorted(set(specs) | set(layout), key=natural):
        result.values.append(
            _keras_value(name, specs.get(name), layout.get(name), live_names, optimizer)
        )
    if skipped:
        why = (
            "it has not been built yet (it builds at its first step), so Adam's moments and the "
            "iteration count start from zero; build it before loading "
            "(model.optimizer.build(model.trainable_variables)), or restore with "
            "gradguard.checkpoint.restore, which does"
            if not optimizer.built
            else "it is not the optimizer saved (another class, or built for other variables); "
            "compile with the optimizer it was saved with"
        )
        fix = (
            f"Keras skips all of them, since the model's optimizer has "
            f"{len(optimizer.variables)} variables and the file {len(saved_optimizer)}: {why}"
        )
        for value in result.values:
            if value.key in saved_optimizer:
                value.problem, value.fix = "checkpoint-optimizer-state-not-restored", fix
    if optimizer is not None:
        rate, iterations = _saved_scalars(result.values, comparable, arrays.__getitem__)
        if skipped and not optimizer.built:  # what was saved, read through a built copy
            copy = graph.built(optimizer, model.trainable_variables, build=False)
            if len(copy.variables) == len(saved_optimizer):  # (Keras' layout: vars/0, 1, ...)
                keys = {id(v): f"optimizer/vars/{i}" for i, v in enumerate(copy.variables)}
                rate, iterations = _scalars_at(keys, copy, arrays.__getitem__)
        config = archive_config(path) if path.endswith(".keras") and saved_optimizer else None
        result.optimizers.append(
            OptimizerState(
                key,
                optimizer,
                comparable,
                rate,
                iterations,
                config=config,
                config_source=f"{path} (config.json)" if config else "",
                restored=not skipped and bool(saved_optimizer),
            )
        )
    return result


def _keras_value(
    key: str, saved: Any, live: Any, live_names: Mapping[int, str], optimizer: Any
) -> Value:
    """One dataset of a Keras weights file beside what `load_weights` would load it into."""
    is_optimizer_value = key.startswith("optimizer/")
    name = live_names.get(id(live), key) if _compat.is_variable(live) else key
    current = spec(live) if _compat.is_variable(live) else None
    if live is not None and current is None:
        array = np.asarray(live)
        current = (tuple(array.shape), array.dtype.name)
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
    return Value(
        name,
        key,
        saved,
        live if _compat.is_variable(live) else None,
        current,
        is_optimizer_value,
        problem,
    )
