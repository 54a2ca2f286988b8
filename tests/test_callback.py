"""`GuardCallback`: every check and transform inside real `model.fit` runs."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL, bpr_recommender, fit_and_train_step, mlp, regression_data

import gradguard
from gradguard import heldout
from gradguard import inspect as inspect_lib
from gradguard.guarding import Guard
from gradguard.options import Options

EPOCHS, BATCH = 3, 16  # 4 batches an epoch on 64 examples: 12 steps


def _fit(model, optimizer, *, callbacks=(), epochs=EPOCHS, x=None, y=None, **compile_kwargs):
    if x is None:
        x, y = regression_data()
    model.compile(optimizer=optimizer, loss="mse", **compile_kwargs)
    return model.fit(
        x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False, callbacks=list(callbacks)
    )


def test_healthy_fit_is_silent_and_trains_exactly_as_plain_fit():
    guarded, plain = mlp(seed=3), mlp(seed=3)
    callback = gradguard.GuardCallback(transform=gradguard.identity(), every=5)
    _fit(guarded, keras.optimizers.Adam(1e-2), callbacks=[callback])
    _fit(plain, keras.optimizers.Adam(1e-2))
    assert callback.report().findings == [], str(callback.report())
    assert callback.report().steps_observed == 12
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_a_multi_optimizer_whose_selector_makes_its_optimizers_trains_as_plain_fit():
    # `MultiOptimizer` calls its selector while `fit` traces the step: optimizers the selector
    # makes there have no update count to read yet when the guard first sees them.
    def selector(variable):
        return keras.optimizers.Adam(1e-2) if "kernel" in variable.path else keras.optimizers.SGD()

    guarded, plain = mlp(seed=3), mlp(seed=3)
    callback = gradguard.GuardCallback(every=5)
    _fit(guarded, keras.optimizers.MultiOptimizer(selector), callbacks=[callback])
    _fit(plain, keras.optimizers.MultiOptimizer(selector))
    assert callback.report().findings == [], str(callback.report())
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "jit_compile, built_first",
    [(False, False), (True, False), (False, True)],
    ids=["graph", "xla", "built-first"],
)
def test_an_optimizer_whose_build_writes_its_slots_trains_as_plain_fit(jit_compile, built_first):
    # ScheduleFree's `build` copies the weights into its momentum. `fit` builds it in the first
    # trace of its step, which TensorFlow never runs: the copy is lost (reported), and must be
    # under the guard too, or a guarded run trains another model. Built eagerly first, the copy
    # is made: silent.
    guarded, plain = mlp(seed=3), mlp(seed=3)
    callback = gradguard.GuardCallback(every=5)
    optimizers = []
    for model in (guarded, plain):
        optimizers.append(keras.optimizers.ScheduleFreeAdamW(1e-2))
        if built_first:
            optimizers[-1].build(model.trainable_variables)
    _fit(guarded, optimizers[0], callbacks=[callback], jit_compile=jit_compile)
    _fit(plain, optimizers[1], jit_compile=jit_compile)
    expected = set() if built_first else {"optimizer-build-lost"}
    assert callback.report().codes() == expected, str(callback.report())
    if not built_first:
        (lost,) = callback.report().findings
        assert len(lost.variables) == len(guarded.trainable_variables)  # a momentum each
        assert all(name.endswith("_momentum") for name in lost.variables)
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "mixed_float16", "float32"])
def test_weights_stored_in_float16_are_found(dtype):
    # A float16 layer (as set_floatx("float16") makes every one): its updates round away.
    # Mixed precision keeps float32 variables and computes in float16: silent.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, "relu", dtype=dtype), keras.layers.Dense(1)]
    )
    callback = gradguard.GuardCallback()
    _fit(model, keras.optimizers.Adam(1e-3), callbacks=[callback], epochs=1)
    found = [f for f in callback.report().findings if f.code == "weights-half-precision"]
    half = [v.path for v in model.layers[0].trainable_variables]
    assert [list(f.variables) for f in found] == ([half] if dtype == "float16" else [])
    if found:
        assert "mixed_float16" in found[0].message


def test_fit_under_check_numerics_is_silent_and_trains_as_plain_fit():
    # gradguard's state holds infinities on purpose: only the user's ops are checked.
    tf.debugging.enable_check_numerics()
    try:
        guarded, plain = mlp(seed=3), mlp(seed=3)
        callback = gradguard.GuardCallback(every=4)
        _fit(guarded, keras.optimizers.Adam(1e-2), callbacks=[callback])
        _fit(plain, keras.optimizers.Adam(1e-2))
    finally:
        tf.debugging.disable_check_numerics()
    assert callback.report().findings == [] and callback.report().steps_observed == 12
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_the_model_is_left_as_it_was_after_fit():
    model = mlp()
    callback = gradguard.GuardCallback(every=5)
    _fit(model, keras.optimizers.Adam(1e-2), callbacks=[callback])
    assert "train_step" not in vars(model)
    assert callback.guard is not None
    updates = callback.guard.ledger.updates
    model.fit(*regression_data(), batch_size=BATCH, epochs=1, verbose=0)  # plain again
    assert callback.guard.ledger.updates == updates


@pytest.mark.parametrize(
    "optimizer,code",
    [
        (lambda: keras.optimizers.Adam(1e-10), "update-too-small"),
        (lambda: keras.optimizers.SGD(0.0), "weights-unchanged"),
        (lambda: keras.optimizers.Adam(1.0), "update-too-large"),
    ],
    ids=["lr-1e-10", "lr-0", "lr-1"],
)
def test_planted_learning_rate_bugs_are_found_inside_fit(optimizer, code):
    callback = gradguard.GuardCallback(every=2, policy=WARN_ALL)
    _fit(mlp(), optimizer(), callbacks=[callback], epochs=2)
    assert code in callback.report().codes(), str(callback.report())
    if code.startswith("update-too"):  # the ratio beside a bar on many steps: which one
        (finding,) = [f for f in callback.report().findings if f.code == code]
        shown = " largest " if code == "update-too-large" else "(latest: "
        assert shown in finding.message, finding.message
        if code == "update-too-large":  # what rewrote the weights, though they then grew
            assert min(finding.details["largest"].values()) > 0.5, finding.details


def test_exploding_gradients_and_nan_stop_fit_with_the_error():
    x, y = regression_data()
    callback = gradguard.GuardCallback(every=1)
    with pytest.raises(gradguard.NonFiniteError):
        _fit(mlp(depth=3), keras.optimizers.SGD(5.0), callbacks=[callback], x=x * 100, y=y * 100)
    report = callback.report()
    assert "non-finite" in report.codes(), str(report)
    assert "train_step" not in vars(callback.model)  # put back although fit stopped


def test_clipping_inside_fit_clips_to_the_norm_asked_for(tmp_path):
    callback = gradguard.GuardCallback(
        transform=gradguard.clip_by_global_norm(0.05), every=1, log_dir=tmp_path
    )
    _fit(mlp(), keras.optimizers.SGD(1e-2), callbacks=[callback], epochs=1)
    (run,) = inspect_lib.load_runs(str(tmp_path))
    before = run.scalars["gradguard/grad_norm"].values
    after = run.scalars["gradguard/grad_norm_applied"].values
    assert len(after) == 4 and (before > 0.05).all()
    np.testing.assert_allclose(after, 0.05, rtol=1e-4)
    assert any(tag.startswith("gradguard_grad_norm/") for tag in run.scalars)  # per layer


class ForgetfulNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        tape.gradient(loss, self.trainable_variables)  # ... and no apply_gradients
        return {"loss": loss}


def test_a_train_step_that_forgets_the_update_stops_fit():
    model = ForgetfulNet()
    with pytest.raises(gradguard.UpdateError, match="apply_gradients"):
        _fit(
            model, keras.optimizers.Adam(), callbacks=[gradguard.GuardCallback(every=1)], epochs=12
        )


@pytest.mark.parametrize(
    "options",
    [
        {"jit_compile": True},
        {"steps_per_execution": 3},
    ],
    ids=["jit", "steps-per-execution"],
)
def test_works_with_fit_options(options):
    callback = gradguard.GuardCallback(every=2, policy=WARN_ALL)
    model = mlp()
    _fit(model, keras.optimizers.Adam(1e-10), callbacks=[callback], epochs=2, **options)
    assert "update-too-small" in callback.report().codes(), str(callback.report())


def test_works_beside_other_callbacks_and_validation(tmp_path):
    x, y = regression_data()
    callback = gradguard.GuardCallback(every=4, log_dir=tmp_path / "gradguard")
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=3,
        verbose=0,
        validation_data=(x[:16], y[:16]),
        callbacks=[
            keras.callbacks.TensorBoard(tmp_path / "keras"),
            keras.callbacks.EarlyStopping(patience=5),
            keras.callbacks.TerminateOnNaN(),
            callback,
        ],
    )
    assert callback.report().findings == [], str(callback.report())
    runs = {r.name: r for r in inspect_lib.load_runs(str(tmp_path))}
    assert "gradguard/loss" in runs["gradguard"].scalars
    assert any(name.startswith("keras") for name in runs)


def test_mixed_precision_and_a_strategy_scope():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        with strategy.scope():
            model = mlp()
            optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2))
        callback = gradguard.GuardCallback(every=4)
        _fit(model, optimizer, callbacks=[callback])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert callback.report().findings == [], str(callback.report())
    assert callback.report().steps_observed >= 10


def test_a_later_fit_with_the_same_callback_does_not_trace_again():
    model = mlp()
    callback = gradguard.GuardCallback(every=5)
    _fit(model, keras.optimizers.Adam(1e-2), callbacks=[callback], epochs=1)
    # Once, as fit traces its own step (it builds the optimizer first): gradguard's state, made
    # in the trace, makes no second one (`_compat.outside_trace`).
    assert callback.tracing_count == 1
    for _ in range(2):
        model.fit(*regression_data(), batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback])
    assert callback.tracing_count == 1
    assert callback.report().steps_observed == 12


def _fit_counting_traces(x, y, entry):
    """Fit's history and how many times it traced its train step (`entry`: None for plain)."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    heads = [
        keras.layers.Dense(3, activation="softmax", name="classes")(hidden),
        keras.layers.Dense(1, name="value")(hidden),
    ][: len(y)]
    model = keras.Model(inputs, heads if len(heads) > 1 else heads[0])
    losses, metrics = ["categorical_crossentropy", "mse"][: len(y)], [["accuracy"], ["mae"]]
    model.compile(keras.optimizers.Adam(1e-2), losses, metrics=metrics[: len(y)])
    traces = []
    # (the class's train_step looked up at each trace: `gradguard run` patches it)
    object.__setattr__(
        model, "train_step", lambda data: traces.append(1) or type(model).train_step(model, data)
    )
    callbacks = [gradguard.GuardCallback(policy=WARN_ALL)] if entry == "callback" else []
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process() if entry == "run" else contextlib.nullcontext():
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=callbacks)
    return history.history, len(traces)


