"""ActivationHealth: dead ReLU units and saturated sigmoid/tanh layers, in every mode."""

from __future__ import annotations

import os
import zlib
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import MODES, WARN_ALL, Case, mlp, mode_kwargs, regression_data, run_case

import gradguard
from gradguard import activations
from gradguard.checks import ActivationHealth, default_checks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test in graph mode and in one of eager or XLA, by its name (as the harness rotates
    its cases over the modes: all three modes stay covered, the suite a minute shorter)."""
    names = [m.args[0] for m in metafunc.definition.iter_markers("parametrize")]
    explicit = {n.strip() for a in names for n in (a.split(",") if isinstance(a, str) else a)}
    if "mode" in metafunc.fixturenames and "mode" not in explicit:
        other = ("eager", "jit")[zlib.crc32(metafunc.function.__name__.encode()) % 2]
        full = os.environ.get("GRADGUARD_FULL_MATRIX") == "1"
        metafunc.parametrize("mode", list(MODES) if full else ["graph", other])


def watching(**kwargs: Any) -> list[gradguard.checks.Check]:
    return [*default_checks(), ActivationHealth(**kwargs)]


def positive_data() -> tuple[np.ndarray, np.ndarray]:
    """Non-negative features (pixels, counts, outputs of a ReLU): where ReLU units die."""
    x, _ = regression_data()
    x = np.abs(x)
    return x, (x @ np.linspace(-1, 1, 8, dtype="float32")[:, None]).astype("float32")


def huge_first_step() -> keras.optimizers.Optimizer:
    """SGD whose first step has learning rate 1.0, then 1e-2: one bad update."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1.0, 1e-2])
    return keras.optimizers.SGD(schedule)


def dead_fraction(layer: keras.layers.Layer, x: np.ndarray) -> float:
    """NumPy: the share of the layer's ReLU units at 0 for every example of `x`."""
    kernel, bias = layer.get_weights()
    return float(1.0 - (np.maximum(x @ kernel + bias, 0.0) > 0).any(axis=0).mean())


def codes(report: gradguard.Report) -> list[str]:
    return [f.code for f in report.findings]


def test_one_huge_step_kills_relu_units(mode: str) -> None:
    case = Case("huge-step", lambda: mlp(units=32), huge_first_step, data=positive_data)
    x, _ = positive_data()
    before = dead_fraction(case.model().layers[0], x)
    step, report = run_case(case, mode, checks=watching())
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    layer = step.model.layers[0]
    expected = dead_fraction(layer, x)
    assert before < 0.2 and expected >= 0.5  # the one huge step did it
    assert dead.details["layer"] == layer.name
    assert dead.details["dead_fraction"] == pytest.approx(expected)
    # The units the step killed fired on step 0's batch: dead from step 1 (a few never fired).
    assert dead.details["since_step"] in (0, 1)
    assert dead.variables == (f"{layer.name}/kernel", f"{layer.name}/bias")
    assert "LeakyReLU" in dead.message
    assert step.statistics()[f"dead_fraction/{layer.name}"] == pytest.approx(expected)
    assert step.tracing_count == (0 if mode == "eager" else 1)


def test_outlier_batch_kills_relu_units(mode: str) -> None:
    x, y = positive_data()
    step = gradguard.TrainStep(
        mlp(units=32),
        keras.optimizers.SGD(1e-2),
        "mse",
        every=5,
        policy=WARN_ALL,
        checks=watching(),
        **mode_kwargs(mode),
    )
    step(x, y)
    step(x, y + 200.0)  # one batch of wild labels
    for _ in range(25):
        step(x, y)
    report = step.report()
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    assert dead.details["dead_fraction"] == pytest.approx(dead_fraction(step.model.layers[0], x))
    assert dead.details["since_step"] in (0, 3)  # killed by step 2's update, or never fired


