"""Messages gathered from nodes and summed back onto the same nodes (`messages-to-sender`).

A graph network written by hand passes messages along the edges: it gathers each edge's sender,
``h[senders]``, computes a message from it, and sums the messages at the receivers,
``unsorted_segment_sum(messages, receivers, n)``. Summed at the senders instead (the index
mixed up, as in BNN-UPC/MARL-GNN-TE#1), every node gets back only its own message, once per
edge: nothing travels along the edges and the network is a per-node model in disguise. The loss
falls all the same (hunt29 b02: held-out node accuracy 0.41 against 0.88 at the receivers).

Read from a traced loss's graph (`lossgraph.graph_findings`): a segment reduction (or a scatter
into rows, ``tf.tensor_scatter_nd_add``, ``tf.scatter_nd``) whose data is computed from rows
gathered (along axis 0, of computed values, not a variable's table) only by the indices it
reduces by: the same tensor, or constants of equal values that repeat (unique ones make the
gather and the sum an exact identity), where no other reduction passes rows gathered by other
indices. Messages that also read the other end of the edge, edge features or anything else fed
per row are left out: they do carry information.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from gradguard.diagnose import DATA_SOURCES, before_views
from gradguard.findings import Finding

__all__ = ["graph_messages_to_sender"]

# The reductions into rows, each with (its data's input, its indices' input): segment
# reductions, and scatters (``tf.tensor_scatter_nd_add(zeros, ids[:, None], messages)``).
_SEGMENT = (0, 1)
_REDUCTIONS = {
    "UnsortedSegmentSum": _SEGMENT,
    "UnsortedSegmentMax": _SEGMENT,
    "UnsortedSegmentMin": _SEGMENT,
    "UnsortedSegmentProd": _SEGMENT,
    "SegmentSum": _SEGMENT,
    "SegmentMean": _SEGMENT,
    "SegmentMax": _SEGMENT,
    "SegmentMin": _SEGMENT,
    "SegmentSumV2": _SEGMENT,
    "SegmentMeanV2": _SEGMENT,
    "ScatterNd": (1, 0),
    "TensorScatterAdd": (2, 1),
    "TensorScatterMax": (2, 1),
    "TensorScatterMin": (2, 1),
}


def graph_messages_to_sender(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`messages-to-sender` for the first segment reduction among `ops` that returns rows home.

    Only if none of them passes rows gathered by other indices: an attention softmax's
    denominator summed where its scores were gathered is beside a numerator that passes.
    """
    home, passing = None, False
    for op in sorted((op for op in ops if op.type in _REDUCTIONS), key=lambda op: op.name):
        data, ids = (op.inputs[i] for i in _REDUCTIONS[op.type])
        gathers = _gathers(data)
        if not gathers:
            continue
        if all(_same_indices(g.inputs[1], _row_ids(ids)) for g in gathers):
            home = home or _finding(op, gathers[0], step)
        else:
            passing = True
    return None if passing else home


def _gathers(data: tf.Tensor) -> list[tf.Operation]:
    """The row gathers `data` is computed from, if nothing else fed reaches it (else none)."""
    stack, seen, found = [data.op], set[tf.Operation](), []
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if op.type == "GatherV2" and tf.get_static_value(op.inputs[2]) == 0:
            if op.inputs[0].op.type == "ReadVariableOp":
                return []  # (an embedding table's rows: looked up, not a node's state)
            found.append(op)
            continue
        if op.type in DATA_SOURCES and op.outputs[0].dtype != tf.resource:
            return []  # (edge features, the other end's rows: information travels)
        stack.extend(t.op for t in op.inputs)
    return found


def _same_indices(gathered: tf.Tensor, summed: tf.Tensor) -> bool:
    """Whether two index tensors are one, or equal constants with repeats (see the module)."""
    gathered, summed = before_views(gathered), before_views(summed)
    if gathered is summed:
        return True
    a, b = tf.get_static_value(gathered), tf.get_static_value(summed)
    if b is not None and np.ndim(b) == 2 and np.shape(b)[-1] == 1:
        b = np.reshape(b, -1)  # (a scatter's column of constant ids)
    if a is None or b is None or np.shape(a) != np.shape(b) or np.ndim(a) != 1:
        return False
    return bool(np.array_equal(a, b)) and len(np.unique(a)) < len(a)


def _row_ids(indices: tf.Tensor) -> tf.Tensor:
    """A scatter's ``ids[:, None]`` column as the ids; other indices as given.

    (An ExpandDims or a Reshape of the ids is a view, which `before_views` sees through.)
    """
    op = indices.op
    column = indices.shape.rank == 2 and indices.shape[-1] == 1
    if column and op.type == "StridedSlice" and op.inputs[0].shape.rank == 1:
        return op.inputs[0]
    return indices


def _finding(op: tf.Operation, gather: tf.Operation, step: int) -> Finding:
    message = (
        f"{op.name} ({op.type}) adds up messages computed from rows gathered ({gather.name}) "
        "by the same indices it sums them by: each node gets back only its own messages, once "
        "per edge, and nothing travels along the edges; the graph network is a per-node model. "
        "Gather at one end of each edge and aggregate at the other: "
        "tf.math.unsorted_segment_sum(message(tf.gather(h, senders)), receivers, num_nodes)."
    )
    details = {"op": op.name, "gather": gather.name}
    return Finding("messages-to-sender", message, step, details=details)
