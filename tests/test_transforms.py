"""Gradient transforms against NumPy references, in eager, graph and XLA modes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import MODES, WARN_ALL, mlp, mode_kwargs, regression_data

import gradguard
from gradguard import norms, transforms

RNG = np.random.default_rng(0)
SHAPES = [(3, 4), (4,), (2, 2, 3, 5)]
GRADS = [RNG.normal(scale=3.0, size=s).astype("float32") for s in SHAPES]
WEIGHTS = [RNG.normal(scale=0.5, size=s).astype("float32") for s in SHAPES]


def apply_transform(transform, grads, weights, mode, state=None):
    """Runs `transform.update` once in `mode`; returns NumPy grads and state."""
    variables = [tf.Variable(w) for w in weights]
    if state is None:
        state = transform.init(variables)

    def update(grads, state):
        return transform.update(list(grads), state, variables)

    if mode != "eager":
        update = tf.function(update, jit_compile=mode == "jit")
    out, new_state = update([tf.constant(g) for g in grads], state)
    return [o.numpy() for o in out], tf.nest.map_structure(np.asarray, new_state)


def np_clip_by_global_norm(grads, max_norm):
    norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    return [g * min(1.0, max_norm / norm) for g in grads]


def np_clip_by_norm(grads, max_norm):
    return [g * min(1.0, max_norm / np.linalg.norm(g)) for g in grads]


def np_unitwise_norm(x):
    if x.ndim <= 1:
        return np.sqrt(np.sum(x**2, keepdims=True))
    axes = (0,) if x.ndim in (2, 3) else tuple(range(x.ndim - 1))
    return np.sqrt(np.sum(x**2, axis=axes, keepdims=True))


def np_adaptive_clip(grads, weights, clipping, eps):
    out = []
    for g, w in zip(grads, weights):
        max_norm = clipping * np.maximum(np_unitwise_norm(w), eps)
        g_norm = np_unitwise_norm(g)
        out.append(np.where(g_norm > max_norm, g * max_norm / np.maximum(g_norm, 1e-6), g))
    return out


REFERENCES = [
    (
        "clip_by_value",
        transforms.clip_by_value(1.5),
        lambda g, w: [np.clip(x, -1.5, 1.5) for x in g],
    ),
    ("clip_by_norm", transforms.clip_by_norm(2.0), lambda g, w: np_clip_by_norm(g, 2.0)),
    (
        "clip_by_global_norm",
        transforms.clip_by_global_norm(2.0),
        lambda g, w: np_clip_by_global_norm(g, 2.0),
    ),
    (
        "adaptive_clip",
        transforms.adaptive_clip(0.05, 1e-3),
        lambda g, w: np_adaptive_clip(g, w, 0.05, 1e-3),
    ),
    ("identity", transforms.identity(), lambda g, w: g),
    (
        "chain",
        transforms.chain(transforms.clip_by_value(1.5), transforms.clip_by_global_norm(2.0)),
        lambda g, w: np_clip_by_global_norm([np.clip(x, -1.5, 1.5) for x in g], 2.0),
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,transform,reference", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_transform_matches_numpy(name, transform, reference, mode):
    out, _ = apply_transform(transform, GRADS, WEIGHTS, mode)
    for got, want in zip(out, reference(GRADS, WEIGHTS)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_reference_actually_clips():
    # Guards the test above against data that no transform would change.
    for name, _, reference in REFERENCES:
        if name != "identity":
            assert any(not np.allclose(a, b) for a, b in zip(reference(GRADS, WEIGHTS), GRADS)), (
                name
            )


def test_clip_by_global_norm_gives_the_norm_asked_for(mode):
    out, _ = apply_transform(transforms.clip_by_global_norm(0.7), GRADS, WEIGHTS, mode)
    assert np.sqrt(sum(np.sum(g**2) for g in out)) == pytest.approx(0.7, rel=1e-5)


def test_none_gradients_pass_through(mode):
    variables = [tf.Variable(w) for w in WEIGHTS]
    transform = transforms.chain(
        transforms.clip_by_value(1.0),
        transforms.clip_by_norm(1.0),
        transforms.clip_by_global_norm(1.0),
        transforms.adaptive_clip(),
        transforms.skip_nonfinite(),
    )
    state = transform.init(variables)
    out, _ = transform.update(
        [tf.constant(GRADS[0]), None, tf.constant(GRADS[2])], state, variables
    )
    assert out[1] is None and out[0] is not None


@pytest.mark.parametrize(
    "transform",
    [
        transforms.clip_by_value(0.1),
        transforms.clip_by_norm(0.1),
        transforms.clip_by_global_norm(0.1),
        transforms.adaptive_clip(),
        transforms.skip_nonfinite(),
    ],
    ids=["value", "norm", "global_norm", "adaptive", "skip"],
)
def test_sparse_gradients_stay_sparse(transform):
    values = tf.constant([[3.0, 4.0], [1.0, 0.0]])
    sparse = tf.IndexedSlices(values, tf.constant([0, 2]), tf.constant([5, 2]))
    variables = [tf.Variable(tf.ones([5, 2]))]
    out, _ = transform.update([sparse], transform.init(variables), variables)
    assert isinstance(out[0], tf.IndexedSlices)


def test_sparse_global_norm_clip_matches_dense():
    values = np.array([[3.0, 4.0], [1.0, 0.0]], np.float32)
    sparse = tf.IndexedSlices(tf.constant(values), tf.constant([0, 2]), tf.constant([5, 2]))
    out, _ = transforms.clip_by_global_norm(1.0).update([sparse], (), [None])
    np.testing.assert_allclose(out[0].values.numpy(), values / np.sqrt(26.0), rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_a_sparse_gradients_norm_sums_its_repeated_rows_first(jit):
    # A token repeated in the batch gives its row twice; the optimizer applies the sum, so the
    # norm and the clip are the dense gradient's.
    values = np.array([[1.0, 2.0], [3.0, 0.0], [0.5, 0.5]], np.float32)
    sparse = tf.IndexedSlices(tf.constant(values), tf.constant([4, 4, 1]), tf.constant([6, 2]))
    dense = tf.convert_to_tensor(sparse).numpy()  # rows 4 and 1: [4, 2] and [0.5, 0.5]

    @tf.function(jit_compile=jit)
    def norms_and_clipped(values, indices):
        grad = tf.IndexedSlices(values, indices, tf.constant([6, 2]))
        (clipped,), _ = transforms.clip_by_global_norm(1.0).update([grad], (), [None])
        return transforms.sq_norm(grad), transforms.global_norm([grad]), clipped.values

    sq, norm, clipped = norms_and_clipped(sparse.values, sparse.indices)
    assert float(sq) == pytest.approx(float(np.sum(dense**2)))
    assert float(norm) == pytest.approx(float(np.sqrt(np.sum(dense**2))))
    applied = tf.convert_to_tensor(tf.IndexedSlices(clipped, sparse.indices, sparse.dense_shape))
    assert float(tf.norm(applied)) == pytest.approx(1.0)  # the norm asked for


def test_a_sparse_gradients_norm_under_xla_sorts_nothing():
    # A sort anywhere in an XLA step made CPU draw the dropout masks 6x slower (TF 2.21):
    # `tf.unique` sorts, so under XLA the repeated rows are found without it.
    @tf.function(jit_compile=True)
    def sq(values, indices):
        return transforms.sq_norm(tf.IndexedSlices(values, indices, tf.constant([6, 2])))

    values, indices = tf.ones([3, 2]), tf.constant([4, 4, 1])
    hlo = sq.experimental_get_compiler_ir(values, indices)(stage="hlo")
    assert " sort(" not in hlo and " while(" not in hlo
    assert float(sq(values, indices)) == pytest.approx(4.0 + 4.0 + 1.0 + 1.0)


def test_skip_nonfinite_counts_and_gates(mode):
    transform = transforms.skip_nonfinite(max_consecutive=None)
    bad = [g.copy() for g in GRADS]
    bad[1][0] = np.nan
    state = transform.init([])
    for grads, skipped in [(GRADS, 0), (bad, 1), (bad, 1), (GRADS, 0), (bad, 1)]:
        out, state = apply_transform(transform, grads, WEIGHTS, mode, state)
        gate = transform.should_apply(state)
        assert bool(gate) is (not skipped)
    assert int(state["total"]) == 3
    assert int(state["longest"]) == 2
    assert int(state["consecutive"]) == 1


def test_skip_nonfinite_leaves_weights_and_optimizer_untouched(mode):
    model = mlp()
    optimizer = keras.optimizers.Adam(1e-2)
    x, y = regression_data()
    step = gradguard.TrainStep(
        model,
        optimizer,
        keras.losses.MeanSquaredError(),
        every=1000,
        transform=transforms.skip_nonfinite(max_consecutive=None),
        policy={"non-finite": "warn"},
        **mode_kwargs(mode),
    )
    step(x, y)
    weights = [w.numpy() for w in model.weights]
    iterations = int(optimizer.iterations.numpy())
    bad = x.copy()
    bad[3, 2] = np.inf
    for _ in range(3):
        step(bad, y)
    for old, new in zip(weights, model.weights):
        np.testing.assert_array_equal(old, new.numpy())
    assert int(optimizer.iterations.numpy()) == iterations
    assert step.statistics()["skipped_updates"] == 3
    step(x, y)
    assert int(optimizer.iterations.numpy()) == iterations + 1


def test_skip_nonfinite_raises_after_max_consecutive():
    x, y = regression_data()
    bad = x.copy()
    bad[0, 0] = np.nan
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-3),
        keras.losses.MeanSquaredError(),
        every=4,
        transform=transforms.skip_nonfinite(max_consecutive=3),
        policy={"non-finite": "warn"},
    )
    step(x, y)
    for _ in range(3):
        step(bad, y)  # steps 1..3: three skips in a row; no read yet
    with pytest.raises(gradguard.NonFiniteError, match="3 updates in a row"):
        step(x, y)  # step 4 reads


def test_clipping_is_applied_before_the_update(mode):
    # With SGD(lr=1) the change of the weights is exactly minus the transformed gradient.
    model = mlp()
    x, y = regression_data()
    step = gradguard.TrainStep(
        model,
        keras.optimizers.SGD(1.0),
        keras.losses.MeanSquaredError(),
        transform=transforms.clip_by_global_norm(0.25),
        **mode_kwargs(mode),
    )
    before = [w.numpy() for w in model.trainable_variables]
    step(x, y)
    delta = [w.numpy() - b for w, b in zip(model.trainable_variables, before)]
    assert np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in delta)) == pytest.approx(
        0.25, rel=1e-4
    )
    stats = step.statistics()
    assert stats["grad_norm"] > 0.25
    assert stats["grad_norm_after"] == pytest.approx(0.25, rel=1e-5)
    assert stats["clipped_steps"] == 1


@pytest.mark.parametrize(
    "factory,kwargs",
    [
        (transforms.clip_by_value, {"limit": 0}),
        (transforms.clip_by_norm, {"max_norm": -1.0}),
        (transforms.clip_by_global_norm, {"max_norm": "1"}),
        (transforms.adaptive_clip, {"clipping": 0.0}),
        (transforms.skip_nonfinite, {"max_consecutive": 0}),
    ],
)
def test_bad_transform_arguments_are_named(factory, kwargs):
    (arg,) = kwargs
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


def test_chain_rejects_non_transforms():
    with pytest.raises(TypeError, match="argument 1 is float"):
        transforms.chain(transforms.identity(), 1.0)


@pytest.mark.parametrize("make", [transforms.clip_by_global_norm, transforms.clip_by_norm])
def test_non_finite_clipping_limits_are_refused(make):
    with pytest.raises(ValueError, match="must be finite"):
        make(float("inf"))


class _Poison(transforms.GradientTransform):
    """A transform that turns every gradient into NaN (as a clipping limit of inf did)."""

    def update(self, grads, state, variables):
        return [None if g is None else g * float("nan") for g in grads], state


def test_updates_a_transform_poisons_are_reported_not_silent():
    model = mlp()
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(
        model,
        keras.optimizers.Adam(1e-3),
        keras.losses.MeanSquaredError(),
        transform=transforms.chain(_Poison(), transforms.skip_nonfinite(None)),
        every=5,
        policy=WARN_ALL,
    )
    x, y = regression_data()
    for _ in range(6):
        step(x, y)
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert finding.details["first_in"] == "transform" and finding.step == 0
    assert "every update so far" in finding.message and "transform" in finding.message
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_each_gradient_norm_is_computed_once_per_step():
    g = tf.constant([3.0, 4.0])
    other = tf.constant([1.0])
    assert transforms.sq_norm(g) is not transforms.sq_norm(g)  # no memory outside a step
    with transforms.computing_norms_once():
        first = transforms.sq_norm(g)
        assert float(first) == 25.0
        assert transforms.sq_norm(g) is first
        total = transforms.global_norm([g, None, other])
        assert float(total) == pytest.approx(26.0**0.5)
        assert transforms.global_norm([g, other]) is total  # the same gradients: the same norm
        assert transforms.global_norm([g]) is not total
        with transforms.computing_norms_once():  # nested: the outer step's norms stay known
            assert transforms.sq_norm(g) is first
        assert transforms.sq_norm(g) is first
    assert transforms.sq_norm(g) is not first


def test_one_gradients_squared_norm_and_its_global_norm_stay_apart():
    # A model with one trainable variable: the step takes the global norm of its one gradient
    # first, and the per-variable squared norms after; each must stay what it is.
    g = tf.constant([3.0, 4.0])
    with transforms.computing_norms_once():
        assert float(transforms.global_norm([g])) == 5.0
        assert float(transforms.sq_norm(g)) == 25.0
        assert norms.sq_norms([g, None]).numpy().tolist() == [25.0, 0.0]
        assert norms.sq_norms([g]).numpy().tolist() == [25.0]
    with transforms.computing_norms_once():
        assert norms.sq_norms([g]).numpy().tolist() == [25.0]
        assert float(transforms.global_norm([g])) == 5.0


def test_a_steps_squared_norms_double_once_in_a_graph():
    # Each op costs the executor about a microsecond: half-norms are doubled as one vector.
    grads = [tf.ones([3, 2]), tf.ones([2]), tf.ones([4, 1])]
    fn = tf.function(lambda *gs: norms.sq_norms(list(gs)))
    assert fn(*grads).numpy().tolist() == [6.0, 2.0, 4.0]
    ops = [op.type for op in fn.get_concrete_function(*grads).graph.get_operations()]
    assert ops.count("L2Loss") == 3 and ops.count("Mul") == 1


def test_norms_compiled_by_xla_are_sums_of_squares_and_wide_ones_a_matrix_product():
    # XLA on CPU adds up a reduction serially; a gradient with rows of 16 or more is summed as a
    # matrix-vector product instead (3-4x faster), with the same value.
    rng = np.random.default_rng(0)
    shapes = [(40, 32), (3, 3, 4, 32), (7,), (33, 8), ()]
    grads = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    norms_of = tf.function(lambda *gs: [transforms.sq_norm(g) for g in gs], jit_compile=True)
    got = [float(n) for n in norms_of(*grads)]
    assert got == pytest.approx([float(np.sum(g.astype(np.float64) ** 2)) for g in grads], 1e-5)
    graph = norms_of.get_concrete_function(*grads).graph
    assert [op.type for op in graph.get_operations()].count("MatMul") == 2  # the two wide ones


def test_a_norm_computed_in_a_branch_is_not_used_outside_it():
    # A tensor of a conditional's branch does not exist outside it: the step computes its own.
    @tf.function(autograph=False)
    def step(g, flag):
        with transforms.computing_norms_once():
            inside = tf.cond(flag, lambda: transforms.sq_norm(g), lambda: tf.constant(0.0))
            outside = transforms.sq_norm(g)
            return outside + inside + transforms.sq_norm(g)

    assert float(step(tf.constant([3.0, 4.0]), tf.constant(True))) == 75.0