def test_bias_initialization_dead_from_the_start(mode: str) -> None:
    def model() -> keras.Model:
        keras.utils.set_random_seed(1)
        dense = keras.layers.Dense(16, bias_initializer=keras.initializers.Constant(-50.0))
        relu = keras.layers.ReLU(name="relu")
        return keras.Sequential([keras.Input((8,)), dense, relu, keras.layers.Dense(1)])

    case = Case("negative-bias", model, lambda: keras.optimizers.SGD(1e-2), steps=12)
    _, report = run_case(case, mode, checks=watching())
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    assert dead.details["layer"] == "relu" and dead.details["dead_fraction"] == 1.0
    assert dead.variables == ("relu",)  # a layer without weights is named itself
    assert "from the first step" in dead.message and "all-zero weights" in dead.message


def test_units_dead_from_all_zero_weights_name_the_initializer() -> None:
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer="zeros", name="hidden"),
            keras.layers.Dense(1),
        ]
    )
    case = Case("zero-init", lambda: model, lambda: keras.optimizers.SGD(1e-2), steps=12)
    _, report = run_case(case, "graph", checks=watching())
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    assert (
        "Suspects in this model and its data: 'hidden': start with all-zero weights" in dead.message
    )


def _dropout_mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


# Each network in one mode: every mode sees one (the full matrix took a minute, XLA most of it).
@pytest.mark.parametrize(
    "mode, model",
    [
        pytest.param("jit", lambda: mlp(units=32, depth=2), id="jit-relu-mlp"),
        pytest.param("eager", _dropout_mlp, id="eager-dropout"),
        pytest.param(
            "graph", lambda: mlp(units=32, depth=6, activation="sigmoid"), id="graph-sigmoid-stack"
        ),
    ],
)
def test_healthy_networks_are_silent(mode: str, model: Any) -> None:
    # The harness's default Adam 1e-2 on standard-normal data: training that learns.
    case = Case("healthy", model, lambda: keras.optimizers.Adam(1e-2), steps=15)
    step, report = run_case(case, mode, checks=watching())
    assert "dead-units" not in codes(report)
    assert all(f.details.get("saturation") is None for f in report.findings)
    stats = step.statistics()
    assert all(v < 0.25 for k, v in stats.items() if k.startswith(("dead_", "saturation/")))


def test_sparse_inputs_and_a_modest_inactive_share_are_silent(mode: str) -> None:
    # 80% zero features, batch of 8: many units are inactive on a given batch, none are dead.
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(8, 8)) * (rng.random((8, 8)) < 0.2)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    case = Case(
        "sparse", lambda: mlp(units=32), lambda: keras.optimizers.Adam(1e-3), data=lambda: (x, y)
    )
    _, report = run_case(case, mode, checks=watching())
    assert "dead-units" not in codes(report)


def test_frozen_base_is_not_watched(mode: str) -> None:
    def model() -> keras.Model:
        keras.utils.set_random_seed(1)
        base = keras.layers.Dense(16, "relu", bias_initializer=keras.initializers.Constant(-50.0))
        base.trainable = False
        return keras.Sequential([keras.Input((8,)), base, keras.layers.Dense(1)])

    case = Case("frozen", model, lambda: keras.optimizers.SGD(1e-2), steps=12)
    step, report = run_case(case, mode, checks=watching())
    assert "dead-units" not in codes(report)
    assert not any(k.startswith("dead_fraction/") for k in step.statistics())


def saturated_sigmoid_stack() -> keras.Model:
    keras.utils.set_random_seed(1)
    bias = keras.initializers.Constant(6.0)  # sigmoid(6) = 0.9975: pinned at the top
    layers = [keras.layers.Dense(32, "sigmoid", bias_initializer=bias) for _ in range(6)]
    return keras.Sequential([keras.Input((8,)), *layers, keras.layers.Dense(1)])


def test_saturated_sigmoid_stack_is_named_as_the_cause(mode: str) -> None:
    case = Case("saturated", saturated_sigmoid_stack, lambda: keras.optimizers.SGD(1e-2))
    step, report = run_case(case, mode, checks=watching())
    (vanishing,) = [f for f in report.findings if f.code == "vanishing-gradient"]
    saturation = vanishing.details["saturation"]
    hidden = [layer.name for layer in step.model.layers[:-1]]
    assert set(saturation) == set(hidden)
    assert all(v > 0.5 for v in saturation.values())
    assert "Likely cause: saturated activations" in vanishing.message
    stats = step.statistics()
    assert stats[f"saturation/{hidden[0]}"] == pytest.approx(saturation[hidden[0]])