@pytest.mark.parametrize("outputs", [1, 2])
@pytest.mark.parametrize("entry", ["callback", "run"])
def test_compiled_metrics_and_losses_are_built_outside_the_trace_fit_traces_once(entry, outputs):
    # Keras builds compile's metrics (and, for two outputs, the per-output loss trackers) in
    # the first trace of fit's function: their variables make TensorFlow trace it twice. The
    # guard has them built outside the trace, so the costlier guarded step is traced once
    # (`GuardCallback`, and fit under a process-wide guard as `gradguard run` has it).
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 4)).astype("float32")
    y = [keras.utils.to_categorical(rng.integers(0, 3, size=100), 3), x[:, :1]][:outputs]
    plain, plain_traces = _fit_counting_traces(x, y, None)
    guarded, traces = _fit_counting_traces(x, y, entry)
    assert (plain_traces, traces) == (2, 1)
    assert guarded == plain and any("accuracy" in name for name in guarded)


def _two_heads():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    main = keras.layers.Dense(1, name="main")(hidden)
    aux = keras.layers.Dense(1, name="aux")(hidden)
    return keras.Model(inputs, {"main": main, "aux": aux})


def _zero_times_mse(y_true, y_pred):
    return 0.0 * keras.losses.mean_squared_error(y_true, y_pred)


