"""TrainStep: same numbers as the plain loop, one trace, every input form, bad input named."""

from __future__ import annotations

import logging
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    MODES,
    WARN_ALL,
    bpr_recommender,
    mlp,
    mode_kwargs,
    plain_step,
    regression_data,
)

import gradguard
from gradguard import checks


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_same_weights_as_the_plain_loop(mode, optimizer):
    make_opt = {
        "adam": lambda: keras.optimizers.Adam(1e-2),
        "sgd": lambda: keras.optimizers.SGD(1e-2, momentum=0.9),
    }[optimizer]
    x, y = regression_data()
    loss = keras.losses.MeanSquaredError()
    plain_model, guarded_model = mlp(depth=2), mlp(depth=2)
    plain = plain_step(plain_model, make_opt(), loss, jit=mode == "jit")
    guarded = gradguard.TrainStep(
        guarded_model,
        make_opt(),
        loss,
        transform=gradguard.identity(),
        every=5,
        **mode_kwargs(mode),
    )
    for i in range(20):
        batch = slice((i % 4) * 16, (i % 4) * 16 + 16)
        want = plain(x[batch], y[batch])
        got = guarded(x[batch], y[batch])
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)
    for a, b in zip(plain_model.weights, guarded_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_steady_loop_traces_once_and_last_batch_once():
    x, y = regression_data(n=100)
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.Adam(1e-3), keras.losses.MeanSquaredError(), every=3
    )
    for _epoch in range(3):
        for i in range(0, 100, 32):  # batches of 32, 32, 32 and a last one of 4
            step(x[i : i + 32], y[i : i + 32])
    assert step.tracing_count == 2


@pytest.mark.parametrize("mode", ["graph", "jit"])
def test_no_retracing_across_host_reads(mode):
    x, y = regression_data()
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-3),
        keras.losses.MeanSquaredError(),
        every=2,
        **mode_kwargs(mode),
    )
    for _ in range(7):
        step(tf.constant(x), tf.constant(y))
    assert step.tracing_count == 1


def test_many_train_steps_in_one_process_do_not_warn_of_retracing():
    # A notebook cell run again, a sweep: each TrainStep traces once, which is no retracing.
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        x, y = regression_data()
        for _ in range(7):
            step = gradguard.TrainStep(
                mlp(), keras.optimizers.Adam(1e-3), keras.losses.MeanSquaredError(), every=1
            )
            step(x, y)
            step(x, y)
    finally:
        logger.removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]


def test_host_reads_only_every_n_steps():
    x, y = regression_data()
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.Adam(1e-3), keras.losses.MeanSquaredError(), every=4
    )
    with mock.patch.object(
        checks.ZeroGradient, "findings", autospec=True, return_value=[]
    ) as judged:
        for _ in range(10):
            step(x, y)
        assert judged.call_count == 3  # after steps 0, 4 and 8
        step.report()
        assert judged.call_count == 4


def test_read_every_reads_rarely_while_statistics_are_logged_every_step(tmp_path):
    from test_tensorboard import read_scalars

    x, y = regression_data()
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-3),
        keras.losses.MeanSquaredError(),
        every=1,
        read_every=4,
        log_dir=str(tmp_path),
    )
    with mock.patch.object(
        checks.ZeroGradient, "findings", autospec=True, return_value=[]
    ) as judged:
        for _ in range(10):
            step(x, y)
        assert judged.call_count == 3  # after steps 0, 4 and 8
    step.report()
    assert sorted(read_scalars(str(tmp_path))["gradguard/loss"]) == list(range(10))


def test_batch_tuple_and_sample_weight_forms():
    x, y = regression_data()
    w = np.linspace(0.0, 2.0, len(x)).astype("float32")
    loss = keras.losses.MeanSquaredError()
    model = mlp()
    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(0.0), loss, policy={"weights-unchanged": "ignore"}
    )
    unweighted = float(loss(y, model(x)))
    weighted = float(loss(y, model(x), sample_weight=w))
    assert float(step(x, y)) == pytest.approx(unweighted, rel=1e-6)
    assert float(step((x, y))) == pytest.approx(unweighted, rel=1e-6)
    assert float(step(x, y, w)) == pytest.approx(weighted, rel=1e-6)
    assert float(step((x, y, w))) == pytest.approx(weighted, rel=1e-6)