def test_vanishing_without_saturation_does_not_blame_it() -> None:
    case = Case("deep", lambda: mlp(units=32, depth=8, activation="sigmoid"), keras.optimizers.SGD)
    _, report = run_case(case, "graph", checks=watching())
    (vanishing,) = [f for f in report.findings if f.code == "vanishing-gradient"]
    assert "saturation" not in vanishing.details and "Likely cause" not in vanishing.message


def test_statistics_match_numpy_on_the_same_batch(mode: str) -> None:
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    flat = keras.layers.Flatten()(conv)
    hidden = keras.layers.Dense(12, activation="relu", name="hidden")(flat)
    squash = keras.layers.Dense(10, activation="sigmoid", name="squash")(hidden)
    big = keras.initializers.RandomNormal(stddev=3.0)
    squash = keras.layers.Dense(10, kernel_initializer=big, name="pre_tanh")(squash)
    bounded = keras.layers.Activation("tanh", name="bounded")(squash)
    model = keras.Model(inputs, keras.layers.Dense(1)(bounded))
    rng = np.random.default_rng(0)
    x = (3.0 * rng.normal(size=(16, 6, 6, 2))).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    # The same batch through the same (not yet updated) weights, reduced with NumPy.
    names = ["conv", "hidden", "squash", "bounded"]
    probe = keras.Model(inputs, [model.get_layer(n).output for n in names])
    outputs = [np.asarray(o) for o in probe(x)]
    check = ActivationHealth(margin=0.05)
    step = gradguard.TrainStep(
        model, keras.optimizers.SGD(1e-3), "mse", checks=[check], **mode_kwargs(mode)
    )
    step(x, y)
    state = check.state()
    assert [s.name for s in check.sites] == names
    assert [s.kind for s in check.sites] == ["relu", "relu", "sigmoid", "tanh"]
    assert [s.units for s in check.sites] == [4, 12, 10, 10]
    for i in (0, 1):
        fired = (outputs[i].reshape(-1, check.sites[i].units) != 0).any(axis=0)
        np.testing.assert_array_equal(state[f"act_last_active_{i}"], np.where(fired, 0, -1))
    sig, tanh = outputs[2], outputs[3]
    expected = [
        0.0,
        0.0,
        np.mean((sig < 0.05) | (sig > 0.95)),
        np.mean(np.abs(tanh) > 0.95),
    ]
    np.testing.assert_allclose(state["act_saturation"], expected, rtol=1e-5)
    assert 0.0 < expected[2] and 0.0 < expected[3]  # the batch exercises both


def test_outputs_gradients_and_layers_unchanged() -> None:
    x, y = regression_data()
    weights = []
    for checks in (default_checks(), watching()):
        model = mlp(units=16, depth=2)
        step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), "mse", checks=checks)
        losses = [float(step(x, y)) for _ in range(5)]
        weights.append([losses, *model.get_weights()])
        assert all("call" not in vars(layer) for layer in model.layers)  # restored
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_capture_restores_on_error() -> None:
    layer = keras.layers.ReLU()
    with pytest.raises(RuntimeError), activations.capture([layer]) as outputs:
        layer(tf.ones((2, 3)))
        raise RuntimeError
    assert "call" not in vars(layer) and len(outputs[0]) == 1


def test_off_by_default_and_silent_where_nothing_is_captured() -> None:
    assert not any(isinstance(c, ActivationHealth) for c in default_checks())
    check = ActivationHealth()
    assert check.sites == ()  # e.g. under the guard: no sites, no state, no findings
    with pytest.raises(ValueError, match="dead_fraction"):
        ActivationHealth(dead_fraction=0.0)