@pytest.mark.parametrize(
    "losses,weights,silent",
    [
        # loss_weights 0 is how Keras users switch an output off: its head is zero by choice.
        ({"main": "mse", "aux": "mse"}, {"main": 1.0, "aux": 0.0}, True),
        # The same zero, hidden inside a loss function (left from debugging): a finding.
        ({"main": "mse", "aux": _zero_times_mse}, None, False),
    ],
    ids=["loss-weight-zero", "zero-inside-the-loss"],
)
def test_an_output_switched_off_by_its_loss_weight_is_not_a_zero_gradient(losses, weights, silent):
    x, y = regression_data()
    model = _two_heads()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses, loss_weights=weights)
    callback = gradguard.GuardCallback(every=4, policy=WARN_ALL)
    model.fit(x, {"main": y, "aux": y}, batch_size=BATCH, epochs=2, verbose=0, callbacks=[callback])
    zero = [f for f in callback.report().findings if f.code == "zero-gradient"]
    if silent:
        assert callback.report().findings == [], str(callback.report())
    else:
        assert [f.variables for f in zero] == [("aux/kernel", "aux/bias")], str(callback.report())


def test_a_fine_tuning_stage_after_a_recompile_trains_as_without_the_callback():
    # Freeze, fit, unfreeze, recompile with another optimizer, fit again, one callback: the
    # second fit must train what the recompile set up (it reused the first compile's function).
    def stages(callback):
        model = mlp(seed=4)
        model.layers[0].trainable = False
        _fit(model, keras.optimizers.Adam(1e-2), callbacks=[callback] if callback else (), epochs=1)
        model.layers[0].trainable = True
        optimizer = keras.optimizers.SGD(1e-2)
        _fit(model, optimizer, callbacks=[callback] if callback else (), epochs=1)
        return model, optimizer

    callback = gradguard.GuardCallback(every=2)
    guarded, optimizer = stages(callback)
    plain, _ = stages(None)
    assert int(optimizer.iterations.numpy()) == 4
    for a, b in zip(guarded.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert callback.report().findings == [], str(callback.report())


@pytest.mark.parametrize("steps_per_execution", [1, 4])
@pytest.mark.parametrize("bad_batch", [3, 14])
def test_an_error_raises_out_of_fit_at_the_read_after_it(steps_per_execution, bad_batch):
    # Fit runs `steps_per_execution` batches a call: the host reads by batches, not calls; and
    # an error in the last batches raises at the read that ends fit.
    x, y = regression_data(n=16 * BATCH)  # one epoch of 16 batches
    x[BATCH * bad_batch, 0] = np.nan
    reads = []
    callback = gradguard.GuardCallback(every=4)
    ran = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: reads.append(b))
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "mse", steps_per_execution=steps_per_execution)
    with pytest.raises(gradguard.NonFiniteError) as info:
        model.fit(x, y, batch_size=BATCH, verbose=0, shuffle=False, callbacks=[callback, ran])
    assert info.value.finding.step == bad_batch
    # Raised at the first read after the bad batch: a read every 4 batches, at the latest when
    # the call that ran it ends.
    assert len(reads) * steps_per_execution <= (bad_batch // 4 + 1) * 4 + steps_per_execution


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_nan_in_the_labels_is_blamed_on_the_data_under_xla_too(jit_compile):
    # XLA keeps no batch for a replay: the step tells bad data from a bad model in-graph.
    x, y = regression_data(n=4 * BATCH)
    y[BATCH + 2, 0] = np.inf
    model = mlp()
    model.compile(keras.optimizers.SGD(1e-3), "mse", jit_compile=jit_compile)
    with pytest.raises(gradguard.NonFiniteError) as info:
        model.fit(
            x, y, batch_size=BATCH, verbose=0, shuffle=False, callbacks=[gradguard.GuardCallback()]
        )
    finding = info.value.finding
    assert (finding.step, finding.details["origin"]["stage"]) == (1, "data"), finding.message
    assert "the labels y" in finding.message


def _sequence_model():
    return keras.Sequential(
        [
            keras.Input((6, 2)),
            keras.layers.SimpleRNN(4, return_sequences=True),
            keras.layers.Dense(1),
        ]
    )


def _sequence_data(rng):
    x = rng.normal(size=(64, 6, 2)).astype("float32")
    return x, x.sum(axis=(1, 2))[:, None]  # one target per sequence


@pytest.mark.parametrize(
    "case,found",
    [
        ("one-hot-into-one-unit", True),
        ("label-per-sequence", True),
        ("packed-weights", False),  # a twin: labels wider than the output, by design
        ("class-ids-into-a-softmax", True),  # each id against every class's probability
        ("one-hot-into-a-softmax", False),
        ("one-target-into-linear-heads", False),  # an ensemble's heads: by design
    ],
)
def test_fit_finds_a_loss_broadcast_in_its_compiled_loss(case, found):
    rng = np.random.default_rng(0)
    x, y = regression_data()
    loss = "mse"
    classes = (y > 0).astype("float32")  # (n, 1)
    if case == "one-hot-into-one-unit":
        model, y = mlp(), keras.utils.to_categorical(y[:, 0] > 0, 2)
    elif case.endswith("-into-a-softmax"):
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, "softmax")])
        y = classes if case.startswith("class-ids") else keras.utils.to_categorical(classes, 2)
    elif case == "one-target-into-linear-heads":
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    elif case == "label-per-sequence":
        model, (x, y) = _sequence_model(), _sequence_data(rng)
    else:
        model, y = mlp(), np.concatenate([y, np.ones_like(y)], axis=1)

        def loss(y_true, y_pred):
            return tf.square(y_true[:, :1] - y_pred) * y_true[:, 1:]

    model.compile(keras.optimizers.Adam(1e-3), loss)
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert ("loss-broadcast" in callback.report().codes()) == found, str(callback.report())


def _classifier(last, sequence=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8) if sequence else (8,))
    return keras.Model(inputs, last(keras.layers.Dense(16, activation="relu")(inputs)))


