"""Each check's planted bug is found, and healthy loops stay silent, through every entry point.

`TrainStep`, the guard decorator over the user's own step, and ``gradguard run`` over an
unmodified script, in eager, graph and XLA modes (`harness.combinations`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import (
    ENTRY_POINTS,
    WIDE,
    Case,
    combinations,
    mlp,
    numpy_cut_loss,
    one_hot_rows_the_sample_misses,
    regression_data,
    train,
)

import gradguard

# -- planted bugs and healthy twins, through every entry point ----------------------------------


def _flat_y():
    x, y = regression_data()
    return x, y[:, 0]


def _wide_linear_model():
    """No variable measured whole: a bias-free linear layer over many features."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((WIDE,)), keras.layers.Dense(4, use_bias=False)])


def _wide_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, WIDE)).astype("float32"), rng.normal(size=(64, 4)).astype("float32")


def _classifier():
    """Four logits: the model a hand-written cross-entropy is given."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )


def _class_ids():
    x, _ = regression_data()
    return x, (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")


def _log_likelihood(y_true, logits):
    """A cross-entropy whose minus was forgotten: the labels' log-likelihood, minimized."""
    return tf.reduce_sum(tf.one_hot(y_true, 4) * tf.nn.log_softmax(logits), -1)


BUGS = [
    ("weights-unchanged", Case("sgd-lr-0", mlp, lambda: keras.optimizers.SGD(0.0))),
    (
        # Only samples measured: they had gradients and did not move.
        "weights-unchanged",
        Case(
            "adam-lr-0-wide",
            _wide_linear_model,
            lambda: keras.optimizers.Adam(0.0),
            data=_wide_data,
        ),
    ),
    ("update-too-small", Case("adam-lr-1e-10", mlp, lambda: keras.optimizers.Adam(1e-10))),
    # Adam's ratio falls as 1/step once the weights have grown: judged over the first steps.
    ("update-too-large", Case("adam-lr-1", mlp, lambda: keras.optimizers.Adam(1.0), steps=10)),
    # SGD's global_clipnorm 100x or more below the gradients' norm: each step moves lr x 1e-3.
    (
        "update-too-small",
        Case(
            "sgd-global-clipnorm-1e-3",
            mlp,
            lambda: keras.optimizers.SGD(0.01, global_clipnorm=1e-3),
        ),
    ),
    # ... and with momentum 0.9, which adds up to 10 such steps into one: still far too small.
    (
        "update-too-small",
        Case(
            "sgd-momentum-global-clipnorm-1e-3",
            mlp,
            lambda: keras.optimizers.SGD(0.01, momentum=0.9, global_clipnorm=1e-3),
        ),
    ),
    (
        "none-gradient",
        Case(
            "numpy-round-trip",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            numpy_cut_loss,
            modes=("eager", "graph"),  # XLA cannot compile tf.numpy_function
            crashes=True,  # Keras refuses the None gradients after gradguard saw them
        ),
    ),
    (
        "none-gradient",
        Case(
            "stop-gradient",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(tf.square(yt - tf.stop_gradient(yp))),
            crashes=True,
        ),
    ),
    (
        "zero-gradient",
        Case(
            "loss-of-rounded-output",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(yp * 0.0),
        ),
    ),
    (
        "non-finite",
        Case(
            "log-of-zero",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(tf.math.log(yp * 0.0)),
            steps=5,  # fewer than skip_nonfinite's max_consecutive, which raises regardless
        ),
    ),
    (
        "loss-broadcast",
        Case(
            "y-n-against-pred-n-1",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(tf.square(yt - yp)),
            data=_flat_y,
            # Code gradguard did not write is read from its traced graph: not when eager.
            unsupported=frozenset({"guard-eager", "run-eager"}),
        ),
    ),
    (
        "loss-sign-flipped",
        Case(
            "cross-entropy-without-minus",
            _classifier,
            lambda: keras.optimizers.Adam(1e-3),
            _log_likelihood,
            data=_class_ids,
            unsupported=frozenset({"guard-eager", "run-eager"}),
        ),
    ),
    (
        "labels-uninformative",
        Case(
            "mean-error-squared",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(yt - yp) ** 2,  # brackets of an MSE misplaced
            unsupported=frozenset({"guard-eager", "run-eager"}),
        ),
    ),
    (
        "labels-uninformative",
        Case(
            "mean-error",
            mlp,
            lambda: keras.optimizers.Adam(1e-3),
            lambda yt, yp: tf.reduce_mean(yt - yp),  # the square forgotten: linear in the error
            unsupported=frozenset({"guard-eager", "run-eager"}),
        ),
    ),
    (
        "exploding-gradient",
        Case(
            "sgd-lr-too-high",
            lambda: mlp(depth=3),
            lambda: keras.optimizers.SGD(0.5),
            steps=30,
            transform=lambda: gradguard.skip_nonfinite(None),
        ),
    ),
    (
        "vanishing-gradient",
        Case(
            "deep-sigmoid",
            lambda: mlp(units=32, depth=10, activation="sigmoid"),
            lambda: keras.optimizers.SGD(0.01),
        ),
    ),
    (
        "loss-not-decreasing",
        Case("sgd-lr-1e-12", mlp, lambda: keras.optimizers.SGD(1e-12), steps=100, every=50),
    ),
]