def test_plain_function_loss_is_averaged_and_weighted():
    x, y = regression_data()
    w = np.linspace(0.0, 2.0, len(x)).astype("float32")
    model = mlp()

    def squared_error(y_true, y_pred):  # per example, not reduced
        return tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)

    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(0.0), squared_error, policy={"weights-unchanged": "ignore"}
    )
    per_example = np.sum((y - model(x).numpy()) ** 2, axis=-1)
    assert float(step(x, y)) == pytest.approx(per_example.mean(), rel=1e-5)
    assert float(step(x, y, w)) == pytest.approx((per_example * w).mean(), rel=1e-5)


def test_python_control_flow_in_a_loss_function_works_as_under_tf_function(mode):
    # gradguard's own code traces without AutoGraph (seconds off the first call); the user's
    # loss function keeps it, as their own @tf.function would give it.
    x, y = regression_data()
    model = mlp()

    def loss_fn(y_true, y_pred):
        error = tf.reduce_mean(tf.square(y_true - y_pred))
        if error > 1e6:  # a Python `if` on a tensor: needs AutoGraph inside a graph
            error = tf.sqrt(error)
        return error

    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(0.0), loss_fn, policy=WARN_ALL, **mode_kwargs(mode)
    )
    expected = np.mean((y - model(x).numpy()) ** 2)
    assert float(step(x, y)) == pytest.approx(expected, rel=1e-5)
    assert float(step(x, y)) == pytest.approx(expected, rel=1e-5)


def test_an_eager_step_folds_its_checks_as_one_graph_traced_once_per_kind_of_step():
    # Eagerly, the checks' few hundred small ops would be dispatched one by one from Python;
    # they run as one traced function, which must not retrace as steps go by.
    x, y = regression_data()
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.Adam(1e-3), "mse", run_eagerly=True, every=5, policy=WARN_ALL
    )
    for i in range(12):
        n = 64 if i < 11 else 40  # a smaller last batch, as at an epoch's end
        step(x[:n], y[:n])
    fold = step.core._eager_fold
    assert fold is not None
    assert fold.experimental_get_tracing_count() <= 3  # lean, measuring, one new batch size
    assert step.core.steps == 12
    assert step.statistics()["steps"] == 12


def test_dict_and_tuple_inputs_for_multi_input_models(mode):
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, out)
    rng = np.random.default_rng(0)
    xa = rng.normal(size=(16, 3)).astype("float32")
    xb = rng.normal(size=(16, 2)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    step = gradguard.TrainStep(
        model, keras.optimizers.Adam(1e-2), keras.losses.MeanSquaredError(), **mode_kwargs(mode)
    )
    first = float(step({"a": xa, "b": xb}, y))
    for _ in range(30):
        last = float(step({"a": xa, "b": xb}, y))
    assert last < first

    seq_a, seq_b = keras.Input((3,)), keras.Input((2,))
    seq_model = keras.Model(
        [seq_a, seq_b], keras.layers.Dense(1)(keras.layers.Concatenate()([seq_a, seq_b]))
    )
    step = gradguard.TrainStep(
        seq_model, keras.optimizers.Adam(1e-2), keras.losses.MeanSquaredError(), **mode_kwargs(mode)
    )
    assert np.isfinite(float(step((xa, xb), y)))


def test_regularization_losses_are_added():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L2(0.5)),
            keras.layers.Dense(1),
        ]
    )
    x, y = regression_data()
    loss = keras.losses.MeanSquaredError()
    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(0.0), loss, policy={"weights-unchanged": "ignore"}
    )
    penalty = 0.5 * float(np.sum(model.layers[0].kernel.numpy() ** 2))
    assert float(step(x, y)) == pytest.approx(float(loss(y, model(x))) + penalty, rel=1e-5)