OUTPUTS_AGAINST_LOSSES = {
    # name: (output layer(s), loss, classes, a sequence model, found)
    "logits-into-probabilities": (lambda h: keras.layers.Dense(3)(h), "sparse", 3, False, True),
    "softmax-over-one-unit": (
        lambda h: keras.layers.Dense(1, activation="softmax")(h),
        "binary",
        2,
        False,
        True,
    ),
    "softmax-over-time": (
        lambda h: keras.layers.Softmax(axis=1)(keras.layers.Dense(3)(h)),
        "sparse",
        3,
        True,
        True,
    ),
    "logits-with-from-logits": (lambda h: keras.layers.Dense(3)(h), "logits", 3, False, False),
    "softmax-output": (
        lambda h: keras.layers.Dense(3, activation="softmax")(h),
        "sparse",
        3,
        False,
        False,
    ),
    "sigmoid-output": (
        lambda h: keras.layers.Dense(1, activation="sigmoid")(h),
        "binary",
        2,
        False,
        False,
    ),
    "softmax-over-classes": (
        lambda h: keras.layers.Softmax()(keras.layers.Dense(3)(h)),
        "sparse",
        3,
        True,
        False,
    ),
    # A pointer over positions: the softmax and the loss both over axis 1 (the time steps).
    "softmax-over-time-read-over-time": (
        lambda h: keras.layers.Softmax(axis=1)(keras.layers.Dense(3)(h)),
        "over-time",
        3,
        True,
        False,
    ),
    "softmax-over-classes-read-over-time": (
        lambda h: keras.layers.Softmax()(keras.layers.Dense(3)(h)),
        "over-time",
        3,
        True,
        True,
    ),
    # Probabilities mixed by a fixed matrix after the softmax (noisy-label forward
    # correction): a linear last layer that is not trained, its outputs still probabilities.
    "frozen-mixing-after-softmax": (
        lambda h: keras.layers.Dense(
            3, use_bias=False, trainable=False, kernel_initializer=keras.initializers.Identity()
        )(keras.layers.Dense(3, activation="softmax")(h)),
        "sparse",
        3,
        False,
        False,
    ),
}


@pytest.mark.parametrize("case", OUTPUTS_AGAINST_LOSSES)
def test_fit_finds_an_output_layer_its_loss_cannot_read(case):
    last, loss, classes, sequence, found = OUTPUTS_AGAINST_LOSSES[case]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5, 8) if sequence else (64, 8)).astype("float32")
    y = rng.integers(0, classes, size=(64, 5) if sequence else (64, 1))
    if loss == "over-time":  # per output column, one of the 5 positions (one-hot on axis 1)
        y = np.eye(5)[rng.integers(0, 5, size=(64, classes))].transpose(0, 2, 1)
    losses = {
        "sparse": keras.losses.SparseCategoricalCrossentropy(),
        "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "binary": "binary_crossentropy",
        "over-time": keras.losses.CategoricalCrossentropy(axis=1),
    }
    model = _classifier(last, sequence)
    model.compile(keras.optimizers.Adam(1e-3), losses[loss])
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y.astype("float32"), batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert ("from-logits-mismatch" in callback.report().codes()) == found, str(callback.report())


def test_fit_on_labels_mostly_noise_is_not_told_it_guesses():
    # 38% of binary labels flipped: the best loss is 0.664 against chance 0.693. The model
    # learns the clean rule (about 85% right against the clean labels) while its loss falls
    # slowly through the last percents above that best.
    rng = np.random.default_rng(89)
    keras.utils.set_random_seed(89)
    x = rng.normal(size=(6000, 10)).astype("float32")
    clean = (x[:, 0] + x[:, 1] > 0).astype("float32")
    y = np.where(rng.random(6000) < 0.38, 1 - clean, clean)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y, epochs=6, batch_size=64, validation_split=0.2, verbose=0, callbacks=[callback])
    assert callback.report().findings == [], str(callback.report())
    assert np.mean((model.predict(x, verbose=0)[:, 0] > 0.5) == clean) > 0.75


@pytest.mark.parametrize("learnable,jit_compile", [(False, False), (False, True), (True, False)])
def test_fit_stuck_at_the_frequencies_of_imbalanced_classes_is_told_it_guesses(
    learnable, jit_compile
):
    # Four classes of 55/25/15/5%: a model that predicts those frequencies scores their entropy,
    # 1.11, 20% below ln 4; fit's labels are counted in-graph to know it.
    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    x = rng.normal(size=(4000, 10)).astype("float32")
    if learnable:
        score = x[:, 0] + 0.3 * rng.normal(size=4000)
        y = np.digitize(score, np.quantile(score, [0.55, 0.8, 0.95]))
    else:  # labels that have nothing to do with the inputs
        y = rng.choice(4, size=4000, p=[0.55, 0.25, 0.15, 0.05])
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss, jit_compile=jit_compile)
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y, batch_size=64, epochs=8, verbose=0, callbacks=[callback])
    stuck = [f for f in callback.report().findings if f.code == "loss-not-decreasing"]
    assert bool(stuck) != learnable, str(callback.report())
    if stuck:
        assert stuck[0].details["chance_loss"] == pytest.approx(1.11, abs=0.01)


# Soft targets in fit: (whether the loss is at a chance level it should be told of).
SOFT_TARGETS = {
    # A teacher's probabilities at temperature 10 are near uniform: a student that learned
    # them scores their entropy, within 1% of ln 10, so no chance level can be claimed.
    "teacher-at-temperature-10": False,
    # Eight tags' rates near 0.5 (sigmoid outputs): their entropy is within 1% of ln 2.
    "rates-of-8-tags-near-one-half": False,
    # Peaked, imbalanced targets shuffled apart from their inputs: the best a model can do is
    # predict their mean, whose entropy (not ln 10) is the level; smoothed by the loss too.
    "peaked-shuffled-apart": True,
    "peaked-shuffled-apart-smoothed": True,
}


@pytest.mark.parametrize("targets", sorted(SOFT_TARGETS))
def test_fit_on_soft_targets_is_held_against_their_own_entropy(targets):
    rng = np.random.default_rng(5)
    keras.utils.set_random_seed(5)
    x = rng.normal(size=(4000, 20)).astype("float32")
    outputs, activation, smoothing = 10, "softmax", 0.0
    if targets == "teacher-at-temperature-10":
        soft = tf.nn.softmax(x @ (0.25 * rng.normal(size=(20, 10))) / 10.0).numpy()
    elif targets == "rates-of-8-tags-near-one-half":
        outputs, activation = 8, "sigmoid"
        soft = tf.sigmoid(0.1 * np.tanh(x @ rng.normal(size=(20, 8)))).numpy()
    else:
        bias = np.linspace(6.0, 0.0, 10)
        soft = tf.nn.softmax(x @ rng.normal(size=(20, 10)) + bias).numpy()[rng.permutation(4000)]
        smoothing = 0.1 if targets.endswith("smoothed") else 0.0
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, "relu"),
            keras.layers.Dense(outputs, activation),
        ]
    )
    loss = (
        keras.losses.BinaryCrossentropy()
        if activation == "sigmoid"
        else keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
    )
    model.compile(keras.optimizers.Adam(1e-3), loss)
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, soft, batch_size=64, epochs=5, verbose=0, callbacks=[callback])
    stuck = [f for f in callback.report().findings if f.code == "loss-not-decreasing"]
    assert bool(stuck) == SOFT_TARGETS[targets], str(callback.report())
    if stuck:
        mean = soft.mean(axis=0) * (1 - smoothing) + smoothing / 10
        level = stuck[0].details["chance_loss"]
        assert level == pytest.approx(-np.sum(mean * np.log(mean)), rel=0.01)
        assert level < 0.95 * np.log(10)  # balanced classes (ln 10) would miss it


