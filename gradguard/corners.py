"""Box labels a loss reads as corners that are not corners (`labels-out-of-range`).

An IoU, GIoU or DIoU loss written for corner boxes ``(x1, y1, x2, y2)`` takes each box's width
``x2 - x1`` and height ``y2 - y1`` as lengths: it clips them at 0 or multiplies them into an
area. Given boxes in another format, center and size ``(cx, cy, w, h)`` or corner and size
``(x, y, w, h)``, it reads the size as the far corner: for most boxes ``w < cx``, the "box" is
inverted, its clipped area 0, and the loss trains towards other boxes without an error
(owl-vit-object-detection#14; hunt29 b11: held-out IoU 0.02 against 0.79 with the boxes
converted). Labels in the format the loss reads have no negative length but the odd degenerate
box.

Read from a step's traced loss (`rawlabels.RawLabels.watch`): two or more differences of two
columns of the step's raw labels (over four columns: a width and a height) that the loss treats
as lengths, away from the model's own computation (a feature the model computes from its inputs
is not a label's box). How many label boxes have a negative one is counted in-graph; found when
a quarter or more of them do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import diagnose, replicas
from gradguard.diagnose import DATA_SOURCES, READS, before_views
from gradguard.findings import Finding

__all__ = ["InvertedBoxes", "lengths"]

_INVERTED = 0.25  # the share of boxes with a negative length that is no odd degenerate box
_ENOUGH = 16  # boxes seen before judging

Column = tuple[Any, Any]  # (the raw labels' tensor, the column's key)
Length = tuple[tf.Tensor, Column, Column]  # (hi - lo, hi's column, lo's column)


def lengths(ops: Iterable[tf.Operation]) -> dict[str, list[Length]]:
    """The label lengths among `ops`, by the name of the raw labels they are taken from.

    A length is ``hi - lo`` of two columns of one raw label tensor, clipped at 0 (`tf.maximum`
    with 0, `tf.nn.relu`) or multiplied by another (an area), and not fed to the model's own
    computation (no op between it and the loss reads a variable).
    """
    ops = set(ops)
    found: dict[str, dict[str, Length]] = {}
    for op in sorted(ops, key=lambda op: op.name):
        for difference in _as_lengths(op):
            length = _length(difference)
            if length is None or _feeds_the_model(difference, ops):
                continue
            found.setdefault(length[1][0].name, {})[difference.op.name] = length
    return {
        source: list(by_name.values())
        for source, by_name in found.items()
        if len({column[1] for _, *pair in by_name.values() for column in pair}) >= 4
    }


def _as_lengths(op: tf.Operation) -> list[tf.Tensor]:
    """The differences `op` treats as lengths: clips at 0, or multiplies into an area."""
    if op.type == "Mul" and all(t.op.type == "Sub" for t in op.inputs):
        return list(op.inputs)
    clipped = diagnose.hinge_argument(op)  # (a Relu's input, a Maximum with 0's other operand)
    return [] if clipped is None else [clipped]


def _length(difference: tf.Tensor) -> Length | None:
    if difference.op.type != "Sub":
        return None
    hi, lo = (_column(t) for t in difference.op.inputs)
    if hi is None or lo is None or hi[0].name != lo[0].name or hi[1] == lo[1]:
        return None
    return difference, hi, lo


def _column(tensor: tf.Tensor) -> Column | None:
    """(the raw labels, the column's key) if `tensor` is one column of the step's raw data."""
    tensor = before_views(tensor)
    op = tensor.op
    if op.type == "Unpack":
        source, key = op.inputs[0], tensor.value_index
    elif op.type in ("Split", "SplitV"):
        source, key = op.inputs[1 if op.type == "Split" else 0], tensor.value_index
    elif op.type in ("StridedSlice", "GatherV2"):
        index = tf.get_static_value(op.inputs[1])
        if index is None:
            return None
        source, key = op.inputs[0], tuple(np.ravel(index).tolist())
    else:
        return None
    source = before_views(source)
    return (source, key) if source.op.type in DATA_SOURCES else None


def _feeds_the_model(difference: tf.Tensor, ops: set[tf.Operation]) -> bool:
    """Whether an op on the way from `difference` to the loss reads a variable (a layer)."""
    on_the_way = diagnose.descendants(difference) & ops
    return any(t.op.type in READS for op in on_the_way for t in op.inputs)


class InvertedBoxes:
    """How many label boxes have a negative length, of those a loss reads as corners."""

    def __init__(self, columns: list[tuple[Any, Any]]):
        self.columns = columns  # (hi's key, lo's key) of each length
        self._counts: tf.Variable | None = None  # (boxes inverted, boxes), folded in-graph

    def observe(self, found: list[Length]) -> None:
        """In-graph: counts a step's boxes, and those with a negative length."""
        differences = [difference for difference, *_ in found]
        shapes = {tuple(d.shape) if d.shape.rank is not None else None for d in differences}
        if len(shapes) != 1 or None in shapes:
            return  # (lengths of unlike shapes: not one box's)
        if self._counts is None:
            self._counts = replicas.zeros_state(2, "gradguard_inverted_boxes")
        inverted = tf.reduce_any(tf.stack([d < 0 for d in differences]), axis=0)
        counts = [
            tf.reduce_sum(tf.cast(inverted, tf.float32)),
            tf.cast(tf.size(inverted), tf.float32),
        ]
        self._counts.assign_add(tf.stack(counts))

    def finding(self, step: int) -> Finding | None:
        """`labels-out-of-range` when a quarter or more of the boxes are inverted (host read)."""
        if self._counts is None:
            return None
        inverted, boxes = (float(v) for v in self._counts.numpy())
        if boxes < _ENOUGH or inverted < _INVERTED * boxes:
            return None
        pairs = " and ".join(
            f"label[..., {_name(hi)}] - label[..., {_name(lo)}]" for hi, lo in self.columns
        )
        message = (
            f"The loss takes {pairs} as lengths (clipped at 0 or multiplied into an area), "
            f"reading the labels as box corners (x1, y1, x2, y2), but {inverted / boxes:.0%} of "
            f"the {boxes:.0f} label boxes seen have a negative one: their far corner is before "
            "their near one. The boxes are in another format, likely center and size (cx, cy, "
            "w, h) or corner and size (x, y, w, h), so the loss trains towards other boxes. "
            "Convert the labels to corners before the loss (x1 = cx - w / 2, x2 = cx + w / 2, "
            "...), or give the loss the format it reads."
        )
        details = {"inverted_share": inverted / boxes, "boxes": boxes}
        return Finding("labels-out-of-range", message, step, details=details)


def _name(key: Any) -> Any:
    """A column's index for the message: a slice's last index, an unstacked column's own."""
    return key[-1] if isinstance(key, tuple) and key else key
