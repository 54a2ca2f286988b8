"""Random augmentation cached after its first epoch (`augmentation-cached`).

``ds.map(augment).cache()``: `cache` stores what reaches it on the first pass over the data
and replays it on every later one, so the random draws of the first epoch (a shift, a flip, a
crop) are the only ones the model ever sees: one fixed augmented copy of each example, as if
there were no augmentation (held-out accuracy 0.48 against 0.99 with ``ds.cache().map(augment)``
on 240 small images). Nothing fails.

Read under ``gradguard run`` as `fit` starts on a `tf.data.Dataset` for more than one epoch:
a `cache` (in memory or to a file) with, upstream of it, a `map` (or `flat_map`, `interleave`)
whose traced function draws random numbers (``tf.random``, ``tf.image.random_*``, a
`tf.random.Generator`, Keras' random preprocessing layers). Stateless ops given a fixed seed
draw the same numbers every epoch anyway and are not counted, nor is a random map after the
cache (augmentation drawn anew each epoch).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["findings"]

# Op types that draw anew at each run: stateful random ops, a Generator's state read.
_STATEFUL = ("Rng", "StatefulUniform", "StatefulStandardNormal", "StatefulTruncatedNormal")
# Stateless ones draw anew only from a key that moves (a seed state a variable keeps: Keras'
# random layers); from a fixed seed, the same numbers every epoch anyway.
_MOVES = ("AssignVariableOp", "AssignAddVariableOp")


def _draws(function: Any) -> bool:
    """Whether a traced data set function (nested functions too) draws random numbers."""
    try:
        graph_def = function.graph.as_graph_def()
    except (AttributeError, ValueError):
        return False
    ops = {n.op for n in graph_def.node}
    ops |= {n.op for f in graph_def.library.function for n in f.node_def}
    stateless = {op for op in ops if op.startswith("StatelessRandom")}
    stateful = {op for op in ops if "Random" in op or op.startswith(_STATEFUL)} - stateless
    return bool(stateful) or bool(stateless and ops & set(_MOVES))


def _upstream(dataset: Any) -> Iterator[Any]:
    """`dataset` and every data set it reads from."""
    seen, stack = set(), [dataset]
    while stack:
        each = stack.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        yield each
        try:
            stack += list(each._inputs())
        except (AttributeError, NotImplementedError):
            pass


def _cached_draw(dataset: Any) -> Any:
    """The random function of a map upstream of a cache in `dataset`, or None."""
    for cache in _upstream(dataset):
        if "CacheDataset" not in type(cache).__name__:
            continue
        for each in _upstream(cache):
            function = getattr(getattr(each, "_map_func", None), "function", None)
            if function is not None and _draws(function):
                return function
    return None


def _name(function: Any) -> str:
    """The Python name of a traced data set function (``random_shift``, ``lambda``)."""
    name = getattr(function, "name", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    return re.sub(r"^__inference_Dataset_[a-z_]*?(map|interleave)_|_\d+$", "", name)


def findings(arguments: Mapping[str, Any], step: int) -> list[Finding]:
    """`augmentation-cached` for `fit`'s data set (by its `arguments`) over several epochs."""
    x = arguments.get("x")
    if not isinstance(x, tf.data.Dataset) or int(arguments.get("epochs") or 1) < 2:
        return []
    function = _cached_draw(x)
    if function is None:
        return []
    message = (
        "fit's data set caches the output of a random map: .cache() after the augmentation "
        "stores the first epoch's random draws, and every later epoch replays them, so the "
        f"model sees one fixed augmented copy of each example (the map function "
        f"{_name(function)!r}). Cache before the random map (ds.cache().map(augment)), or move "
        "the augmentation into the model (keras.layers.RandomFlip, RandomTranslation...)."
    )
    return [Finding("augmentation-cached", message, step, details={"map": _name(function)})]