def _biased_factorization(n: int) -> tuple[keras.Model, list[np.ndarray], np.ndarray]:
    """A matrix factorization with user and item biases, given positive interactions only."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    users, items = keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")
    flat = keras.layers.Flatten()
    vectors = [flat(keras.layers.Embedding(k, 8)(i)) for k, i in ((200, users), (300, items))]
    biases = [flat(keras.layers.Embedding(k, 1)(i)) for k, i in ((200, users), (300, items))]
    score = keras.layers.Add()([keras.layers.Dot(axes=1)(vectors), *biases])
    model = keras.Model([users, items], keras.layers.Activation("sigmoid")(score))
    pairs = [rng.integers(0, k, n).astype("int32") for k in (200, 300)]
    return model, pairs, np.ones((n, 1), "float32")


@pytest.mark.parametrize(
    "model", ["bpr-scores-subtracted", "classifier-with-a-bias", "factorization-with-biases"]
)
def test_fit_on_labels_all_one_class(model):
    # BPR's labels are all 1 by construction, and its output (a difference of scores) cannot
    # fit them by a bias: its classes are taken as balanced (ln 2, which it beats), not a level
    # of 0. A classifier whose labels all came out 1 (a threshold on the wrong scale) fits
    # them by its bias alone, its loss falling to 0: told that the labels are why; so does a
    # factorization with per-id biases given positive interactions only (recommenders#627).
    if model == "bpr-scores-subtracted":
        recommender, x, y = bpr_recommender(8000)
        recommender.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(True))
    elif model == "factorization-with-biases":
        recommender, x, y = _biased_factorization(8000)
        recommender.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    else:
        x, _ = regression_data(n=8000)
        y = np.ones((8000, 1), "float32")
        recommender = mlp()
        recommender.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(True))
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    recommender.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[callback])
    stuck = [f for f in callback.report().findings if f.code == "loss-not-decreasing"]
    assert bool(stuck) == (model != "bpr-scores-subtracted"), str(callback.report())
    if stuck:
        assert "Every label sampled over the run was 1" in stuck[0].message, stuck[0].message


def test_fit_on_imbalanced_labels_validated_on_balanced_ones_is_not_told_it_memorizes():
    # 10% positives to train on, 50% to validate on: the training labels' entropy (0.33) is no
    # yardstick for the validation loss (the prior scores 1.20 there, the model about 0.4).
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    w = rng.normal(size=10)

    def sample(n, positives):
        x = rng.normal(size=(200000, 10))
        y = (x @ w + 1.0 * rng.normal(size=200000) > 3.0).astype("float32")
        ones = np.where(y == 1)[0][: int(n * positives)]
        zeros = np.where(y == 0)[0][: n - int(n * positives)]
        kept = rng.permutation(np.r_[ones, zeros])
        return x[kept].astype("float32"), y[kept]

    (x, y), validation = sample(8000, 0.1), sample(1000, 0.5)
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    model.compile(keras.optimizers.Adam(2e-3), "binary_crossentropy")
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(
        x, y, validation_data=validation, epochs=6, batch_size=64, verbose=0, callbacks=[callback]
    )
    assert callback.report().findings == [], str(callback.report())


@pytest.mark.parametrize("regularizer", ["dropout", "l2"])
def test_fit_that_learns_a_little_under_regularization_is_not_told_it_guesses(regularizer):
    # 90/10 binary labels with a weak signal: the test loss beats the labels' entropy (0.32) by
    # 2-8%, while the training loss, with dropout on or an L2 term added, runs above it.
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(20000, 30)).astype("float32")
    w = np.zeros(30)
    w[:6] = 0.3
    y = (rng.random(20000) < 1 / (1 + np.exp(-(x @ w - 2.4)))).astype("float32")
    l2 = keras.regularizers.L2(5e-3) if regularizer == "l2" else None
    dropout = [keras.layers.Dropout(0.5)] if regularizer == "dropout" else []
    model = keras.Sequential(
        [
            keras.Input((30,)),
            *dropout,
            keras.layers.Dense(64, activation="relu", kernel_regularizer=l2),
            *dropout,
            keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=l2),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[callback])
    assert "loss-not-decreasing" not in callback.report().codes(), str(callback.report())


@pytest.mark.parametrize("case", ["labels-shuffled-apart", "paired", "overfitting"])
def test_fit_whose_validation_loss_never_beats_chance_memorizes(case):
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(400, 10)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(10, 3)) + rng.normal(size=(400, 3)), axis=1)
    if case == "labels-shuffled-apart":
        rng.shuffle(y)  # x and y each shuffled with its own permutation
    elif case == "overfitting":  # noisy labels, many epochs: the validation loss turns back up
        flip = rng.random(400) < 0.3
        y[flip] = rng.integers(0, 3, size=flip.sum())
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(3)]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-2), loss)
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    history = model.fit(
        x, y, batch_size=32, epochs=8, validation_split=0.25, verbose=0, callbacks=[callback]
    )
    codes = callback.report().codes()
    assert ("loss-not-decreasing" in codes) == (case == "labels-shuffled-apart"), (
        str(callback.report()),
        history.history,
    )


@pytest.mark.parametrize(
    "labels,unseen",
    [
        (np.repeat(np.arange(4), 10), [3]),  # ordered by class: the last quarter is class 3
        (np.repeat(np.arange(4), 10)[:, None], [3]),  # ids with a trailing axis of 1
        (np.eye(4)[np.repeat(np.arange(4), 10)], [3]),  # one-hot rows
        (np.tile(np.arange(4), 10), []),  # every class in both parts
        (np.linspace(0.0, 1.0, 40), []),  # a regression's targets, ordered: no classes
        (np.full((40, 4), 0.25), []),  # soft labels
        (np.array(["cat", "dog"] * 20), []),  # not numbers
        ({"out": np.repeat(np.arange(4), 10)}, []),  # several outputs
    ],
    ids=["ids", "ids-n-1", "one-hot", "interleaved", "regression", "soft", "strings", "dict"],
)
def test_the_classes_a_validation_split_leaves_out_of_training(labels, unseen):
    assert heldout.unseen_classes(labels, 0.25) == unseen
    assert heldout.unseen_classes(labels, 0.0) == []  # no split


def test_fit_and_train_step_tell_their_checks_the_models_suspect_settings():
    x, y = regression_data()
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dropout(0.95, name="drop"), keras.layers.Dense(1)]
    )
    loss = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.9)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    callback = gradguard.GuardCallback()
    model.fit(x, y > 0, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-3), loss)
    step(x, y > 0)
    for core in [*callback.guard.cores.values(), step.core]:
        assert [s.split(":")[0] for s in core.notes["suspects"]] == ["the loss", "'drop'"]


def _padded_tokens(padding: str) -> tuple[np.ndarray, np.ndarray]:
    """64 sequences of 2 to 5 token ids in 1..19, padded with 0 to a length of 12."""
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 20, size=rng.integers(2, 6)) for _ in range(64)]
    x = keras.utils.pad_sequences(seqs, maxlen=12, padding=padding)
    return x, rng.integers(0, 2, size=(64, 1)).astype("float32")


@pytest.mark.parametrize(
    "padding, mask_zero, named",
    [("post", False, True), ("pre", False, False), ("post", True, False)],
    ids=["post-unmasked", "pre-unmasked", "post-masked"],
)
def test_padding_an_unmasked_rnn_reads_last_is_named_as_a_suspect(padding, mask_zero, named):
    x, y = _padded_tokens(padding)

    def model() -> keras.Model:
        keras.utils.set_random_seed(0)
        return keras.Sequential(
            [
                keras.Input((12,)),
                keras.layers.Embedding(20, 4, mask_zero=mask_zero),
                keras.layers.SimpleRNN(4, name="rnn"),
                keras.layers.Dense(1),
            ]
        )

    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    callback, step = fit_and_train_step(model, loss, x, y)
    for core in [*callback.guard.cores.values(), step.core]:
        phrase = core.notes.get("trailing_padding")
        assert bool(phrase) == named, phrase
        if named:  # lengths 2..5 of 12: about 70% of each sequence after its last token
            assert phrase.startswith("'rnn' reads its sequences without a mask"), phrase
            assert "mask_zero=True" in phrase and "% of each one" in phrase


@pytest.mark.parametrize("weighted", [True, False])
def test_gradients_all_zero_under_weights_name_the_weights(weighted):
    x, y = regression_data()
    model = mlp()
    if weighted:  # a mask that matched nothing: every example weighs 0
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        weights = np.zeros(len(x), "float32")
    else:  # predictions multiplied by 0: the loss is flat in the weights
        model.compile(keras.optimizers.Adam(1e-3), lambda t, p: tf.square(t - 0.0 * p))
        weights = None
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(x, y, sample_weight=weights, batch_size=16, verbose=0, callbacks=[callback])
    (finding,) = [f for f in callback.report().findings if f.code == "zero-gradient"]
    assert ("check sample_weight" in finding.message) == weighted, finding.message


class SoftmaxInTrainStep(keras.Model):
    """A model of logits whose own train step hands the loss their softmax."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            probabilities = tf.nn.softmax(self(x, training=True))
            loss = self.compute_loss(x=x, y=y, y_pred=probabilities)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