def test_unbuilt_subclassed_model_is_built_on_first_call():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))

    x, y = regression_data()
    net = Net()
    step = gradguard.TrainStep(net, keras.optimizers.Adam(1e-2), keras.losses.MeanSquaredError())
    first = float(step(x, y))
    for _ in range(20):
        last = float(step(x, y))
    assert last < first
    assert step.core.layout.names[0].endswith("/kernel")
    assert not step.core.layout.names[0].startswith(net.name)


def test_statistics_are_the_latest_step():
    x, y = regression_data()
    step = gradguard.TrainStep(mlp(), keras.optimizers.Adam(1e-3), keras.losses.MeanSquaredError())
    loss = step(x, y)
    stats = step.statistics()
    assert stats["steps"] == 1
    assert stats["loss"] == pytest.approx(float(loss))
    assert stats["grad_norm"] > 0
    assert stats["skipped_updates"] == 0


def test_report_json_follows_the_contract():
    import json

    x, y = regression_data()
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-10),
        keras.losses.MeanSquaredError(),
        policy={"weights-unchanged": "warn"},
    )
    for _ in range(3):
        step(x, y)
    data = json.loads(step.report().to_json())
    assert data["gradguard_version"] == gradguard.__version__
    assert data["steps_observed"] == 3
    finding = next(f for f in data["findings"] if f["code"] == "update-too-small")
    assert finding["severity"] == "warning"
    assert finding["step"] == 2  # judged at report(), after measured steps 0 and 1
    assert finding["variables"][0].endswith("/kernel")
    assert not finding["variables"][0].startswith("sequential")
    assert set(finding) >= {"code", "severity", "message", "step", "variables", "details"}


# Bad input: a clear error naming what was received, and the model untouched.


def _untouched(model, before):
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_optimizer_that_is_not_keras():
    with pytest.raises(TypeError, match="Keras optimizer.*got builtins.str"):
        gradguard.TrainStep(mlp(), "adam", keras.losses.MeanSquaredError())


def test_model_without_trainable_variables():
    model = mlp()
    model.trainable = False
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), keras.losses.MeanSquaredError())
    x, y = regression_data()
    with pytest.raises(ValueError, match="no trainable variables"):
        step(x, y)


def test_loss_with_integer_dtype():
    model = mlp()
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(
        model, keras.optimizers.Adam(), lambda yt, yp: tf.cast(tf.reduce_sum(yp), tf.int32)
    )
    x, y = regression_data()
    with pytest.raises(TypeError, match="int32.*floating point"):
        step(x, y)
    _untouched(model, before)


def test_inputs_that_do_not_match_the_model():
    model = mlp(features=8)
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), keras.losses.MeanSquaredError())
    x, y = regression_data(features=5)
    with pytest.raises(ValueError, match=r"model could not be called on x with shapes \(64, 5\)"):
        step(x, y)
    _untouched(model, before)


def test_x_and_y_with_different_numbers_of_examples():
    model = mlp(features=8)
    before = [w.numpy() for w in model.weights]
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), keras.losses.MeanSquaredError())
    x, y = regression_data()
    with pytest.raises(ValueError, match=r"different numbers of examples \(x 64, y 63 rows\)"):
        step(x, y[:63])
    _untouched(model, before)


def test_a_batch_without_its_batch_axis_after_batched_ones_is_named():
    # The step is traced again with a shape of unknown rank: the message says so and how to fix
    # it (it used to fail formatting that shape, hiding the error).
    model = mlp(features=8)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), keras.losses.MeanSquaredError())
    x, y = regression_data()
    step(x, y)
    with pytest.raises(ValueError, match=r"(?s)unknown rank.*keep x's batch axis \(x\[None\]"):
        step(x[0], y[0])


def test_transform_that_is_not_a_transform():
    with pytest.raises(TypeError, match="GradientTransform.*got function"):
        gradguard.TrainStep(
            mlp(), keras.optimizers.Adam(), keras.losses.MeanSquaredError(), transform=lambda g: g
        )


@pytest.mark.parametrize("every", [0, -3, 2.5])
@pytest.mark.parametrize("name", ["every", "read_every"])
def test_every_must_be_a_positive_int(every, name):
    with pytest.raises(ValueError, match=f"^{name} must be a positive int"):
        gradguard.TrainStep(
            mlp(), keras.optimizers.Adam(), keras.losses.MeanSquaredError(), **{name: every}
        )


