"""A reshape used to reorder axes (`reshape-transposes`): the data scrambled, not transposed.

``tf.reshape(x, [time, batch, features])`` on a batch-major ``(batch, time, features)`` input
(to feed a time-major RNN), or ``(batch, height, width, channels)`` reshaped to channels
first, runs without an error: a reshape keeps the elements in their memory order and only
regroups them, so each new row mixes values of different examples, time steps or channels.
The model trains on scrambled data and learns far less than it could; nothing fails.
`tf.transpose` (`keras.layers.Permute`) reorders axes.

Read from a traced loss's graph (`lossgraph.graph_findings`): a ``Reshape`` of the step's data,
or of what the model computed from it, whose output has the same sizes as its input in another
order, where the batch axis moves (time-major) or three axes or more besides it are reordered
(channels first). ``(batch, a, b)`` to ``(batch, b, a)`` is left out: a signal framed as ``a``
frames of ``b`` samples re-framed as ``b`` frames of ``a`` is the same shape change, and
right. Axes of size 1 moved (``(batch, 1, d)`` to ``(batch, d, 1)``) change no element's
place and are left out; so is a reshape between equal sizes (which cannot be told from a
transpose by its shape), of more than one unknown size, or of variables alone (weights).

Attention heads split by a reshape alone, ``(batch, T, H * d)`` to ``(batch, H, T, d)``, or
merged back so (`_heads_moved`): each "head" holds T/H consecutive positions' features, and a
token attends only inside its block. The split in place, ``(batch, T, H, d)``, is silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard.diagnose import DATA_SOURCES, ancestors, shape_text
from gradguard.findings import Finding

__all__ = ["graph_reshape_transposes"]


def graph_reshape_transposes(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`reshape-transposes` for the first reshape among `ops` that reorders its input's axes."""
    for op in sorted((op for op in ops if op.type == "Reshape"), key=lambda op: op.name):
        before, after = _symbolic(op)
        if before is None or after is None:
            continue
        heads = _heads_moved(before, after)
        if not (heads or _reordered(before, after)):
            continue
        if not any(parent.type in DATA_SOURCES for parent in ancestors(op.inputs[0])):
            continue  # (a weight reshaped: not data)
        if heads:
            return _heads_finding(op, heads, step)
        perm = _perm(before, after)
        fix = f"tf.transpose(x, perm={perm})" if perm is not None else "tf.transpose(x, perm)"
        scope = op.name.rpartition("/")[0]  # the layer's, when in a model
        where = f" in {scope}" if scope else ""
        shown_before, shown_after = shape_text(op.inputs[0].shape), shape_text(op.outputs[0].shape)
        message = (
            f"A reshape{where} turns {shown_before} into {shown_after}, the same sizes in "
            "another order: a reshape regroups the elements in their memory order, it does not "
            "swap axes, so each new row mixes values from different examples, positions or "
            f"channels and the model trains on scrambled data. Reorder axes with {fix} "
            "(keras.layers.Permute in a model)."
        )
        shapes = {"from": op.inputs[0].shape.as_list(), "to": op.outputs[0].shape.as_list()}
        details = {"op": op.name, **shapes, "perm": perm}
        return Finding("reshape-transposes", message, step, details=details)
    return None


def _heads_moved(before: tuple[Any, ...], after: tuple[Any, ...]) -> str | None:
    """``"split"`` or ``"merged"`` for attention heads split or merged by a reshape alone.

    ``(batch, T, H * d)`` to ``(batch, H, T, d)`` (split), or back (merged): the heads' axis
    put before the positions' (or taken from before them) without a transpose. T known, more
    than 1 and not H; H and d more than 1.
    """
    if len(before) == 3 and len(after) == 4:
        (_, positions, width), (_, heads, moved, depth), kind = before, after, "split"
    elif len(before) == 4 and len(after) == 3:
        (_, heads, positions, depth), (_, moved, width), kind = before, after, "merged"
    else:
        return None
    sizes = (positions, width, heads, moved, depth)
    if None in sizes or before[0] != after[0] or positions != moved:
        return None
    fits = heads * depth == width and positions not in (1, heads)
    return kind if fits and heads > 1 and depth > 1 else None


def _heads_finding(op: tf.Operation, kind: str, step: int) -> Finding:
    """`reshape-transposes` for heads split or merged by `op`, a reshape (`_heads_moved`)."""
    before, after = op.inputs[0].shape.as_list(), op.outputs[0].shape.as_list()
    positions, heads, depth = (
        (before[1], after[1], after[3]) if kind == "split" else (after[1], before[1], before[3])
    )
    scope = op.name.rpartition("/")[0]
    where = f" in {scope}" if scope else ""
    split = f"tf.transpose(tf.reshape(x, (batch, {positions}, {heads}, {depth})), [0, 2, 1, 3])"
    merge = f"tf.reshape(tf.transpose(x, [0, 2, 1, 3]), (batch, {positions}, {heads * depth}))"
    message = (
        f"A reshape{where} turns {shape_text(op.inputs[0].shape)} into "
        f"{shape_text(op.outputs[0].shape)}: attention heads {kind} by a reshape alone. A "
        "reshape keeps the elements in memory order, so each of the "
        f"{heads} 'heads' holds {positions // heads or 'a part of'} consecutive positions' "
        f"features instead of {depth} features of every position, and attention mixes the "
        f"wrong values. Split heads with {split}; merge them with {merge}."
    )
    details = {"op": op.name, "from": before, "to": after, "heads": kind}
    return Finding("reshape-transposes", message, step, details=details)


def _symbolic(op: tf.Operation) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """The sizes `op` reshapes from and to, None where unknown (or for an unknown rank).

    A batch traced at a fixed size (`fit`'s) is made unknown again where the target's -1 stands
    for it: ``reshape(x, [-1, 32])`` of a (32, 64) batch makes (64, 32), but of a batch of 16,
    (32, 32); its -1 is twice the batch, the features regrouped, not a batch moved.
    """
    before, after = _sizes(op.inputs[0].shape), _sizes(op.outputs[0].shape)
    target = tf.get_static_value(op.inputs[1])
    if not before or None in before or target is None or -1 not in target:
        return before, after
    if target[0] == before[0]:  # (the batch kept in place, written out: the -1 is another axis)
        return before, after
    if np.prod(before[1:]) != np.prod([size for size in target if size != -1]):
        return None, None  # (the -1 is a multiple of the batch, or a share of it)
    return (None, *before[1:]), tuple(None if size == -1 else int(size) for size in target)


def _sizes(shape: tf.TensorShape) -> tuple[Any, ...] | None:
    """The sizes of `shape` (None where unknown), or None when its rank is unknown."""
    return None if shape.rank is None else tuple(shape.as_list())


def _reordered(before: tuple[Any, ...], after: tuple[Any, ...]) -> bool:
    """Whether `after` holds the sizes of `before` in another order (axes of size 1 aside).

    Only with the batch axis (the first) moved, or three axes besides it reordered.
    """
    before, after = _without_ones(before), _without_ones(after)
    if before == after or len(before) < 2 or before.count(None) > 1:
        return False
    same_sizes = sorted(before, key=str) == sorted(after, key=str)
    return same_sizes and (before[0] != after[0] or len(before) >= 4)


def _without_ones(sizes: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(size for size in sizes if size != 1)


def _perm(before: tuple[Any, ...], after: tuple[Any, ...]) -> list[int] | None:
    """The transpose meant: axis `perm[i]` of `before` becomes axis i (sizes told apart)."""
    if len(before) != len(after) or len(set(before)) != len(before):
        return None
    return [before.index(size) for size in after]
