"""A batch drawn by NumPy or Python while the step was traced (`batch-frozen-at-trace`).

Inside a `tf.function`, NumPy and Python code runs once, when the function is traced:
``idx = np.random.randint(0, n, 64)`` draws its indices then, and the graph keeps them as a
constant. Every step then trains on the same 64 examples of the data set captured in the graph:
the loss falls to nothing on them while the model learns little that holds beyond them
(held-out accuracy 0.44 against 0.74 with ``tf.random.uniform``). Nothing fails.

Read from the traced loss (the guard, ``gradguard run``): a gather along the first axis, of
data held in the graph (a constant, or a captured tensor that is no variable), with constant
indices that are no run of consecutive rows (a slice such as ``x[:64]``, overfitting one batch
on purpose, is left alone), at least `MIN_ROWS` of them, picking at most half of the rows.
Batches passed to the step as arguments, drawn with ``tf.random`` or by a `tf.data` pipeline
never are such constants, and a loss that also reads such a batch is left alone (a memory of
examples replayed beside each new batch is picked once on purpose).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from gradguard.findings import Finding

__all__ = ["graph_batch_frozen"]

MIN_ROWS = 8  # indices fewer than this are a choice (a few prototypes), not a batch
_ITERATORS = frozenset({"IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue"})


def _data_rows(tensor: tf.Tensor) -> int | None:
    """The rows of `tensor` if it is data held in the graph (a constant, a captured tensor)."""
    rows = tensor.shape[0] if tensor.shape.rank else None
    if tensor.op.type == "Const":
        return rows
    if tensor.op.type != "Placeholder" or tensor.dtype == tf.resource:
        return None
    captured = {id(internal) for _, internal in tensor.graph.captures}
    return rows if id(tensor) in captured else None  # (not the step's own argument)


def _frozen(op: tf.Operation) -> tuple[int, int] | None:
    """(indices, rows) when `op` gathers rows of data in the graph by constant scattered indices."""
    if op.type != "GatherV2" or len(op.inputs) < 3:
        return None
    axis = tf.get_static_value(op.inputs[2])
    indices = tf.get_static_value(op.inputs[1])
    if axis is None or int(axis) != 0 or indices is None or np.ndim(indices) != 1:
        return None
    if len(indices) < MIN_ROWS or np.array_equal(
        indices, np.arange(indices[0], indices[0] + len(indices))
    ):
        return None
    rows = _data_rows(op.inputs[0])
    if rows is None or len(indices) > rows // 2:
        return None
    return len(indices), rows


def _fed(op: tf.Operation) -> bool:
    """Whether `op` brings the step data from outside: an argument (not a scalar), an iterator."""
    if op.type in _ITERATORS:
        return True
    if op.type != "Placeholder" or op.outputs[0].dtype == tf.resource:
        return False
    captured = {id(internal) for _, internal in op.graph.captures}
    return id(op.outputs[0]) not in captured and op.outputs[0].shape.rank != 0


def graph_batch_frozen(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`batch-frozen-at-trace` for a loss computed from rows picked once, at trace time.

    Only where no batch comes from outside too: examples kept on purpose (a rehearsal memory
    replayed beside each new batch) are picked once as well.
    """
    ops = list(ops)
    if any(_fed(op) for op in ops):
        return None
    for op in ops:
        frozen = _frozen(op)
        if frozen is None:
            continue
        picked, rows = frozen
        message = (
            f"The step trains on the same {picked} of the {rows} examples every time: their "
            "indices were drawn while tf.function traced the step (NumPy or Python code runs "
            "once, at tracing) and are a constant in the graph. Draw them with TensorFlow "
            f"(tf.random.uniform([{picked}], 0, {rows}, dtype=tf.int32)), or pass each batch to "
            "the step as an argument (a tf.data.Dataset with shuffle and batch)."
        )
        details = {"examples": picked, "rows": rows}
        return Finding("batch-frozen-at-trace", message, step, details=details)
    return None