def test_wrong_number_of_batch_parts():
    step = gradguard.TrainStep(mlp(), keras.optimizers.Adam(), keras.losses.MeanSquaredError())
    x, _ = regression_data()
    with pytest.raises(TypeError, match="step\\(x, y\\)"):
        step(x)


@pytest.mark.parametrize("policy", ["warn", [("non-finite", "warn")]])
def test_a_policy_that_is_not_a_mapping(policy):
    with pytest.raises(TypeError, match=r"^policy must map finding codes .* got (str|list)"):
        gradguard.TrainStep(mlp(), keras.optimizers.Adam(), "mse", policy=policy)


def test_unknown_policy_code():
    with pytest.raises(ValueError, match="unknown finding code 'zero-grad'"):
        gradguard.TrainStep(
            mlp(),
            keras.optimizers.Adam(),
            keras.losses.MeanSquaredError(),
            policy={"zero-grad": "ignore"},
        )


@pytest.mark.parametrize("log_dir", ["a number", "under a file"])
def test_a_log_dir_that_cannot_be_a_directory_is_refused_at_once(log_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("not a directory")
    path = 123 if log_dir == "a number" else tmp_path / "notes.txt" / "run1"
    error = TypeError if log_dir == "a number" else ValueError
    with pytest.raises(error, match="log_dir .*(got int 123|is under a file, .*notes.txt)"):
        gradguard.TrainStep(mlp(), keras.optimizers.Adam(), "mse", log_dir=path)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"strategy": "mirrored"}, "strategy must be a tf.distribute.Strategy.*got str"),
        ({"jit_compile": "no"}, "jit_compile must be True or False; got str 'no'"),
        (
            {"loss_fn": lambda y_pred: y_pred},
            r"function \(y_true, y_pred\).*got <lambda>\(y_pred\)",
        ),
    ],
    ids=["strategy", "jit-compile", "one-argument-loss"],
)
def test_options_of_the_wrong_kind_are_refused_at_once(kwargs, match):
    kwargs = {"loss_fn": "mse", **kwargs}
    with pytest.raises(TypeError, match=match):
        gradguard.TrainStep(mlp(), keras.optimizers.Adam(), **kwargs)


def test_python_lists_as_x_get_a_short_clear_error():
    x, y = regression_data()
    step = gradguard.TrainStep(mlp(), keras.optimizers.Adam(), "mse")
    with pytest.raises((TypeError, ValueError)) as info:
        step(x.tolist(), y)
    message = str(info.value)
    assert len(message) < 1500, len(message)
    assert "Python list of 64 items" in message and "np.asarray" in message


def test_predictions_narrower_than_labels_are_a_loss_broadcast():
    x, y = regression_data()
    labels = np.concatenate([y, y, y], axis=1)  # (64, 3) labels, a (64, 1) model
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.Adam(), keras.losses.MeanSquaredError(), policy=WARN_ALL
    )
    step(x, labels)
    (finding,) = [f for f in step.report().findings if f.code == "loss-broadcast"]
    assert "(64, 3)" in finding.message and "3 units" in finding.message
    # Class indices against logits are how sparse losses work: not flagged.
    classes = (np.abs(y) > 1).astype("int32")  # (64, 1)
    wide = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    sparse = gradguard.TrainStep(
        wide,
        keras.optimizers.Adam(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        policy=WARN_ALL,
    )
    sparse(x, classes)
    assert "loss-broadcast" not in sparse.report().codes()


def test_class_ids_against_a_softmax_in_a_regression_loss_are_a_broadcast():
    x, y = regression_data()
    classes = (y > 0).astype("float32")  # (n, 1): one class id per example (Keras raises for (n,))
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, "softmax")])
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), "mse", policy=WARN_ALL)
    step(x, classes)
    (finding,) = [f for f in step.report().findings if f.code == "loss-broadcast"]
    assert "all 3 of the softmax's probabilities" in finding.message, finding.message
    assert "sparse_categorical_crossentropy" in finding.message

    # A weight column (n, 1) beside the class id, multiplying the labels' log-probabilities
    # (n, C): a weighted cross-entropy, no comparison with the probabilities.
    def weighted(y, p):
        one_hot = tf.one_hot(tf.cast(y[:, 0], tf.int32), 3)
        return -tf.reduce_sum(one_hot * tf.math.log(p + 1e-7) * y[:, 1:2], -1)

    packed = gradguard.TrainStep(model, keras.optimizers.Adam(), weighted, policy=WARN_ALL)
    packed(x, np.concatenate([classes, np.ones_like(classes)], axis=1))
    assert "loss-broadcast" not in packed.report().codes(), str(packed.report())
    # The same ids as a sparse loss reads them: not a broadcast.
    sparse = gradguard.TrainStep(
        model, keras.optimizers.Adam(), "sparse_categorical_crossentropy", policy=WARN_ALL
    )
    sparse(x, classes)
    assert "loss-broadcast" not in sparse.report().codes(), str(sparse.report())