def _positive_data():
    """Non-negative features (pixels, counts): where ReLU units die."""
    x, _ = regression_data()
    x = np.abs(x)
    return x, (x @ np.linspace(-1, 1, 8, dtype="float32")[:, None]).astype("float32")


def _huge_first_step():
    """SGD whose first step has learning rate 1.0, then 1e-2: one bad update."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1.0, 1e-2])
    return keras.optimizers.SGD(schedule)


BUGS.append(
    (
        "dead-units",
        Case(
            "one-huge-step-kills-relus",
            lambda: mlp(units=32),
            _huge_first_step,
            data=_positive_data,
            checks=lambda: [
                *gradguard.checks.default_checks(),
                gradguard.checks.ActivationHealth(),
            ],
        ),
    )
)


def _constant_init_mlp():
    """Every unit initialized to 0.1: tanh units that stay copies of one another."""
    constant = keras.initializers.Constant(0.1)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, "tanh", kernel_initializer=constant),
            keras.layers.Dense(1, kernel_initializer=constant),
        ]
    )


def _zero_initialized_head():
    """A classifier whose output layer starts at zero: its first update parts its units."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, "tanh"),
            keras.layers.Dense(4, kernel_initializer="zeros"),
        ]
    )


BUGS.append(
    (
        "units-identical",
        Case("constant-init", _constant_init_mlp, lambda: keras.optimizers.Adam(1e-2)),
    )
)
CODE_OF = {case.name: code for code, case in BUGS}


@pytest.mark.parametrize("case,mode,entry_point", combinations(case for _, case in BUGS))
def test_planted_bug_is_found(case, mode, entry_point, tmp_path):
    report = train(case, mode, entry_point, tmp_path)
    code = CODE_OF[case.name]
    assert code in report.codes(), str(report)
    finding = next(f for f in report.findings if f.code == code)
    assert finding.message.endswith(".")
    assert finding.step >= 0


def _embedding_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(50, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )


def _embedding_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=(64, 4)).astype("int32")
    return x, rng.normal(size=(64, 1)).astype("float32")


def _wide_one_hot_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((WIDE,)), keras.layers.Dense(4, "tanh"), keras.layers.Dense(1)]
    )


def _frozen_first_layer():
    model = mlp(depth=2)
    model.layers[0].trainable = False
    return model


def _regularized():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", kernel_regularizer="l2"),
            keras.layers.Dense(1),
        ]
    )


HEALTHY = [
    Case("adam-1e-3", mlp, lambda: keras.optimizers.Adam(1e-3)),
    Case("fine-tuning-adam-1e-5", mlp, lambda: keras.optimizers.Adam(1e-5), steps=120, every=40),
    Case("frozen-layer", _frozen_first_layer, lambda: keras.optimizers.Adam(1e-3)),
    Case(
        "sparse-embedding",
        _embedding_model,
        lambda: keras.optimizers.Adam(1e-2),
        data=_embedding_data,
    ),
    Case(
        "wide-one-hot-rows-outside-the-sample",
        _wide_one_hot_model,
        lambda: keras.optimizers.SGD(0.05),
        data=one_hot_rows_the_sample_misses,
    ),
    Case("sgd-momentum", lambda: mlp(depth=3), lambda: keras.optimizers.SGD(0.01, momentum=0.9)),
    # The same tight clip as the SGD bug: Adam divides its scale out, and a learning rate 500x
    # larger makes SGD's clipped steps the usual size (normalized gradient descent).
    Case(
        "adam-global-clipnorm-1e-3", mlp, lambda: keras.optimizers.Adam(1e-3, global_clipnorm=1e-3)
    ),
    Case(
        "sgd-lr-5-global-clipnorm-1e-3",
        mlp,
        lambda: keras.optimizers.SGD(5.0, global_clipnorm=1e-3),
    ),
    Case(
        "sgd-momentum-lr-1-global-clipnorm-1e-3",
        mlp,
        lambda: keras.optimizers.SGD(1.0, momentum=0.9, global_clipnorm=1e-3),
    ),
    # Keras applies every second call: the calls that only accumulate are not updates to judge
    # (measured every 6th call, so that a call counted wrongly would be the only evidence).
    Case(
        "keras-gradient-accumulation",
        mlp,
        lambda: keras.optimizers.Adam(1e-2, gradient_accumulation_steps=2),
        steps=40,
        every=6,
    ),
    Case("deep-relu", lambda: mlp(units=32, depth=8), lambda: keras.optimizers.Adam(1e-3)),
    Case(
        "zero-initialized-head",
        _zero_initialized_head,
        lambda: keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        data=_class_ids,
    ),
    Case("regularized", _regularized, lambda: keras.optimizers.Adam(1e-3)),
    Case(
        "mean-absolute-error-by-hand",
        mlp,
        lambda: keras.optimizers.Adam(1e-3),
        lambda yt, yp: tf.reduce_mean(tf.abs(yt - yp)),
    ),
    Case(
        "clipped",
        mlp,
        lambda: keras.optimizers.Adam(1e-2),
        transform=lambda: gradguard.chain(
            gradguard.clip_by_global_norm(1.0), gradguard.skip_nonfinite()
        ),
    ),
    # Learns quickly, then plateaus for the rest of the run: not a finding. (A judgment of the
    # loss over 300 steps, the same in every mode: in graph mode, where 300 steps take a second.)
    Case(
        "plateaus-late",
        mlp,
        lambda: keras.optimizers.Adam(3e-2),
        steps=300,
        every=100,
        modes=("graph",),
    ),
]