def test_an_overridden_train_step_is_not_judged_by_its_output_layer():
    rng = np.random.default_rng(0)
    inputs = keras.Input((8,))
    model = SoftmaxInTrainStep(inputs, keras.layers.Dense(3)(inputs))  # logits out
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy())
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, size=(64, 1))
    model.fit(x, y, batch_size=16, verbose=0, callbacks=[callback])
    assert "from-logits-mismatch" not in callback.report().codes(), str(callback.report())


def test_steps_are_counted_by_batches_with_several_a_call():
    # 10 batches an epoch, 4 a call: the third call of each epoch runs 2 (Keras names it by the
    # 12th); the steps are the batches trained on, as Keras' own iteration count.
    x, y = regression_data(n=10 * BATCH)
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), "mse", steps_per_execution=4)
    callback = gradguard.GuardCallback(every=5)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[callback])
    assert callback.report().steps_observed == int(model.optimizer.iterations.numpy()) == 20


def _binary_task(n, rng, positives=0.5):
    x = rng.normal(size=(n, 16)).astype("float32")
    score = x @ rng.normal(size=16) / 4 + 0.7 * rng.normal(size=n)
    return x, (score > np.quantile(score, 1 - positives)).astype("float32")[:, None]


@pytest.mark.parametrize("task", ["three-heads-one-loss", "class-weight"])
def test_fit_claims_no_chance_level_it_cannot_know(task):
    """Three heads' losses add up (chance 3 ln 2, not ln 2); class weights move the level."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    fit_kwargs = {}
    if task == "three-heads-one-loss":
        x, y = _binary_task(4096, rng)
        labels = [y, *(_binary_task(4096, rng)[1] for _ in range(2))]
        outputs = [keras.layers.Dense(1, name=f"task{k}")(hidden) for k in range(3)]
    else:
        x, labels = _binary_task(4096, rng, positives=0.1)
        outputs = keras.layers.Dense(1)(hidden)
        fit_kwargs["class_weight"] = {0: 1.0, 1: 9.0}
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    callback = gradguard.GuardCallback(every=50, policy=WARN_ALL)
    model.fit(x, labels, batch_size=32, epochs=4, verbose=0, callbacks=[callback], **fit_kwargs)
    assert not callback.report().findings, str(callback.report())


@pytest.mark.parametrize("rate", [None, 1.0], ids=["rate-kept", "rate-too-large"])
def test_a_resumed_fit_may_hold_its_loss_but_not_lose_it(rate):
    """A second fit at the noise floor holds its loss; one at a rate that undoes the training
    does not (its loss rises): flagged."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2048, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1)) + 0.5 * rng.normal(size=(2048, 1))).astype("float32")
    model = mlp(features=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(x, y, batch_size=32, epochs=6, verbose=0)  # to the noise floor, unwatched
    if rate is not None:
        model.optimizer.learning_rate = rate
    callback = gradguard.GuardCallback(every=50, policy=WARN_ALL)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[callback])
    codes = callback.report().codes()
    assert ("loss-not-decreasing" in codes) == (rate is not None), str(callback.report())


