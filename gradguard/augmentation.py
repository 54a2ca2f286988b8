"""Random augmentation that repeats every epoch (`augmentation-repeated`).

A data set's random map (a shift, a flip, a crop, noise) is meant to draw anew every epoch. Two
slips make every epoch replay the first one's draws, so the model sees one fixed augmented
copy of each example, as if there were no augmentation. Nothing fails.

* ``ds.map(augment).cache()``: `cache` stores what reaches it on the first pass and replays it
  (held-out accuracy 0.48 against 0.99 with ``ds.cache().map(augment)`` on 240 small images).
* A global seed (``keras.utils.set_random_seed``, ``tf.random.set_seed``) with ``tf.random``
  or ``tf.image.random_*`` ops in the map: each op takes a fixed seed from it, and tf.data
  starts its sequence again with each epoch's iterator, so the k-th example gets the same draw
  every epoch (0.57 against 0.99 with a `tf.random.Generator`). A shuffle before the map deals
  the draws to other examples each epoch, and a data set repeated for ever (``.repeat()`` with
  ``steps_per_epoch``) is one iterator whose draws go on: left alone.

Read under ``gradguard run`` as `fit` starts on a `tf.data.Dataset` for more than one epoch,
from the traced functions of its maps (`map`, `flat_map`, `interleave`). Draws that move on by
themselves (a `tf.random.Generator`, Keras' random preprocessing layers, which keep their
state in variables) are fresh each epoch unless cached; stateless ops given a fixed seed draw
the same numbers every epoch on purpose and are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["findings", "function_name", "map_function", "upstream"]

# Op types that draw anew at each run: a Generator's state read, stateful random ops.
_STATEFUL = ("Rng", "StatefulUniform", "StatefulStandardNormal", "StatefulTruncatedNormal")
# Stateless ones draw anew only from a key that moves (a seed state a variable keeps: Keras'
# random layers); from a fixed seed, the same numbers every epoch anyway.
_MOVES = ("AssignVariableOp", "AssignAddVariableOp")


def _nodes(function: Any) -> list[Any]:
    """The nodes of a traced data set function, its nested functions' too."""
    try:
        graph_def = function.graph.as_graph_def()
    except (AttributeError, ValueError):
        return []
    return [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]


def _draws(nodes: list[Any]) -> bool:
    """Whether `nodes` draw random numbers (anew at each run of the function)."""
    ops = {n.op for n in nodes}
    stateless = {op for op in ops if op.startswith("StatelessRandom")}
    stateful = {op for op in ops if "Random" in op or op.startswith(_STATEFUL)} - stateless
    return bool(stateful) or bool(stateless and ops & set(_MOVES))


def _seeded(nodes: list[Any]) -> bool:
    """Whether a stateful random op among `nodes` was given a seed (a global one: restarted)."""
    return any(
        "Random" in n.op
        and not n.op.startswith("StatelessRandom")
        and (n.attr["seed"].i or n.attr["seed2"].i)
        for n in nodes
    )


def upstream(dataset: Any, stop: Callable[[Any], bool] = lambda each: False) -> Iterator[Any]:
    """`dataset` and every data set it reads from, neither yielding nor passing those `stop`s."""
    seen, stack = set(), [dataset]
    while stack:
        each = stack.pop()
        if id(each) in seen or stop(each):
            continue
        seen.add(id(each))
        yield each
        try:
            stack += list(each._inputs())
        except (AttributeError, NotImplementedError):
            pass


def map_function(dataset: Any) -> Any:
    """The traced function of a map (`map`, `flat_map`, `interleave`), or None."""
    return getattr(getattr(dataset, "_map_func", None), "function", None)


def _shuffled(dataset: Any) -> bool:
    return any("Shuffle" in type(each).__name__ for each in upstream(dataset))


def _repeated(dataset: Any) -> tuple[Any, str] | None:
    """A random map whose draws every epoch replays, and how (`_CACHED` or `_SEEDED`).

    A data set repeated for ever is read by one iterator through all of fit's epochs
    (``steps_per_epoch``): its seeded draws go on from epoch to epoch, never restarted.
    """
    endless = int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    for each in upstream(dataset):
        if "CacheDataset" in type(each).__name__:
            functions = [f for f in map(map_function, upstream(each)) if f is not None]
            drawing = [f for f in functions if _draws(_nodes(f))]
            if drawing:
                return drawing[0], _CACHED
        function = map_function(each)
        restarted = not (endless or _shuffled(each))
        if function is not None and restarted and _seeded(_nodes(function)):
            return function, _SEEDED
    return None


_CACHED = (
    ".cache() after the augmentation stores the first epoch's random draws, and every later "
    "epoch replays them. Cache before the random map (ds.cache().map(augment))"
)
_SEEDED = (
    "its random ops take a fixed seed from the global seed (keras.utils.set_random_seed, "
    "tf.random.set_seed), and tf.data restarts them with each epoch's iterator, so the k-th "
    "example gets the same draw every epoch. Draw with a tf.random.Generator made outside the "
    "map (generator.uniform), or shuffle before the map"
)


def function_name(function: Any) -> str:
    """The Python name of a traced data set function (``random_shift``, ``lambda``)."""
    name = getattr(function, "name", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    return re.sub(r"^__inference_Dataset_[a-z_]*?(map|interleave)_|_\d+$", "", name)


def findings(arguments: Mapping[str, Any], step: int) -> list[Finding]:
    """`augmentation-repeated` for `fit`'s data set (by its `arguments`) over several epochs."""
    x = arguments.get("x")
    if not isinstance(x, tf.data.Dataset) or int(arguments.get("epochs") or 1) < 2:
        return []
    repeated = _repeated(x)
    if repeated is None:
        return []
    function, how = repeated
    name = function_name(function)
    message = (
        f"The random map {name!r} of fit's data set draws the same numbers every "
        f"epoch, so the model sees one fixed augmented copy of each example: {how}; or move the "
        "augmentation into the model (keras.layers.RandomFlip, RandomTranslation...)."
    )
    cause = "cache" if how is _CACHED else "global seed"
    details = {"map": name, "cause": cause}
    return [Finding("augmentation-repeated", message, step, details=details)]