@pytest.mark.parametrize("case,mode,entry_point", combinations(HEALTHY))
def test_healthy_loop_is_silent(case, mode, entry_point, tmp_path):
    report = train(case, mode, entry_point, tmp_path)
    assert report.findings == [], str(report)


def _log_model():
    """A model with a layer that takes log of its (partly negative) input: NaN in the forward."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    logged = keras.layers.Lambda(tf.math.log, name="log")(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(logged))


NAN_IN_A_LAYER = Case("log-layer", _log_model, lambda: keras.optimizers.SGD(1e-3), steps=3)


@pytest.mark.parametrize("case,mode,entry_point", combinations([NAN_IN_A_LAYER]))
def test_the_layer_a_nan_came_from_is_named(case, mode, entry_point, tmp_path):
    report = train(case, mode, entry_point, tmp_path)
    (finding,) = [f for f in report.findings if f.code == "non-finite"]
    if (entry_point, mode) == ("run", "jit"):
        # No call of the script's XLA step passes through gradguard on the host, and its
        # non-finite update was applied: nothing to replay, and the message says how to get it.
        assert "without jit_compile=True" in finding.message
        return
    origin = finding.details["origin"]
    assert (origin["stage"], origin["layer"], origin["op"]) == ("forward", "log", "Log"), origin
    assert "layer log" in finding.message


def _data_with_a_nan():
    x, y = regression_data()
    x[5, 3] = np.nan  # one missing value left in the table
    return x, y


NAN_IN_THE_DATA = Case(
    "nan-in-inputs", mlp, lambda: keras.optimizers.SGD(1e-3), data=_data_with_a_nan, steps=3
)


@pytest.mark.parametrize("case,mode,entry_point", combinations([NAN_IN_THE_DATA]))
def test_a_nan_in_the_inputs_is_blamed_on_the_data(case, mode, entry_point, tmp_path):
    # Told in-graph, so under XLA too, where no batch can be kept for a replay.
    report = train(case, mode, entry_point, tmp_path)
    (finding,) = [f for f in report.findings if f.code == "non-finite"]
    assert finding.details["origin"]["stage"] == "data", finding.message
    assert "the inputs x" in finding.message


@pytest.fixture
def check_numerics():
    """`tf.debugging.enable_check_numerics()`, as users turn it on to find a NaN's op."""
    tf.debugging.enable_check_numerics()
    yield
    tf.debugging.disable_check_numerics()


@pytest.mark.parametrize("mode", ["eager", "graph"])  # (XLA compiles no check_numerics)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_check_numerics_checks_the_users_ops_not_gradguards(
    entry_point, mode, tmp_path, check_numerics
):
    # gradguard's state holds infinities and NaN on purpose (a minimum not yet seen, a rate
    # not measured): checked like the user's ops, a healthy loop raised at the first fold.
    case = Case("check-numerics", mlp, lambda: keras.optimizers.Adam(1e-2), steps=12, every=4)
    report = train(case, mode, entry_point, tmp_path)
    assert report.steps_observed == 12 and report.findings == [], str(report)
    # The user's own NaN still stops the loop at its op, as without gradguard.
    with pytest.raises(tf.errors.InvalidArgumentError, match="Log"):
        train(NAN_IN_A_LAYER, mode, "guard" if entry_point == "run" else entry_point, tmp_path)