def _packed_weighted_mse(y_true, y_pred):
    target, weight = y_true[:, :1], y_true[:, 1:]  # the example's weight packed beside it
    return tf.reduce_mean(weight * tf.square(target - y_pred))


def _pinball(y_true, y_pred):
    error = y_true - y_pred  # one target against three quantiles
    return tf.reduce_mean(tf.maximum(QUANTILES * error, (QUANTILES - 1) * error))


QUANTILES = tf.constant([0.1, 0.5, 0.9])


@pytest.mark.parametrize(
    "loss,width,units",
    [(_packed_weighted_mse, 2, 1), (_pinball, 1, 3)],
    ids=["packed", "quantiles"],
)
def test_labels_and_predictions_of_other_widths_by_design_are_not_a_broadcast(loss, width, units):
    x, y = regression_data()
    labels = np.concatenate([y] + [np.ones_like(y)] * (width - 1), axis=1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(units)])
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), loss, policy=WARN_ALL)
    step(x, labels)
    assert "loss-broadcast" not in step.report().codes(), str(step.report())


def _triplet_loss(labels, embeddings, margin=0.2):
    """Batch-all triplet loss: every example against every other, on purpose."""
    embeddings = tf.math.l2_normalize(embeddings, -1)
    distance = 2.0 - 2.0 * tf.matmul(embeddings, embeddings, transpose_b=True)
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32)
    mask = same[:, :, None] * (1.0 - same)[:, None, :]  # anchor, positive, negative
    hinge = tf.nn.relu(distance[:, :, None] - distance[:, None, :] + margin)
    return tf.reduce_sum(hinge * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def test_a_pairwise_metric_learning_loss_is_not_a_broadcast():
    x, y = regression_data()
    classes = (y[:, 0] > 0).astype("int32")  # (64,) class ids against (64, 4) embeddings
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), _triplet_loss, policy=WARN_ALL)
    step(x, classes)
    assert "loss-broadcast" not in step.report().codes(), str(step.report())


def test_one_label_per_sequence_against_every_time_step_is_a_loss_broadcast():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 2)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]  # one target per sequence
    model = keras.Sequential(
        [
            keras.Input((6, 2)),
            keras.layers.SimpleRNN(4, return_sequences=True),
            keras.layers.Dense(1),
        ]
    )
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), "mse", policy=WARN_ALL)
    step(x, y)
    (finding,) = [f for f in step.report().findings if f.code == "loss-broadcast"]
    assert "return_sequences=False" in finding.message and "(32, 6, 1)" in finding.message


@pytest.mark.parametrize("from_logits", [False, True])
def test_a_logits_output_into_a_loss_on_probabilities_is_a_mismatch(from_logits):
    x, y = regression_data()
    classes = (y > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])  # logits
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), loss, policy=WARN_ALL)
    step(x, classes)
    codes = step.report().codes()
    assert ("from-logits-mismatch" in codes) == (not from_logits), str(step.report())