def test_tensorboard_scalars_per_layer(mode: str, tmp_path: Any) -> None:
    from test_tensorboard import read_scalars

    def model() -> keras.Model:
        keras.utils.set_random_seed(1)
        dead = keras.initializers.Constant(-50.0)
        return keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(8, "relu", name="alive"),
                keras.layers.Dense(8, "sigmoid", name="squash"),
                keras.layers.Dense(8, "relu", bias_initializer=dead, name="dead"),
                keras.layers.Dense(1),
            ]
        )

    case = Case("tb", model, lambda: keras.optimizers.SGD(1e-2), steps=12)
    step, _ = run_case(case, mode, checks=watching(), log_dir=str(tmp_path))
    scalars = read_scalars(str(tmp_path))
    stats = step.statistics()
    # Same cadence as the other statistics: steps 0, 5, 10.
    assert sorted(scalars["gradguard_dead_units/dead"]) == [0, 5, 10]
    assert scalars["gradguard_dead_units/dead"][10] == 1.0
    assert scalars["gradguard_dead_units/dead"][0] == 0.0  # not silent for 10 steps yet
    assert scalars["gradguard_dead_units/alive"][10] == 0.0
    saturation = scalars["gradguard_saturation/squash"]
    assert sorted(saturation) == [0, 5, 10] and 0.0 <= saturation[10] <= 1.0
    assert stats["dead_fraction/dead"] == 1.0 and stats["dead_fraction/alive"] == 0.0


def test_guard_finds_dead_units(mode: str) -> None:
    x, y = positive_data()
    model = mlp(units=32)
    optimizer = huge_first_step()
    loss_fn = keras.losses.MeanSquaredError()

    def train_step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    fn = train_step if mode == "eager" else tf.function(train_step, jit_compile=mode == "jit")
    guarded = gradguard.guard(model, optimizer, checks=watching(), every=5, policy=WARN_ALL)(fn)
    for _ in range(20):
        guarded(x, y)
    report = guarded.report()
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    layer = model.layers[0]
    assert dead.details["layer"] == layer.name
    assert dead.details["dead_fraction"] == pytest.approx(dead_fraction(layer, x))
    assert all("call" not in vars(each) for each in model.layers)


def test_guard_healthy_is_silent(mode: str) -> None:
    x, y = regression_data()
    model = mlp(units=32, depth=2)
    optimizer = keras.optimizers.Adam(1e-2)

    def step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    fn = step if mode == "eager" else tf.function(step, jit_compile=mode == "jit")
    guarded = gradguard.guard(model, optimizer, checks=watching(), every=5, policy=WARN_ALL)(fn)
    for _ in range(15):
        guarded(x, y)
    assert "dead-units" not in codes(guarded.report())
    (check,) = [c for c in guarded.guard.cores[id(optimizer)].checks if c.watches_activations]
    assert [s.name for s in check.sites] == [layer.name for layer in model.layers[:2]]
    assert int(check.state()["act_steps"]) == 15  # every update saw the activations


def test_only_activation_bearing_layers_are_watched() -> None:
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.LSTM(4, return_sequences=True),  # tanh inside its cell: not watched
            keras.layers.Dense(4, activation="gelu"),  # neither dies nor saturates
            keras.layers.Dense(4),  # linear
            keras.layers.LeakyReLU(),
            keras.layers.ReLU(negative_slope=0.1),
            keras.layers.Conv1D(2, 2, activation="relu6", name="conv"),
            keras.layers.Activation("sigmoid", name="gate"),
        ]
    )
    watched = [(layer.name, kind) for layer, kind in activations.watched_layers(model)]
    assert watched == [("conv", "relu"), ("gate", "sigmoid")]


def test_guard_with_an_optimizer_built_before() -> None:
    # The guard then builds its core before any forward pass: sites come from the layers.
    x, y = positive_data()
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(32), keras.layers.ReLU(name="relu")]
        + [keras.layers.Dense(1)]
    )
    optimizer = huge_first_step()
    optimizer.build(model.trainable_variables)

    @gradguard.guard(model, optimizer, checks=watching(), every=5, policy=WARN_ALL)
    @tf.function
    def train_step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(20):
        train_step(x, y)
    (check,) = [c for c in train_step.guard.cores[id(optimizer)].checks if c.watches_activations]
    assert [(s.name, s.units) for s in check.sites] == [("relu", 32)]
    assert int(check.state()["act_steps"]) == 20


