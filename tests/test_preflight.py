"""Before the long run: `gradguard.preflight` and `gradguard.lr_find` on real small models.

Healthy classifiers and regressors stay silent (no warning or error); each planted bug is
named; the learning-rate range test has the shape of one and suggests usual rates; the model
and the optimizer come back bit for bit, also when a call raises midway; bad input is named.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.findings import Severity

LOUD = (Severity.WARNING, Severity.ERROR)


def classification(n: int = 512, features: int = 10, classes: int = 4, seed: int = 0) -> Any:
    """Labels from a noisy linear score: learnable, not trivially."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    scores = x @ rng.normal(size=(features, classes)) + 0.5 * rng.normal(size=(n, classes))
    return x, np.argmax(scores, axis=1).astype("int32")


def regression(n: int = 512, features: int = 10, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.tanh(x @ rng.normal(size=(features, 1))) + 0.1 * x[:, :1] ** 2
    return x, y.astype("float32")


def mlp(outputs: int, activation: str | None = None, features: int = 10, seed: int = 1) -> Any:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(outputs, activation=activation),
        ]
    )


def logits_loss() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def loud(report: gradguard.Report) -> list[gradguard.Finding]:
    return [f for f in report.findings if f.severity in LOUD]


def only(report: gradguard.Report, code: str) -> gradguard.Finding:
    text = str(report)  # every report prints, whatever it holds
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, text
    return found[0]


@pytest.fixture(scope="module")
def classes() -> Any:
    return classification()


@pytest.fixture(scope="module")
def targets() -> Any:
    return regression()


# -- healthy models pass silently ----------------------------------------------------------------


def test_healthy_classifier_is_silent(classes):
    report = gradguard.preflight(mlp(4), keras.optimizers.Adam(1e-3), logits_loss(), classes)
    assert loud(report) == [], str(report)
    assert isinstance(report, gradguard.PreflightReport)
    measured = report.measured
    assert measured["initial_loss"]["expected"] == pytest.approx(np.log(4))
    assert measured["gradients"] == {"variables": 6, "with_gradient": 6}
    assert measured["overfit"]["runs"][0]["fitted"] < 0.1 * measured["overfit"]["reference"]
    assert measured["labels"]["real"] < 0.5 * measured["labels"]["shuffled"]
    text = str(report)
    assert "initial loss" in text and "lr_find suggests" in text
    assert json.loads(report.to_json())["preflight"]["gradients"]["variables"] == 6


def test_healthy_regressor_is_silent(targets):
    report = gradguard.preflight(mlp(1), keras.optimizers.Adam(1e-3), "mse", targets)
    assert loud(report) == [], str(report)
    assert report.measured["initial_loss"]["reason"] == "the targets' variance"


def test_healthy_batch_norm_dropout_model_on_a_dataset_with_a_schedule_is_silent(classes):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(64),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(4),
        ]
    )
    warmup = keras.optimizers.schedules.CosineDecay(0.0, 5000, warmup_target=3e-3, warmup_steps=500)
    data = tf.data.Dataset.from_tensor_slices(classes).shuffle(512, seed=0).batch(64)
    report = gradguard.preflight(model, keras.optimizers.Adam(warmup), logits_loss(), data)
    assert loud(report) == [], str(report)
    # A schedule is judged at its peak, not at the 0 it starts from.
    assert report.measured["learning_rate"]["in_use"] == pytest.approx(3e-3, rel=1e-3)


def test_healthy_imbalanced_binary_classifier_is_silent(classes):
    x, _ = classes
    rare = (x[:, 0] > 1.65).astype("float32")[:, None]  # 5% positives
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    report = gradguard.preflight(mlp(1), keras.optimizers.Adam(1e-3), loss, (x, rare))
    assert loud(report) == [], str(report)
    # The batch to overfit holds both labels, not 16 negatives; shuffling 5% positives
    # changes too few labels to judge them.
    assert report.measured["overfit"]["reference_is"] == "constant prediction's loss"
    assert "shuffling changes only" in report.measured["labels"]["skipped"]


def test_multi_input_model_from_a_generator_of_batches(classes):
    x, y = classes
    keras.utils.set_random_seed(0)
    left, right = keras.Input((6,), name="left"), keras.Input((4,), name="right")
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([left, right]))
    model = keras.Model({"left": left, "right": right}, keras.layers.Dense(4)(hidden))

    def batches():
        for i in range(0, 512, 64):
            yield {"left": x[i : i + 64, :6], "right": x[i : i + 64, 6:]}, y[i : i + 64]

    result = gradguard.lr_find(model, keras.optimizers.Adam(), logits_loss(), batches(), steps=40)
    assert result.suggestion is not None and len(result.lrs) > 10


