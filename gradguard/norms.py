"""Gradient norms, each computed once per step however many checks and transforms ask for it.

Every statistic, transform and the non-finite gate take the norms of the same gradients. A
graph's optimizer merges the copies, but an eager step computed every one (four per gradient),
and every copy adds to the trace: inside `computing_norms_once()` (the step), `sq_norm` and
`global_norm` of the same gradient objects return the tensor computed first.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import tensorflow as tf

from gradguard import _compat

__all__ = ["computing_norms_once", "global_norm", "sq_norm", "sq_norms"]

# Narrower rows are summed as a plain reduction under XLA (a matrix-vector product gains little).
_MATVEC_COLUMNS = 16

# Norms already computed inside `computing_norms_once()`, per thread (replicas trace in threads).
_known = threading.local()


def sq_norm(grad: tf.Tensor | tf.IndexedSlices) -> tf.Tensor:
    """Squared L2 norm of one gradient, in float32 (float16 gradients would overflow).

    Every statistic and transform computes norms through this function, so that inside
    `computing_norms_once()` each gradient's norm is computed once per step.
    For `tf.IndexedSlices` the norm is that of the dense gradient (repeated rows summed).
    """

    def compute() -> tf.Tensor:
        values = _values(grad)
        columns = values.shape[-1] if values.shape.rank is not None and values.shape.rank > 1 else 0
        if columns and columns >= _MATVEC_COLUMNS and _compat.in_xla_context():
            # XLA on CPU adds up a reduction one element after another (about 1 ns each); as
            # a matrix-vector product the sum is vectorized, 3-4x faster (benchmarked). The
            # square fuses into the product's input.
            rows = tf.reshape(tf.square(values), [-1, columns])
            return tf.reduce_sum(tf.linalg.matvec(rows, tf.ones([columns])))
        # l2_loss is sum(x**2) / 2 in one fused pass, without a squared temporary (benchmarked).
        return 2.0 * tf.nn.l2_loss(values)

    return _once("sq_norm", (grad,), compute)


def sq_norms(grads: Sequence[Any]) -> tf.Tensor:
    """`sq_norm` of each gradient (0 for None) as one float32 vector, computed once like it."""

    def compute() -> tf.Tensor:
        if _compat.in_xla_context():
            return tf.stack([tf.constant(0.0) if g is None else sq_norm(g) for g in grads])
        # Half of each squared norm, doubled once for the vector: a graph runs one op fewer per
        # gradient (each op costs the executor about a microsecond, however small).
        halves = [tf.constant(0.0) if g is None else tf.nn.l2_loss(_values(g)) for g in grads]
        return 2.0 * tf.stack(halves)

    return _once("sq_norms", tuple(grads), compute)


def _values(grad: tf.Tensor | tf.IndexedSlices) -> tf.Tensor:
    """The gradient's values in float32; a sparse gradient's rows given twice summed first.

    A row given twice (a token repeated in the batch, padding) is one row of the dense
    gradient, the sum of both, and the optimizer applies the sum: the norm is the sum's.
    """
    if not isinstance(grad, tf.IndexedSlices):
        return tf.cast(grad, tf.float32)
    values = tf.cast(grad.values, tf.float32)
    if _compat.in_xla_context() and grad.dense_shape is not None:
        # No `tf.unique`: a sort anywhere in the step makes XLA on CPU draw the dropout masks
        # 6x slower (TF 2.21; a transformer's step went from 20 ms to 130). Each row is
        # summed into the first row given with its index, found through one int per row of
        # the variable.
        rows = tf.size(grad.indices)
        first = tf.math.unsorted_segment_min(tf.range(rows), grad.indices, grad.dense_shape[0])
        return tf.math.unsorted_segment_sum(values, tf.gather(first, grad.indices), rows)
    rows, index = tf.unique(grad.indices)
    return tf.math.unsorted_segment_sum(values, index, tf.size(rows))


def _once(kind: str, of: tuple[Any, ...], compute: Callable[[], tf.Tensor]) -> tf.Tensor:
    """``compute()``, or inside `computing_norms_once` what it gave first for `kind` of `of`.

    (`kind` keeps one gradient's squared norm apart from the global norm of it alone.)
    """
    known: dict[tuple[Any, ...], tuple[Any, Any, tf.Tensor]] | None = getattr(_known, "norms", None)
    graph = tf.compat.v1.get_default_graph()
    key = (kind, *map(id, of))
    if known is not None and key in known:
        kept, kept_graph, value = known[key]
        # The same objects (not new ones at a reused id) in the same graph (a tensor of a
        # conditional's branch is not used outside it).
        if all(a is b for a, b in zip(kept, of)) and kept_graph is graph:
            return value
    value = compute()
    if known is not None:
        known[key] = (of, graph, value)  # holding `of` keeps their ids from being reused
    return value


@contextlib.contextmanager
def computing_norms_once() -> Iterator[None]:
    """Within (a step), `sq_norm` and `global_norm` of the same gradients return the first norm."""
    outer = getattr(_known, "norms", None)
    if outer is None:
        _known.norms = {}
    try:
        yield
    finally:
        if outer is None:
            del _known.norms


def global_norm(grads: Sequence[Any]) -> tf.Tensor:
    """L2 norm of all gradients together, ignoring `None` entries; float32."""
    present = tuple(g for g in grads if g is not None)
    if not present:
        return tf.constant(0.0)
    return _once("global_norm", present, lambda: tf.sqrt(tf.reduce_sum(sq_norms(grads))))
