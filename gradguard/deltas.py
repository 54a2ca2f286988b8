"""How much an update changed the weights: ``|delta w|^2`` and ``|w|^2`` per variable, in-graph.

(And, read on the same steps, how alike a layer's units are: `unit_spread`.)

Reading a variable before an update makes TensorFlow copy it when the update writes in place:
that copy is why `StepCore` measures only on cadence steps (`snapshot` and `measured` decide
in-graph; `measure` when the step is known to measure).

A large variable is measured on an evenly spaced sample of its elements (`part`): keeping,
subtracting and summing all of a 2.6 MB MLP's weights took 0.9 ms of a 6 ms step (memory
traffic), a sample of 4096 per variable takes almost nothing, and its ratio is within a few
percent of the whole variable's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, norms

__all__ = [
    "SAMPLE",
    "known",
    "measure",
    "measured",
    "part",
    "sampled",
    "snapshot",
    "stride",
    "unit_spread",
]

SAMPLE = 4096  # elements kept of a variable larger than 16 times this


def stride(shape: Sequence[int]) -> int:
    """The step between the measured elements of a variable of this shape: 1 for all of them.

    A variable of more than ``16 * SAMPLE`` elements is measured on at most `SAMPLE` elements,
    a prime number of elements apart that divides none of its dimensions: the sample then
    visits every column and spreads over the rows (a stride sharing a factor with the last
    dimension would visit only some columns). At least 16 float32 apart (a 64-byte cache line),
    so it reads one line in 16: reading every line would cost as much as reading everything.
    """
    if any(d is None for d in shape):
        return 1
    size = int(np.prod(shape))
    if size <= 16 * SAMPLE:
        return 1
    step = -(-size // SAMPLE)
    while not _is_prime(step) or any(d % step == 0 for d in shape):
        step += 1
    return step


def sampled(shape: Sequence[int]) -> bool:
    """Whether a variable of this shape is measured on a sample (see `stride`)."""
    return stride(shape) > 1


def known(is_sampled: Sequence[bool], update_sq: tf.Tensor, grad_sample_sq: Any) -> tf.Tensor:
    """Per variable, whether its measured change says how the whole variable changed (in-graph).

    A variable measured whole always does. A sampled one does when its sample moved, or when
    the sample's elements had a gradient (then a sample that did not move shows the update did
    not move the variable); a sample with neither says nothing of the rest: the update may be
    confined to rows it does not visit (one-hot inputs, sparse gradients).

    Args:
      is_sampled: `Layout.sampled`, not empty (with no sampled variable, every one is known).
      update_sq: `Stats.update_sq`.
      grad_sample_sq: `Stats.grad_sample_sq`.
    """
    whole = tf.constant([not s for s in is_sampled])
    return whole | (update_sq > 0) | (tf.convert_to_tensor(grad_sample_sq) > 0)


def part(variable: Any) -> tf.Tensor:
    """The variable's current value, or its sample (flat) if it is large (see `stride`)."""
    value = tf.convert_to_tensor(variable)
    every = stride(value.shape)
    return value if every == 1 else tf.reshape(value, [-1])[::every]


UNIT_ROWS = 64  # rows of a kernel compared across its units, evenly spaced


def unit_spread(variable: Any) -> tf.Tensor:
    """How far apart a kernel's units (its last axis) are, against its scale: 0 when identical.

    Over `UNIT_ROWS` of its rows, evenly spaced (each unit's incoming weights from some of the
    inputs): units initialized to one value stay copies of each other there as everywhere. 1 for
    a variable without two units to compare (a bias, a scalar), and where every row compared is
    zero: a zero-initialized kernel whose updates reach only some rows (one-hot or hashed
    inputs) may have left those untouched, which says nothing of its units.
    """
    shape = variable.shape
    if not shape.is_fully_defined() or shape.rank < 2 or shape[-1] < 2:
        return tf.constant(1.0)
    every = max(1, shape.num_elements() // shape[-1] // UNIT_ROWS)
    rows = tf.reshape(tf.convert_to_tensor(variable), [-1, shape[-1]])[: every * UNIT_ROWS : every]
    rows = tf.cast(rows, tf.float32)
    spread = tf.reduce_max(tf.reduce_max(rows, axis=1) - tf.reduce_min(rows, axis=1))
    scale = tf.reduce_max(tf.abs(rows))
    return tf.where(scale > 0, tf.math.divide_no_nan(spread, scale), 1.0)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % k for k in range(2, int(n**0.5) + 1))


