"""Measuring an update: large variables on a spread sample, close to the whole variable."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gradguard import deltas

SHAPES = [(784, 512), (512, 512, 2), (3, 3, 64, 128), (20000, 4), (100003,)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_a_large_variable_is_sampled_across_its_rows_and_columns(shape):
    size = int(np.prod(shape))
    step = deltas.stride(shape)
    assert deltas.sampled(shape) and step >= 16  # one 64-byte line in 16 at most
    assert all(step % k for k in range(2, step)) and all(d % step for d in shape)
    index = np.arange(0, size, step)
    assert len(index) <= deltas.SAMPLE
    columns = set(index % shape[-1])
    assert len(columns) == min(shape[-1], len(index))  # every column while there are enough
    if len(shape) > 1:
        rows = set(index // shape[-1])
        assert len(rows) >= 0.9 * min(size // shape[-1], len(index))


def test_a_variable_up_to_16_samples_or_of_unknown_shape_is_measured_whole():
    assert deltas.stride((256, 256)) == 1 and not deltas.sampled((16 * deltas.SAMPLE,))
    assert deltas.stride(tf.TensorShape([None, 100000])) == 1
    value = tf.Variable(tf.ones([256, 256]))
    assert deltas.part(value).shape == (256, 256)


@pytest.mark.parametrize("shape", [(784, 512), (200,)], ids=str)
def test_measured_norms_are_within_a_few_percent_of_the_whole(shape):
    rng = np.random.default_rng(0)
    start = rng.uniform(-0.08, 0.08, shape).astype(np.float32)  # Glorot-uniform like
    update = 1e-3 * rng.normal(size=shape).astype(np.float32)
    variable = tf.Variable(start)
    before = [deltas.part(variable)]
    variable.assign_sub(update)
    measured = deltas.measure([variable], [0], before, [tf.constant(update)])
    update_sq, weight_sq, grad_sample_sq, _ = (float(t[0]) for t in measured)
    exact = dict(rel=1e-5) if not deltas.sampled(shape) else dict(rel=0.05)
    assert update_sq == pytest.approx(float(np.sum(update.astype(np.float64) ** 2)), **exact)
    assert weight_sq == pytest.approx(float(np.sum(start.astype(np.float64) ** 2)), **exact)
    # The gradient (here the update itself) over the sample, unscaled; nothing when measured whole.
    sample = update.reshape(-1)[:: deltas.stride(shape)] if deltas.sampled(shape) else 0.0
    assert grad_sample_sq == pytest.approx(float(np.sum(np.square(sample, dtype=np.float64))), 1e-5)


def _rows_reached(rows, size, units):
    """A zero-initialized kernel whose updates reached only `rows` (one-hot inputs)."""
    value = np.zeros((size, units))
    value[rows] = np.random.default_rng(0).normal(size=(len(rows), units))
    return value


@pytest.mark.parametrize(
    "value,spread",
    [
        (np.full((784, 512), 0.1), 0.0),  # every unit the same: copies
        (np.zeros((20, 8)), 1.0),  # all zero: no evidence (rows an update may not reach)
        (_rows_reached([3, 500], 4096, 2), 1.0),  # the compared rows all zero: no evidence
        (np.full((3, 3, 2, 4), -0.2), 0.0),  # a convolution's output channels
        (np.tile([[0.5, 0.5, 0.5 + 1e-7]], (6, 1)), None),  # rounding apart: below 1e-6
        (np.random.default_rng(0).normal(size=(784, 512)), None),  # random: far apart
        (np.full((16,), 0.1), 1.0),  # a bias: no units to compare
        (np.full((16, 1), 0.1), 1.0),  # one unit
    ],
    ids=["constant", "zeros", "rows-reached", "conv", "rounding", "random", "bias", "one-unit"],
)
def test_unit_spread_tells_units_that_are_copies(value, spread):
    measured = float(deltas.unit_spread(tf.Variable(value.astype(np.float32))))
    if spread is not None:
        assert measured == spread
    elif value.shape[-1] == 3:
        assert 0.0 < measured <= 1e-6
    else:
        assert measured > 0.5


def test_a_sparse_gradient_gives_no_sample_evidence():
    # Its rows say where the update went, not what the sample's elements received: a sample
    # that did not move is then no sign the variable did not.
    variable = tf.Variable(tf.ones([20000, 4]))
    assert deltas.sampled(variable.shape)
    rows = tf.IndexedSlices(tf.ones([2, 4]), tf.constant([0, 7]), tf.constant([20000, 4]))
    _, _, grad_sample_sq, unit_spread = deltas.measure(
        [variable], [0], [deltas.part(variable)], [rows]
    )
    assert float(grad_sample_sq[0]) == 0.0
    # Nor are its units compared: the rows it never reached keep their (here equal) values.
    assert float(unit_spread[0]) == 1.0


def test_several_variables_are_measured_in_their_places_with_a_few_ops_in_all():
    rng = np.random.default_rng(1)
    shapes = [(784, 512), (7,), (30, 3)]  # the first sampled; the second not updated
    starts = [rng.normal(size=s).astype(np.float32) for s in shapes]
    updates = [1e-2 * rng.normal(size=s).astype(np.float32) for s in shapes]
    variables = [tf.Variable(s) for s in starts]
    present = [0, 2]

    @tf.function
    def step():
        before = [deltas.part(variables[i]) for i in present]
        for i in present:
            variables[i].assign_sub(updates[i])
        return deltas.measure(
            variables, present, before, [tf.constant(updates[i]) for i in present]
        )

    update_sq, weight_sq, grad_sample_sq, unit_spread = (t.numpy() for t in step())
    assert update_sq[1] == weight_sq[1] == grad_sample_sq[1] == 0.0
    assert unit_spread[1] == 1.0 and unit_spread[0] > 0.1 and unit_spread[2] > 0.1
    assert update_sq[2] == pytest.approx(np.sum(updates[2].astype(np.float64) ** 2), rel=1e-5)
    assert weight_sq[2] == pytest.approx(np.sum(starts[2].astype(np.float64) ** 2), rel=1e-5)
    assert update_sq[0] == pytest.approx(np.sum(updates[0].astype(np.float64) ** 2), rel=0.05)
    assert grad_sample_sq[0] > 0.0 and grad_sample_sq[2] == 0.0
    # Each op costs the executor about a microsecond: the norms are doubled and scaled as
    # vectors, not one multiplication per variable and norm.
    ops = [op.type for op in step.get_concrete_function().graph.get_operations()]
    assert ops.count("L2Loss") == 5 and ops.count("Mul") == 5