# -- each planted bug is named -------------------------------------------------------------------


def test_softmax_averaged_into_a_loss_with_from_logits_is_an_error(classes):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((10,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    heads = [keras.layers.Dense(4, activation="softmax")(hidden) for _ in range(2)]
    model = keras.Model(inputs, keras.layers.Average()(heads))  # an ensemble of softmaxes
    report = gradguard.preflight(model, keras.optimizers.Adam(1e-3), logits_loss(), classes)
    finding = only(report, "from-logits-mismatch")
    assert finding.severity is Severity.ERROR
    assert "applies softmax a second time" in finding.message
    assert finding.details["keras_compensates"] is False
    # Softmax twice holds the loss far above 0: the batch cannot be overfit either.
    assert only(report, "cannot-overfit-batch").severity is Severity.WARNING


@pytest.mark.filterwarnings("ignore:.*produced by a Softmax activation:UserWarning")
def test_softmax_output_with_from_logits_that_keras_compensates_is_info(classes):
    report = gradguard.preflight(
        mlp(4, "softmax"), keras.optimizers.Adam(1e-3), logits_loss(), classes
    )
    finding = only(report, "from-logits-mismatch")
    assert finding.severity is Severity.INFO, "training works: Keras takes the softmax's logits"
    assert "Keras takes the logits" in finding.message
    assert loud(report) == [], str(report)


def test_logits_into_a_loss_without_from_logits_is_an_error(classes):
    loss = keras.losses.SparseCategoricalCrossentropy()  # from_logits=False
    report = gradguard.preflight(mlp(4), keras.optimizers.Adam(1e-3), loss, classes, steps=50)
    finding = only(report, "from-logits-mismatch")
    assert finding.severity is Severity.ERROR and "set from_logits=True" in finding.message


def test_labels_shuffled_apart_from_inputs(classes):
    x, y = classes
    shuffled = (x, np.random.default_rng(5).permutation(y))
    report = gradguard.preflight(mlp(4), keras.optimizers.Adam(1e-3), logits_loss(), shuffled)
    finding = only(report, "labels-uninformative")
    assert finding.severity is Severity.WARNING
    assert "shuffled together" in finding.message
    assert finding.details["real"] >= 0.99 * finding.details["constant"]
    assert [f.code for f in loud(report)] == ["labels-uninformative"], str(report)


def test_learning_rate_1e_10_cannot_overfit_and_is_far_from_the_suggestion(classes):
    report = gradguard.preflight(mlp(4), keras.optimizers.Adam(1e-10), logits_loss(), classes)
    overfit = only(report, "cannot-overfit-batch")
    assert overfit.severity is Severity.WARNING
    assert "learns far too slowly at this rate" in overfit.message
    rate = only(report, "learning-rate-far-from-suggestion")
    assert rate.severity is Severity.INFO
    assert rate.details["lr"] == pytest.approx(1e-10)
    assert 1e-4 <= rate.details["suggestion"] <= 1e-1
    assert "1e-10" in rate.message and f"{rate.details['suggestion']:.3g}" in rate.message


class SideBranch(keras.Model):
    """A layer is called, but its output never reaches the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="relu", name="hidden")
        self.side = keras.layers.Dense(32, activation="relu", name="side")
        self.head = keras.layers.Dense(4, name="head")

    def call(self, x: Any) -> Any:
        self.side(x)  # computed and dropped
        return self.head(self.hidden(x))


def test_a_layer_cut_from_the_loss_has_no_gradient(classes):
    keras.utils.set_random_seed(1)
    report = gradguard.preflight(SideBranch(), keras.optimizers.Adam(1e-3), logits_loss(), classes)
    finding = only(report, "none-gradient")
    assert finding.severity is Severity.WARNING
    assert set(finding.variables) == {"side/kernel", "side/bias"}
    assert "not used in computing the loss" in finding.message
    assert report.measured["gradients"] == {"variables": 6, "with_gradient": 4}


def test_a_cross_entropy_without_its_minus_is_named_before_the_run(classes):
    def log_likelihood(y, logits):  # the labels' log-likelihood, minimized
        picked = tf.gather(tf.nn.log_softmax(logits), tf.cast(y, tf.int32), batch_dims=1)
        return tf.reduce_mean(picked)

    report = gradguard.preflight(mlp(4), keras.optimizers.Adam(1e-3), log_likelihood, classes)
    assert "minimizing it makes the labels" in only(report, "loss-sign-flipped").message


def test_uncentered_targets_make_the_initial_loss_unexpected(targets):
    x, y = targets
    report = gradguard.preflight(mlp(1), keras.optimizers.Adam(1e-3), "mse", (x, y + 50.0))
    finding = only(report, "initial-loss-unexpected")
    assert finding.severity is Severity.WARNING and "not centered" in finding.message
    assert finding.details["loss"] > 10 * finding.details["expected"]


def test_unscaled_inputs_make_a_classifier_confidently_wrong(classes):
    x, y = classes
    report = gradguard.preflight(
        mlp(4), keras.optimizers.Adam(1e-3), logits_loss(), (x * 100.0, y), steps=50
    )
    finding = only(report, "initial-loss-unexpected")
    assert "ln 4 for 4 classes" in finding.message and "normalize the inputs" in finding.message


def test_nan_in_the_data_is_named_and_ends_the_preflight(targets):
    x, y = targets
    x = x.copy()
    x[3, 2] = np.nan
    report = gradguard.preflight(mlp(1), keras.optimizers.Adam(1e-3), "mse", (x, y))
    finding = only(report, "non-finite")
    assert finding.details["origin"]["stage"] == "data"
    assert list(report.measured) == ["initial_loss"]


# -- the learning-rate range test ----------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer, low, high",
    [(lambda: keras.optimizers.Adam(1e-3), 1e-4, 1e-1), (keras.optimizers.SGD, 1e-3, 1.0)],
    ids=["adam", "sgd"],
)
def test_lr_find_suggests_a_usual_rate_on_a_range_test_curve(classes, optimizer, low, high):
    result = gradguard.lr_find(mlp(4), optimizer(), logits_loss(), classes)
    assert low <= result.suggestion <= high, result.suggestion
    lrs = result.lrs
    assert len(lrs) == len(result.losses) == len(result.raw_losses) < 100
    np.testing.assert_allclose(lrs, np.geomspace(1e-7, 10.0, 100)[: len(lrs)])
    assert result.stopped == "diverged"  # it stopped on divergence, before max_lr
    lowest = int(np.argmin(result.losses))
    assert result.losses[lowest] < 0.7 * result.losses[0]  # it descended ...
    assert result.losses[-1] > 2 * result.losses[lowest]  # ... and then rose
    assert lrs[10] < result.suggestion < lrs[lowest]  # the steepest descent before the minimum


def test_lr_find_regressor_and_plot(targets, tmp_path):
    result = gradguard.lr_find(mlp(1), keras.optimizers.Adam(), "mse", targets, steps=60)
    assert 1e-4 <= result.suggestion <= 1e-1
    path = tmp_path / "lr.png"
    figure = result.plot(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    axes = figure.axes[0]
    assert axes.get_xscale() == "log" and "suggestion" in axes.get_legend_handles_labels()[1][-1]


def test_plot_without_matplotlib_says_how_to_install(targets, monkeypatch):
    result = gradguard.lr_find(mlp(1), keras.optimizers.Adam(), "mse", targets, steps=10)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        result.plot()


# -- the model and the optimizer come back bit for bit -------------------------------------------


def _state(model: Any, optimizer: Any) -> tuple[list[np.ndarray], list[int], Any]:
    """Every value, which variables (by identity, in order), and the rate object."""
    variables = [*model.variables, *optimizer.variables]
    owner = getattr(optimizer, "inner_optimizer", optimizer)
    return [v.numpy().copy() for v in variables], [id(v) for v in variables], owner._learning_rate


def _assert_same(before: Any, after: Any) -> None:
    values, ids, rate = before
    new_values, new_ids, new_rate = after
    assert new_ids == ids and new_rate is rate
    for a, b in zip(values, new_values):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _trained(optimizer: Any) -> tuple[Any, Any]:
    """A model with dropout and its optimizer after a few real steps (slots not zero)."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(4),
        ]
    )
    model.compile(optimizer, logits_loss())
    x, y = classification(n=64)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return model, optimizer


OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "sgd-schedule": lambda: keras.optimizers.SGD(
        keras.optimizers.schedules.ExponentialDecay(0.05, 100, 0.5), momentum=0.9
    ),
    "loss-scale": lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_lr_find_and_preflight_restore_everything(classes, name):
    model, optimizer = _trained(OPTIMIZERS[name]())
    before = _state(model, optimizer)
    assert int(optimizer.iterations) > 0
    gradguard.lr_find(model, optimizer, logits_loss(), classes, steps=20)
    _assert_same(before, _state(model, optimizer))
    gradguard.preflight(model, optimizer, logits_loss(), classes, steps=20, lr_find_steps=10)
    _assert_same(before, _state(model, optimizer))


def test_lr_find_under_check_numerics_runs_into_divergence_as_without(classes):
    # The range test drives the loss to infinity on purpose: the user's check_numerics is
    # about their own training, not gradguard's trial.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
    optimizer = keras.optimizers.SGD(1e-3)
    # (Never stopped for a rise: on until the loss is not finite.)
    find = functools.partial(gradguard.lr_find, steps=30, max_lr=1e30, stop_factor=np.inf)
    plain = find(model, optimizer, logits_loss(), classes)
    assert plain.stopped == "non-finite"
    tf.debugging.enable_check_numerics()
    try:
        checked = find(model, optimizer, logits_loss(), classes)
    finally:
        tf.debugging.disable_check_numerics()
    assert (checked.stopped, checked.suggestion) == (plain.stopped, plain.suggestion)
    np.testing.assert_allclose(checked.raw_losses, plain.raw_losses, rtol=1e-5)