def _train_on_labels(entry, model, loss, x, y):
    """Two epochs of `fit` with a `GuardCallback`, or six `TrainStep` calls; the report."""
    if entry == "fit":
        model.compile(keras.optimizers.Adam(1e-2), loss)
        callback = gradguard.GuardCallback(policy=WARN_ALL)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
        return callback.report()
    step = gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), loss, policy=WARN_ALL)
    for i in range(6):
        step(x[i % 3 * 32 :][:32], y[i % 3 * 32 :][:32])
    return step.report()


# (output activation, loss, labels, whether the labels are out of the range it allows)
LABEL_RANGES = {
    "sigmoid-against-targets-10-to-90": ("sigmoid", "mse", (10.0, 90.0), True),
    "binary-ce-on-classes-1-and-2": ("sigmoid", "binary_crossentropy", (1, 2), True),
    "sigmoid-against-targets-in-0-1": ("sigmoid", "mse", (0.0, 1.0), False),
    "binary-ce-on-classes-0-and-1": ("sigmoid", "binary_crossentropy", (0, 1), False),
    "linear-against-targets-10-to-90": (None, "mse", (10.0, 90.0), False),
    "relu-against-standardized-targets": ("relu", "mse", (-3.0, 3.0), True),
    "relu-against-targets-10-to-90": ("relu", "mse", (10.0, 90.0), False),
    "relu-against-targets-one-a-little-below-0": ("relu", "mse", (10.0, 90.0), False),
    "relu-against-noisy-small-targets": ("relu", "mse", (0.0, 4.0), False),
}


@pytest.mark.parametrize("entry", ["fit", "train_step"])
@pytest.mark.parametrize("case", sorted(LABEL_RANGES))
def test_labels_out_of_the_range_the_output_or_the_loss_allows(case, entry):
    activation, loss, (low, high), found = LABEL_RANGES[case]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    if isinstance(low, int):  # classes
        y = rng.integers(low, high + 1, size=(96, 1)).astype("float32")
    else:  # targets spread over the range, a function of x
        y = low + (high - low) / (1.0 + np.exp(-x[:, :1]))
    if "a-little-below" in case:  # a stray measurement: noise, not standardized targets
        y[5] = -1.0
    if "noisy" in case:  # small targets measured with noise: a few of them a little below 0
        y[::30] = -0.5
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1, activation)]
    )
    report = _train_on_labels(entry, model, loss, x, y)
    out_of_range = [f for f in report.findings if f.code == "labels-out-of-range"]
    assert bool(out_of_range) == found, str(report)
    if found:
        (finding,) = out_of_range
        assert finding.details["labels"][0] >= low and finding.details["labels"][1] <= high
        assert finding.details["labels"][1] > 1.5 or finding.details["labels"][0] < -1.5
        named = model.layers[-1].name if loss == "mse" else "binary cross-entropy"
        assert named in finding.message, finding.message


@pytest.mark.parametrize(
    "labels, fix",
    [
        (lambda c: 255.0 * (c % 2), "divide them by 255"),  # hunt17: masks stored as 0 and 255
        (lambda c: c % 2 + 1.0, "y - 1"),
        (lambda c: 2.0 * (c % 2) - 1, "(y + 1) / 2"),
        (lambda c: c % 10, "one softmax unit per class"),  # hunt17: 10 classes, one unit
        # hunt28 b04: masks of 0 and 1 divided by 255 with the images (in range, but tiny).
        (lambda c: (c % 2) / 255.0, "Divide only the inputs by 255"),
        # Soft labels of a rare positive class, below 1/255 and not two levels: silent.
        (lambda c: np.random.default_rng(1).uniform(0.0, 1.0 / 255, len(c)), None),
    ],
    ids=[
        "masks-0-255",
        "classes-1-2",
        "classes-minus-1-1",
        "ten-classes",
        "masks-over-255",
        "soft",
    ],
)
def test_labels_a_binary_cross_entropy_cannot_read_are_told_how_to_number_them(labels, fix):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = labels(np.arange(96))[:, None].astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    report = _train_on_labels("fit", model, "binary_crossentropy", x, y)
    found = [f for f in report.findings if f.code == "labels-out-of-range"]
    assert len(found) == (fix is not None), str(report)
    assert fix is None or fix in found[0].message, found[0].message


def _label_rows(kind, x, rng):
    """Labels of 4 classes per example: `kind` of `MULTI_LABEL` (a function of `x`)."""
    scores = x[:, :4] + 0.3 * rng.normal(size=(len(x), 4))
    one_hot = np.eye(4, dtype="float32")[np.argmax(scores, axis=1)]
    if kind == "multi-hot":  # about two tags per example
        return (scores > 0).astype("float32")
    if kind == "smoothed":
        return 0.9 * one_hot + 0.1 / 4
    if kind == "mixup":
        mix = rng.uniform(size=(len(x), 1)).astype("float32")
        return mix * one_hot + (1 - mix) * one_hot[::-1]
    if kind == "from one":  # ids 1..4 one-hot with depth 4: the last a row of zeros
        return np.eye(5, dtype="float32")[np.argmax(scores, axis=1) + 1][:, :4]
    if kind == "tags from one":  # per token (2 each): tags 1..3 of depth 4, the second padded
        tags = np.eye(4, dtype="float32")[np.argmax(scores[:, 1:], axis=1) + 1]
        return np.stack([tags, np.zeros_like(tags)], axis=1)
    if kind == "ignored":  # ids 0..3, every tenth example -1 (a row of zeros on purpose)
        return np.where(np.arange(len(x))[:, None] % 10 == 0, 0.0, one_hot).astype("float32")
    if kind.startswith("votes"):  # three annotators' counts per class, sums of 3
        votes = one_hot + np.eye(4, dtype="float32")[rng.integers(0, 4, size=(len(x), 2))].sum(1)
        return votes / 3 if kind.endswith("normalized") else votes
    return one_hot


