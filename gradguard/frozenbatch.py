"""A batch drawn by NumPy or Python while the step was traced (`batch-frozen-at-trace`).

Inside a `tf.function`, NumPy and Python code runs once, when the function is traced:
``idx = np.random.randint(0, n, 64)`` draws its indices then, and the graph keeps them as a
constant. Every step then trains on the same 64 examples of the data set captured in the graph:
the loss falls to nothing on them while the model learns little that holds beyond them
(held-out accuracy 0.44 against 0.74 with ``tf.random.uniform``). Nothing fails.

Read from the traced loss (the guard, ``gradguard run``) once the function holding it is
traced to its end: a gather along the first axis, of data held in the graph (a constant, or a
captured tensor that is no variable), that the model reads, with constant indices in no
increasing order (drawn, not selected: a slice such as ``x[:64]``, one batch overfit on
purpose, a mask's rows or a sorted subset for a learning curve are left alone), at least
`MIN_ROWS` of them, picking at most half of the rows with every such gather of the same data in
the function together (a whole epoch of batches in a fixed order, unrolled in one function,
covers it). Batches passed to the step as arguments, drawn with ``tf.random`` or by a `tf.data`
pipeline never are such constants, and a loss that also reads such a batch is left alone (a
memory of examples replayed beside each new batch is picked once on purpose), as is a gather of
labels alone (a graph's fixed labelled nodes).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradguard.diagnose import ancestors
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


def _frozen(op: tf.Operation) -> tuple[np.ndarray, int] | None:
    """(indices, rows) when `op` gathers rows of data in the graph by constant scattered indices."""
    if op.type != "GatherV2" or len(op.inputs) < 3:
        return None
    axis = tf.get_static_value(op.inputs[2])
    indices = tf.get_static_value(op.inputs[1])
    if axis is None or int(axis) != 0 or indices is None or np.ndim(indices) != 1:
        return None
    if len(indices) < MIN_ROWS or np.all(np.diff(indices) > 0):  # (a slice, a mask's rows)
        return None
    rows = _data_rows(op.inputs[0])
    if rows is None or len(indices) > rows // 2:
        return None
    return indices, rows


def _data_key(tensor: tf.Tensor) -> object:
    """Names the data `tensor` holds: a NumPy array becomes a new constant at each gather."""
    if tensor.op.type == "Const":
        return hash(tensor.op.get_attr("value").SerializeToString())
    return id(tensor)


def _fed(op: tf.Operation) -> bool:
    """Whether `op` brings the step data from outside: an argument (not a scalar), an iterator."""
    if op.type in _ITERATORS:
        return True
    if op.type != "Placeholder" or op.outputs[0].dtype == tf.resource:
        return False
    captured = {id(internal) for _, internal in op.graph.captures}
    return id(op.outputs[0]) not in captured and op.outputs[0].shape.rank != 0


def _varying_gather(op: tf.Operation) -> bool:
    """Whether `op` gathers rows of data in the graph by indices drawn anew (`tf.random`)."""
    return (
        op.type == "GatherV2"
        and len(op.inputs) == 3
        and tf.get_static_value(op.inputs[1]) is None
        and _data_rows(op.inputs[0]) is not None
    )


def _into_model(tensor: tf.Tensor, ops: set[tf.Operation]) -> bool:
    """Whether `tensor` reaches, among `ops`, an op that reads a variable itself (a layer)."""
    seen, frontier = set(), [tensor.op]
    while frontier:
        op = frontier.pop()
        if op in seen or op not in ops:
            continue
        seen.add(op)
        if any(t.dtype == tf.resource or t.op.type == "ReadVariableOp" for t in op.inputs):
            return True
        frontier += [consumer for out in op.outputs for consumer in out.consumers()]
    return False


def graph_batch_frozen(loss: tf.Tensor, step: int) -> Finding | None:
    """`batch-frozen-at-trace` for a model fed rows picked once, at trace time.

    Only indices in no increasing order (drawn, not selected: a mask's `np.flatnonzero`, a
    sorted subset), rows the model reads (not only labels: a graph's fixed labelled nodes), and
    only where no batch comes in anew (passed in, or drawn by `tf.random`: a rehearsal memory
    replayed beside it is picked once on purpose) and the rows picked once do not cover the
    data (a whole epoch of batches in a fixed order, a curriculum). Call it once `loss`'s
    function is traced to its end: its later batches' gathers count too.
    """
    ops = ancestors(loss)
    if any(_fed(op) or _varying_gather(op) for op in ops):
        return None
    frozen = [(op, *found) for op in ops if (found := _frozen(op)) is not None]
    if not frozen:
        return None
    covered: dict[object, set[int]] = {}  # per data, the rows every frozen gather of it picks
    for op in loss.graph.get_operations():  # (the whole function: its later batches too)
        if (found := _frozen(op)) is not None:
            covered.setdefault(_data_key(op.inputs[0]), set()).update(found[0].tolist())
    for op, indices, rows in frozen:
        if len(covered[_data_key(op.inputs[0])]) > rows // 2 or not _into_model(op.outputs[0], ops):
            continue
        picked = len(indices)
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