@pytest.mark.parametrize(
    "towers, from_logits, found",
    [
        ("embeddings", False, True),  # hunt23 p09: a matrix factorization's score
        ("embeddings", True, False),
        ("softmax", False, False),  # two probability vectors: their dot product is one too
    ],
)
def test_a_dot_of_two_towers_into_a_loss_on_probabilities_is_a_mismatch(towers, from_logits, found):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, (32, 1)), rng.integers(0, 30, (32, 1))
    clicked = rng.integers(0, 2, (32, 1)).astype("float32")
    u, i = keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")
    activation = "softmax" if towers == "softmax" else None
    vectors = [
        keras.layers.Dense(8, activation=activation)(
            keras.layers.Flatten()(keras.layers.Embedding(n, 8)(t))
        )
        for n, t in ((20, u), (30, i))
    ]
    model = keras.Model([u, i], keras.layers.Dot(axes=1)(vectors))
    loss = keras.losses.BinaryCrossentropy(from_logits=from_logits)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(), loss, policy=WARN_ALL)
    step([users, items], clicked)
    mismatch = [f for f in step.report().findings if f.code == "from-logits-mismatch"]
    assert bool(mismatch) == found, str(step.report())
    if found:
        assert "dot product of two vectors" in mismatch[0].message


@pytest.mark.parametrize("eager", [True, False])
def test_guard_over_a_model_with_nothing_to_train_says_so(eager):
    model = mlp()
    for layer in model.layers:
        layer.trainable = False
    optimizer = keras.optimizers.Adam()

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer)(train_step if eager else tf.function(train_step))
    with pytest.raises(ValueError, match="has no trainable variables"):
        step(*regression_data())


def test_checks_must_be_a_list_and_may_be_a_function():
    with pytest.raises(TypeError, match="single ZeroGradient.*checks=\\[ZeroGradient"):
        gradguard.TrainStep(
            mlp(), keras.optimizers.Adam(), "mse", checks=gradguard.checks.ZeroGradient()
        )
    step = gradguard.TrainStep(
        mlp(), keras.optimizers.Adam(), "mse", checks=gradguard.checks.default_checks
    )
    step(*regression_data())
    assert len(step.core.checks) == len(gradguard.checks.default_checks())


def test_a_loss_returning_a_tuple_or_a_weighted_scalar_is_refused_clearly():
    x, y = regression_data()
    model = mlp()
    before = [w.numpy() for w in model.weights]
    tupled = gradguard.TrainStep(model, keras.optimizers.Adam(), lambda yt, yp: (1.0, yp))
    with pytest.raises(TypeError, match="returned a tuple of 2 values"):
        tupled(x, y)
    scalar = gradguard.TrainStep(
        model, keras.optimizers.Adam(), lambda yt, yp: tf.reduce_mean(tf.square(yt - yp))
    )
    with pytest.raises(TypeError, match="sample_weight cannot weight the examples"):
        scalar(x, y, np.ones(len(x), "float32"))
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())  # bad input leaves the weights alone


def test_the_label_sample_stays_small_and_takes_the_whole_run():
    from gradguard import chance

    masks = chance.LabelSample()  # segmentation masks: 65,536 labels an example
    for i in range(100):
        masks.add(np.full((8, 256, 256), i % 3, np.int32))
    masks.add(np.zeros((0, 256, 256), np.int32))  # an empty batch adds nothing
    assert sum(b.size for b in masks._batches) == 64 * 256 * 256  # one mask of each batch kept
    assert masks.chance_loss("sparse_categorical_crossentropy", 3) == pytest.approx(np.log(3), 0.1)
    targets = chance.LabelSample(limit=8)  # more batches than kept: a uniform sample of them
    y = np.arange(64 * 32, dtype=np.float64)[:, None]  # ordered: each batch a narrow slice
    for i in range(64):
        targets.add(y[32 * i : 32 * (i + 1)])
    assert targets.chance_loss("mse", 1) == pytest.approx(float(np.var(y)), rel=0.5)