class NormalizingCrossentropy(keras.losses.CategoricalCrossentropy):
    """A categorical cross-entropy against the labels divided by their sum."""

    def call(self, y_true, y_pred):
        y_true = y_true / tf.reduce_sum(y_true, axis=-1, keepdims=True)
        return super().call(y_true, y_pred)


# (output activation, loss, labels, whether a softmax is asked for several classes at once)
MULTI_LABEL = {
    "softmax-binary-ce-multi-hot": ("softmax", "binary_crossentropy", "multi-hot", True),
    "softmax-categorical-ce-multi-hot": ("softmax", "categorical_crossentropy", "multi-hot", True),
    "softmax-mse-multi-hot": ("softmax", "mse", "multi-hot", True),
    "sigmoid-binary-ce-multi-hot": ("sigmoid", "binary_crossentropy", "multi-hot", False),
    "softmax-categorical-ce-smoothed": ("softmax", "categorical_crossentropy", "smoothed", False),
    "softmax-categorical-ce-mixup": ("softmax", "categorical_crossentropy", "mixup", False),
    # Counts: Keras takes the softmax cross-entropy's gradient as p - y, right for sums of 1.
    "softmax-categorical-ce-votes": ("softmax", "categorical_crossentropy", "votes", True),
    "softmax-categorical-ce-votes-normalized": (
        "softmax",
        "categorical_crossentropy",
        "votes-normalized",
        False,
    ),
    # Classes numbered from 1 one-hot encoded with depth 4: the last class lost, unit 0 empty.
    "softmax-categorical-ce-from-one": ("softmax", "categorical_crossentropy", "from one", True),
    "softmax-categorical-ce-ignored": ("softmax", "categorical_crossentropy", "ignored", False),
    # (hunt11) A tagger's tags 1..C-1 with unit 0 kept for padding, padded tokens rows of zeros.
    "softmax-categorical-ce-tags-from-one": (
        "softmax",
        "categorical_crossentropy",
        "tags from one",
        False,
    ),
    # A loss of the user's own that normalizes the labels first (its `call` overridden).
    "softmax-normalizing-loss-multi-hot": (
        "softmax",
        NormalizingCrossentropy(),
        "multi-hot",
        False,
    ),
}


@pytest.mark.parametrize("entry", ["fit", "train_step"])
@pytest.mark.parametrize("case", sorted(MULTI_LABEL))
def test_labels_a_softmax_cannot_sum_to_are_named(case, entry):
    activation, loss, kind, found = MULTI_LABEL[case]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = _label_rows(kind, x, rng)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4, activation)]
    )
    if kind == "tags from one":  # (two tokens, a softmax over 4 tags each)
        layers = [keras.layers.Dense(8), keras.layers.Reshape((2, 4)), keras.layers.Softmax()]
        model = keras.Sequential([keras.Input((8,)), *layers])
    report = _train_on_labels(entry, model, loss, x, y)
    out_of_range = [f for f in report.findings if f.code == "labels-out-of-range"]
    assert bool(out_of_range) == found, str(report)
    if found and kind == "from one":
        (finding,) = out_of_range
        assert "num_oov_indices=0" in finding.message, finding.message
        assert finding.details["row_sums"] == [0.0, 1.0]
    elif found:
        (finding,) = out_of_range
        assert finding.details["largest_label_sum"] >= 2, finding.details
        assert model.layers[-1].name in finding.message, finding.message
        advice = "y / y.sum(axis=-1" if kind == "votes" else 'activation="sigmoid"'
        assert advice in finding.message, finding.message


class NormalizesItsLabels(keras.Model):
    """Candidate sets of classes (multi-hot) turned into a distribution before the loss."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y = y / tf.reduce_sum(y, axis=-1, keepdims=True)
        return super().compute_loss(x, y, y_pred, sample_weight, training)


def test_labels_a_compute_loss_override_changes_are_not_judged_as_fed():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, "relu")(inputs)
    model = NormalizesItsLabels(inputs, keras.layers.Dense(4, "softmax")(hidden))
    model.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy")
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    y = _label_rows("multi-hot", x, rng)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    assert "labels-out-of-range" not in callback.report().codes(), str(callback.report())


class ReadsOneModelOutsideTheTape(keras.Model):
    """A train_step that feeds `source`'s outputs to `trained` and updates `trained` only.

    A distillation's teacher, or a GAN's generator whose own update was forgotten (both read
    outside the tape, never asked a gradient for).
    """

    def __init__(self, source, trained):
        super().__init__()
        self.source, self.trained = source, trained

    def call(self, x):
        return self.trained(self.source(x))

    def train_step(self, data):
        x, y = data
        features = self.source(x)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self.trained(features))
        grads = tape.gradient(loss, self.trained.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trained.trainable_variables))
        return {"loss": loss}


@pytest.mark.parametrize("source_trained", [True, False], ids=["teacher", "forgotten-update"])
def test_a_model_read_outside_the_tape_is_left_out_only_if_never_trained(source_trained):
    x, y = regression_data()
    source = mlp(seed=1)
    if source_trained:  # a teacher, trained before the distillation
        _fit(source, keras.optimizers.Adam(1e-2), epochs=1, x=x, y=y)
    model = ReadsOneModelOutsideTheTape(source, mlp(features=1, seed=2))
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    _fit(model, keras.optimizers.Adam(1e-2), callbacks=[callback], x=x, y=y)
    report = callback.report()
    if source_trained:
        assert report.findings == [], str(report)
    else:
        finding = next(f for f in report.findings if f.code == "variable-not-trained")
        assert set(finding.variables) == {v.path for v in source.weights}


def test_a_new_optimizer_on_a_trained_plateau_may_hold_its_loss():
    # Labels 25% flipped: the first stage reaches the plateau (loss 0.61, accuracy 0.73 of a best
    # 0.75), and the fine-tuning stage's new optimizer starts on its weights, a resumed run.
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    flipped = rng.random(2000) < 0.25
    y[flipped] = 1 - y[flipped]
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    callback = gradguard.GuardCallback(policy=WARN_ALL)
    for rate in (1e-2, 1e-4):
        model.compile(keras.optimizers.Adam(rate), "binary_crossentropy")
        model.fit(x, y, epochs=5, verbose=0, callbacks=[callback])
    assert callback.report().findings == [], str(callback.report())