class _FailsLater:
    """A loss that fails at run time, on its `after`-th call, as a broken loss would."""

    def __init__(self, after: int):
        self.calls = tf.Variable(0)
        self.after = after

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        calls = self.calls.assign_add(1)
        check = tf.debugging.assert_less(calls, self.after, message="the loss broke")
        with tf.control_dependencies([check]):
            return logits_loss()(y_true, y_pred)


@pytest.mark.parametrize("call", ["lr_find", "preflight"])
def test_state_is_restored_when_the_call_raises_midway(classes, call):
    model, optimizer = _trained(OPTIMIZERS["sgd-schedule"]())
    before = _state(model, optimizer)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the loss broke"):
        getattr(gradguard, call)(model, optimizer, _FailsLater(after=40), classes)
    _assert_same(before, _state(model, optimizer))


def test_an_unbuilt_optimizer_is_built_and_left_fresh(targets):
    model, optimizer = mlp(1), keras.optimizers.Adam(1e-3)
    gradguard.lr_find(model, optimizer, "mse", targets, steps=10)
    assert optimizer.built and int(optimizer.iterations) == 0
    assert all(not np.any(v.numpy()) for v in optimizer.variables[2:])  # slots at zero
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


# -- bad input is named --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, error, match",
    [
        (np.zeros((8, 10)), TypeError, r"got ndarray\(8, 10\)\. Pass e\.g\. \(x_train, y_train\)"),
        ({"x": np.zeros((8, 10))}, TypeError, r"got a dict with keys \['x'\]"),
        (42, TypeError, "got int"),
        ((np.zeros((8, 10)), np.zeros(7)), ValueError, "different numbers of rows"),
        ([], ValueError, "no batches"),
        ([np.zeros((8, 10))], TypeError, r"needs \(x, y\) pairs; batch 0 is ndarray"),
        (
            [(np.zeros((8, 10)), np.zeros(8), np.ones(8))],
            TypeError,
            "batch 0 is .* of 3 items. Drop the sample weights",
        ),
        ((np.zeros((8, 10)), np.array(["a"] * 8)), TypeError, "numeric arrays; got one of dtype"),
        ((np.zeros((0, 10)), np.zeros(0)), ValueError, "no examples"),
        (
            tf.data.Dataset.from_tensor_slices((np.zeros((8, 10)), np.zeros(8))),
            TypeError,
            r"one row per example; batch 0 holds .*dataset\.batch\(32\)",
        ),
    ],
    ids=[
        *("array", "dict", "int", "rows", "empty", "not-pairs", "weights", "strings", "zero"),
        "unbatched-dataset",
    ],
)
def test_bad_data_is_named(data, error, match):
    with pytest.raises(error, match=match):
        gradguard.lr_find(mlp(1), keras.optimizers.Adam(), "mse", data)


def test_bad_arguments_are_named(targets):
    model, (x, y) = mlp(1), targets
    with pytest.raises(ValueError, match="0 < min_lr < max_lr"):
        gradguard.lr_find(model, keras.optimizers.Adam(), "mse", targets, min_lr=1.0, max_lr=0.1)
    with pytest.raises(ValueError, match="steps to be an int >= 10"):
        gradguard.lr_find(model, keras.optimizers.Adam(), "mse", targets, steps=3)
    with pytest.raises(ValueError, match="preflight needs steps to be an int >= 20; got 5"):
        gradguard.preflight(model, keras.optimizers.Adam(), "mse", targets, steps=5)
    with pytest.raises(TypeError, match="Keras optimizer"):
        gradguard.preflight(model, object(), "mse", targets)
    with pytest.raises(TypeError, match="thresholds must be"):
        gradguard.preflight(model, keras.optimizers.Adam(), "mse", targets, thresholds={})
    with pytest.raises(ValueError, match=r"model could not be called on x with shapes \(2, 3\)"):
        gradguard.preflight(model, keras.optimizers.Adam(), "mse", (np.zeros((8, 3)), y[:8]))
    with pytest.raises(ValueError, match=r"loss_fn could not compare y with shapes \(2, 5\)"):
        gradguard.preflight(mlp(4), keras.optimizers.Adam(), logits_loss(), (x, np.zeros((512, 5))))
