"""Inputs and labels shuffled or filtered apart, then zipped (`labels-uninformative`).

``tf.data.Dataset.zip((features.shuffle(n), labels.shuffle(n)))`` shuffles the two with their
own random orders: each example meets another example's label. The labels then tell the model
nothing about its inputs; it learns how often each label occurs and its loss stays at the
chance level (accuracy 0.28 against 0.93 when zipped first, then shuffled). Nothing fails.

Read from the data set `fit` is given, under ``gradguard run`` (`fit_batches.FitBatches.given`),
for a model trained by Keras' own train step (an override may read a zip of two streams as
anything: a CycleGAN's two unpaired image sets): below the steps that keep each element whole
(batching, prefetching, repeating, caching, a shuffle of the pairs, a map that still makes
pairs), a zip of two data sets of one tensor each (the inputs and the labels) whose shuffles
differ: one shuffled and not the other, or shuffles whose seeds or buffer
sizes differ, or unseeded ones (each draws its own order); or a filter on one branch only
(``x.filter(...)`` zipped with ``y``: from the first element it drops, every input meets a later
example's label). Filters on both branches may keep the same examples, and records filtered
before they are split into inputs and labels lose the same ones from each: both stay silent,
as do zipping first and shuffling or filtering the pairs, two shuffles of the same explicit
seed and buffer size (the same order), and `skip` or `take` on a branch (a label one step
ahead is a forecast's).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["finding"]

# Data set steps that keep each element whole: below them, elements are still (inputs, labels).
_WHOLE = frozenset(
    {
        "_BatchDataset",
        "_ParallelBatchDataset",
        "_PaddedBatchDataset",
        "_PrefetchDataset",
        "_RepeatDataset",
        "CacheDataset",
        "_ShuffleDataset",
        "_FilterDataset",
        "_TakeDataset",
        "_SkipDataset",
        "_OptionsDataset",
        "_MapDataset",
        "_ParallelMapDataset",
    }
)


def finding(data: Any, step: int) -> Finding | None:
    """`labels-uninformative` for a data set of (inputs, labels) zipped from two shuffled apart."""
    if not isinstance(data, tf.data.Dataset):
        return None
    node = data
    while type(node).__name__ in _WHOLE and _pairs(node):
        (node,) = node._inputs()  # noqa: SLF001 - tf.data keeps its graph of data sets private
    if type(node).__name__ != "_ZipDataset" or len(node._inputs()) != 2:  # noqa: SLF001
        return None
    if not all(isinstance(spec, tf.TensorSpec) for spec in node.element_spec):
        return None  # (a branch of pairs itself: two streams, not inputs and labels)
    branches = node._inputs()  # noqa: SLF001
    filtered = _own_filters(*branches)
    if bool(filtered[0]) != bool(filtered[1]):  # (filters on both may keep the same examples)
        which = "the inputs" if filtered[0] else "the labels"
        message = (
            f"fit's data set zips its inputs and labels from two data sets, {which} filtered "
            "on their own: from the first example a filter drops, every example meets "
            "another example's label, so the labels tell the model little about its inputs. "
            "Zip them first, then filter the pairs: "
            "tf.data.Dataset.zip((x, y)).filter(lambda x, y: ...)."
        )
        details = {"inputs_filters": filtered[0], "labels_filters": filtered[1]}
        return Finding("labels-uninformative", message, step, details=details)
    inputs, labels = (_shuffles(branch) for branch in branches)
    if inputs == labels and all(seeds != (0, 0) for _, seeds in inputs):
        return None  # (not shuffled, or shuffled in the same order)
    described = f"the inputs' {_describe(inputs)}, the labels' {_describe(labels)}"
    if inputs and labels:
        described += ", each its own order"
    message = (
        f"fit's data set zips its inputs and labels from two data sets shuffled apart "
        f"({described}): each example meets another example's label, so the labels tell the "
        "model nothing about its inputs and it can learn only how often each label occurs. "
        "Zip them first, then shuffle the pairs: tf.data.Dataset.zip((x, y)).shuffle(n)."
    )
    details = {"inputs_shuffles": len(inputs), "labels_shuffles": len(labels)}
    return Finding("labels-uninformative", message, step, details=details)


def _pairs(node: Any) -> bool:
    """Whether `node` has one input, and makes pairs (its elements are (inputs, labels))."""
    spec = node.element_spec
    return len(node._inputs()) == 1 and isinstance(spec, tuple) and len(spec) == 2  # noqa: SLF001


def _chain(data: Any) -> list[Any]:
    """`data` and the data sets it is made from, down its one input at a time."""
    chain = [data]
    while len(chain[-1]._inputs()) == 1:  # noqa: SLF001
        chain.append(chain[-1]._inputs()[0])  # noqa: SLF001
    return chain


def _shuffles(data: Any) -> list[tuple[int, tuple[int, int]]]:
    """The shuffles below `data`, each as its buffer size and seeds ((0, 0): unseeded)."""
    shuffles = [node for node in _chain(data) if type(node).__name__ == "_ShuffleDataset"]
    return [
        (int(node._buffer_size), (int(node._seed), int(node._seed2)))  # noqa: SLF001
        for node in shuffles
    ]


def _own_filters(inputs: Any, labels: Any) -> tuple[int, int]:
    """The filters each branch has of its own, above the data set both are made from, if any.

    A filter both branches share (records filtered, then split into inputs and labels) drops
    the same examples from both.
    """
    chains = _chain(inputs), _chain(labels)
    shared = {id(node) for node in chains[0]} & {id(node) for node in chains[1]}
    own = [[node for node in chain if id(node) not in shared] for chain in chains]
    counts = [sum(type(node).__name__ == "_FilterDataset" for node in nodes) for nodes in own]
    return counts[0], counts[1]


def _describe(shuffles: list[tuple[int, tuple[int, int]]]) -> str:
    """How a branch is shuffled (its seed may be the global seed's: not shown)."""
    return f"shuffle({shuffles[0][0]})" if shuffles else "unshuffled"