def test_the_chance_level_needs_enough_labels_and_smooths_them_as_the_loss_does():
    from gradguard import chance

    rare = (np.random.default_rng(0).random(4000) < 0.05).astype("float32")  # 5% positives
    p = rare.mean() * 0.9 + 0.05  # the smoothed labels' mean
    smoothed = keras.losses.BinaryCrossentropy(label_smoothing=0.1)
    assert chance.chance_loss(smoothed, 1, rare) == pytest.approx(
        -(p * np.log(p) + (1 - p) * np.log(1 - p))
    )
    # Nine labels of ten classes (a batch of one, read a few times): too few to tell the
    # frequencies, so the classes are taken as balanced, the most that chance can score.
    assert chance.chance_loss("sparse_categorical_crossentropy", 10, np.arange(9)) == (
        pytest.approx(np.log(10))
    )
    assert chance.chance_loss("mse", 1, np.arange(50.0)) is None
    assert chance.chance_loss("mse", 1, np.arange(500.0)) == pytest.approx(np.var(np.arange(500)))
    # Smoothed by 0.9, every label is about 0.5: a model that learned scores within 1% of one
    # that did not, so there is no level to judge by.
    assert chance.chance_loss(keras.losses.BinaryCrossentropy(label_smoothing=0.9), 1, rare) is None


def test_a_teachers_near_uniform_targets_claim_no_chance_level():
    # Distillation at temperature 10: a student that learned the targets scores their entropy,
    # within 1% of ln 10, as one that ignores its inputs would.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(320 * 32, 20)).astype(np.float32)
    soft = tf.nn.softmax(x @ (0.25 * rng.normal(size=(20, 10))) / 10.0).numpy()
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(32, "relu"), keras.layers.Dense(10)]
    )
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3), loss, every=5, policy=WARN_ALL)
    for i in range(320):
        step(x[32 * i : 32 * (i + 1)], soft[32 * i : 32 * (i + 1)])
    assert not step.report().findings, str(step.report())
    assert step.core.notes["chance_loss"] is None


def test_weighted_examples_have_no_chance_level_to_be_judged_by():
    # Balanced weights on 10% positives: the best constant prediction scores ln 2 under them,
    # not the labels' entropy (0.33), which a model that learned sits at. Healthy: silent.
    rng = np.random.default_rng(14)
    x = rng.normal(size=(320 * 32, 4)).astype(np.float32)
    score = x @ np.array([2.0, -1.0, 0.5, 1.0], np.float32) + rng.normal(size=len(x))
    y = (score > np.quantile(score, 0.9)).astype(np.float32)[:, None]
    weights = np.where(y[:, 0] == 1, 5.0, 0.5 / 0.9).astype(np.float32)
    model = mlp(features=4)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3), loss, every=5, policy=WARN_ALL)
    for i in range(320):
        rows = slice(32 * i, 32 * (i + 1))
        step(x[rows], y[rows], weights[rows])
    assert not step.report().findings, str(step.report())
    assert step.core.notes["chance_loss"] is None


@pytest.mark.parametrize("signs", ["both", "positive"])
def test_weights_of_both_signs_make_a_surrogate_whose_value_is_not_judged(signs):
    # An actor-critic's step: actions weighted by advantages of either sign, which grow as the
    # returns do; the weighted loss rises while the policy learns. With weights all positive the
    # same rise is still a loss that does not decrease.
    rng = np.random.default_rng(3)
    model = mlp(features=4)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3), loss, every=5, policy=WARN_ALL)
    for i in range(150):
        x = rng.normal(size=(32, 4)).astype(np.float32)
        y = (x[:, :1] > 0).astype(np.float32)
        low = -0.5 if signs == "both" else 0.5
        weights = rng.choice([1.0, low], size=32).astype(np.float32) * (1.0 + i / 10)
        step(x, y, weights)
    codes = [f.code for f in step.report().findings]
    assert ("loss-not-decreasing" in codes) == (signs == "positive"), codes