def snapshot(
    variables: Sequence[Any],
    present: Sequence[int],
    now: tf.Tensor,
    learning_rate: Callable[[], tf.Tensor],
) -> tuple[list[tf.Tensor], tf.Tensor]:
    """If `now`, the present variables' values before the update and the learning rate.

    Other steps get empty tensors (XLA needs both branches' shapes equal: zeros there) and NaN.
    """
    xla = _compat.in_xla_context()
    read = [variables[i] for i in present]

    def take() -> tuple[list[tf.Tensor], tf.Tensor]:
        # The rate before the update moves a schedule on.
        return [part(v) for v in read], learning_rate()

    def skip() -> tuple[list[tf.Tensor], tf.Tensor]:
        empty = [tf.zeros_like(part(v)) if xla else tf.zeros([0], v.dtype) for v in read]
        return empty, tf.constant(np.nan)

    return _compat.rare_cond(now, take, skip)


def measured(
    variables: Sequence[Any],
    present: Sequence[int],
    before: Sequence[tf.Tensor],
    grads: Sequence[Any],
    now: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """`measure` if `now` (the `snapshot` was taken and the update applied), else zeros."""

    def take() -> tf.Tensor:
        return tf.stack(measure(variables, present, before, grads))

    # Lowered, unlike the snapshot (`_compat.rare_cond`): as one `If` op after the update this
    # cost the guard's MLP step 4-5% (1.09-1.12x a plain step against 1.04-1.09x, four runs in
    # one process each), far more than its branch's dead ops do.
    all_four = tf.cond(now, take, lambda: tf.zeros([4, len(variables)]))
    return all_four[0], all_four[1], all_four[2], all_four[3]


def measure(
    variables: Sequence[Any],
    present: Sequence[int],
    before: Sequence[tf.Tensor],
    grads: Sequence[Any],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per variable (0 for those not present): |delta w|^2, |w|^2, the sample's |g|^2, spread.

    Args:
      variables: Every variable of the step.
      present: The indices of those updated.
      before: Their `part`s before the update, in the order of `present`.
      grads: The gradients they were updated with, in the order of `present`.

    Returns:
      ``update_sq`` and ``weight_sq``, a sampled variable's scaled to its size (estimates of the
      whole variable's), and ``grad_sample_sq``: a sampled variable's dense gradient's squared
      norm over its sample (0 for the others). A sample that had a gradient and did not move
      shows the update did not move the variable; one without gradient shows nothing. Last,
      `unit_spread` after the update (1 for a variable not present or given a sparse gradient).
    """
    n = len(variables)
    deltas: list[Any] = [None] * n
    weights: list[Any] = [None] * n
    grad_samples: list[Any] = [None] * n
    scale = [1.0] * n  # a sample's norms, scaled to the whole variable's
    for i, old, grad in zip(present, before, grads):
        new = part(variables[i])
        deltas[i], weights[i] = new - tf.reshape(old, new.shape), old
        if sampled(variables[i].shape):
            scale[i] = variables[i].shape.num_elements() / new.shape.num_elements()
            if not isinstance(grad, tf.IndexedSlices):  # its rows say where, not a dense sample
                grad_samples[i] = part(tf.reshape(grad, variables[i].shape))
    # As vectors (`norms.sq_norms`): a few ops in all rather than a few per variable.
    scales = tf.constant(scale, tf.float32)
    # Rows a sparse gradient (an embedding's) never reached stay as initialized: not compared.
    dense = {i for i, grad in zip(present, grads) if not isinstance(grad, tf.IndexedSlices)}
    spreads = [unit_spread(v) if i in dense else tf.constant(1.0) for i, v in enumerate(variables)]
    return (
        norms.sq_norms(deltas) * scales,
        norms.sq_norms(weights) * scales,
        norms.sq_norms(grad_samples),
        tf.stack(spreads),
    )