def test_gradient_accumulation_sees_the_updating_micro_batch() -> None:
    def model() -> keras.Model:
        keras.utils.set_random_seed(1)
        dead = keras.initializers.Constant(-50.0)
        return keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(8, "relu", bias_initializer=dead, name="h")]
            + [keras.layers.Dense(1)]
        )

    case = Case("accumulate", model, lambda: keras.optimizers.SGD(1e-2), steps=24)
    step, report = run_case(case, "graph", checks=watching(), accumulate=2)
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    assert dead.details["layer"] == "h"
    assert step.statistics()["dead_fraction/h"] == 1.0


def channels_first_cnn(dead_channels: int) -> keras.Model:
    """A channels_first conv with 8 channels, the first `dead_channels` biased far negative.

    Depthwise (2 channels in, 4 out of each): Keras runs a channels_first Conv2D as NCHW, which
    TensorFlow's CPU kernels implement only with oneDNN (not on AMD CPUs), and a depthwise one
    through NHWC on any CPU.
    """
    keras.utils.set_random_seed(2)
    bias = np.array([-50.0] * dead_channels + [0.0] * (8 - dead_channels), "float32")
    conv = keras.layers.DepthwiseConv2D(
        3,
        depth_multiplier=4,
        data_format="channels_first",
        activation="relu",
        bias_initializer=keras.initializers.Constant(bias),
        name="conv",
    )
    return keras.Sequential(
        [keras.Input((2, 6, 6)), conv, keras.layers.Flatten()] + [keras.layers.Dense(1)]
    )


def image_data(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 2, 6, 6)).astype("float32")
    return x, x.mean(axis=(1, 2, 3))[:, None].astype("float32")


def test_channels_first_conv_is_judged_per_channel(mode: str) -> None:
    # Output (batch, 8 channels, 4, 4): judged on the last axis, the 4 columns would each look
    # alive (the live channel fires in every column) and the dead channels would be missed.
    case = Case(
        "channels-first", lambda: channels_first_cnn(7), keras.optimizers.SGD, data=image_data
    )
    step, report = run_case(case, mode, checks=watching())
    (dead,) = [f for f in report.findings if f.code == "dead-units"]
    assert dead.details["layer"] == "conv" and dead.details["units"] == 8
    assert dead.details["dead_fraction"] == 0.875 and "(7 of 8)" in dead.message
    (check,) = [c for c in step.core.checks if isinstance(c, ActivationHealth)]
    assert [(s.name, s.units, s.axis) for s in check.sites] == [("conv", 8, 1)]
    # Per channel, as NumPy sees it on the last batch: the last step each channel fired on.
    x, _ = image_data()
    fired = (np.asarray(step.model.layers[0](x)) > 0).any(axis=(0, 2, 3))
    np.testing.assert_array_equal(fired, [False] * 7 + [True])
    last = check.state()["act_last_active_0"]
    np.testing.assert_array_equal(last, np.where(fired, case.steps - 1, -1))


def test_channels_first_conv_healthy_is_silent(mode: str) -> None:
    case = Case(
        "channels-first", lambda: channels_first_cnn(0), keras.optimizers.SGD, data=image_data
    )
    step, report = run_case(case, mode, checks=watching())
    assert "dead-units" not in codes(report)
    assert step.statistics()["dead_fraction/conv"] == 0.0


def test_channels_first_conv_under_the_guard() -> None:
    x, y = image_data()
    model = channels_first_cnn(7)
    optimizer = keras.optimizers.SGD(1e-2)

    @gradguard.guard(model, optimizer, checks=watching(), every=5, policy=WARN_ALL)
    @tf.function
    def train_step(x: Any, y: Any) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(12):
        train_step(x, y)
    (dead,) = [f for f in train_step.report().findings if f.code == "dead-units"]
    assert dead.details["units"] == 8 and dead.details["dead_fraction"] == 0.875