@pytest.mark.parametrize("labels", ["ordered", "noise"])
def test_the_chance_level_is_the_runs_not_the_first_batchs(labels):
    # Unshuffled data ordered by its target: the first batch's variance is a small part of the
    # data's, and a model that learned would be told it only guesses. Labels of pure noise,
    # never seen twice: a model can do no better than chance, and is told so.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20 * 512, 4)).astype(np.float32)
    y = x @ np.array([[2.0], [-1.0], [0.5], [1.0]], np.float32)
    if labels == "noise":
        y = rng.normal(size=y.shape).astype(np.float32) * y.std()
    else:  # an epoch of 512 examples sorted outward from the median target, repeated
        order = np.argsort(np.abs(y[:512, 0] - np.median(y[:512, 0])))
        x, y = np.tile(x[order], (20, 1)), np.tile(y[order], (20, 1))
    model = mlp(features=4)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), "mse", every=5, policy=WARN_ALL)
    for i in range(320):
        step(x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)])
    codes = step.report().codes()
    assert ("loss-not-decreasing" in codes) == (labels == "noise"), str(step.report())
    assert step.core.notes["chance_loss"] == pytest.approx(float(np.var(y)), rel=0.2)


def test_the_checks_know_a_learning_rate_schedule_and_its_first_rate():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=1, decay_rate=0.5)
    scheduled = gradguard.TrainStep(mlp(), keras.optimizers.Adam(schedule), "mse")
    constant = gradguard.TrainStep(mlp(), keras.optimizers.Adam(1e-3), "mse")
    for step in (scheduled, constant):
        step(*regression_data())
    assert scheduled.core.notes["schedule"] == ("ExponentialDecay", pytest.approx(1e-3))
    assert constant.core.notes["schedule"] is None


def test_a_nan_loss_whose_gradients_are_finite_is_told_why_its_update_ran():
    # Poisson loss on a linear output: log of a negative prediction is NaN, its gradient is not.
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(-5))]
    )
    step = gradguard.TrainStep(model, keras.optimizers.SGD(1e-3), "poisson", policy=WARN_ALL)
    x, y = regression_data()
    step(x, np.abs(y))
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    assert "its gradients were finite" in finding.message, finding.message
    assert "softplus" in finding.message, finding.message


def test_labels_all_one_value_are_named_as_why_the_model_learns_nothing():
    # A threshold on the wrong scale: every label 0. The loss falls toward 0 (the chance level
    # of one class), and the finding says the labels are the cause, not a guessing model.
    rng = np.random.default_rng(0)
    step = gradguard.TrainStep(
        mlp(),
        keras.optimizers.Adam(1e-2),
        keras.losses.BinaryCrossentropy(from_logits=True),
        every=20,
        policy=WARN_ALL,
    )
    for _ in range(320):
        step(rng.normal(size=(16, 8)).astype("float32"), np.zeros((16, 1), "float32"))
    (finding,) = [f for f in step.report().findings if f.code == "loss-not-decreasing"]
    assert "Every label sampled over the run was 0" in finding.message, finding.message


def test_labels_one_class_by_construction_are_no_level_of_zero():
    # BPR: every label 1, the output a difference of scores that no bias can fit: classes are
    # taken as balanced (ln 2), which the model beats as it learns.
    model, x, y = bpr_recommender(320 * 32)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), loss, every=20, policy=WARN_ALL)
    for i in range(320):
        step([t[32 * i : 32 * (i + 1)] for t in x], y[32 * i : 32 * (i + 1)])
    assert not step.report().findings, str(step.report())
    assert step.core.notes["chance_loss"] == pytest.approx(np.log(2))


@pytest.mark.parametrize("rate", ["raised", "held"])
def test_a_learning_rate_range_test_may_end_with_its_loss_rising(rate):
    # lr_find: the rate grows 10x every 25 steps from 1e-6 until the loss blows up (4 times its
    # lowest), which is the test's answer, not a finding; held at 1e-6, the loss stays: found.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16 * 300, 8)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")  # (slow to learn: the loss ends higher)
    optimizer = keras.optimizers.SGD(1e-6, momentum=0.9)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    step = gradguard.TrainStep(mlp(), optimizer, loss_fn, every=10, policy=WARN_ALL)
    losses = []
    for i in range(300):
        if rate == "raised":
            optimizer.learning_rate.assign(1e-6 * 10 ** (i / 25))
        losses.append(float(step(x[16 * i : 16 * (i + 1)], y[16 * i : 16 * (i + 1)])))
        if not np.isfinite(losses[-1]) or losses[-1] > 4 * min(losses):
            break
    codes = step.report().codes()
    assert len(losses) >= 100 and ("loss-not-decreasing" in codes) == (rate == "held"), codes
