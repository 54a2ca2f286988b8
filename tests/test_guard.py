"""The guard decorator over users' own train steps, in every decorator order, and model.fit."""

from __future__ import annotations

import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL, guarded_loss_step, mlp, regression_data

import gradguard
from gradguard import instrument
from gradguard.guarding import Guard
from gradguard.options import Options

ORDERS = ("eager", "guard-over-function", "function-over-guard")


def make_step(model, optimizer, body, order, **options):
    """Decorates `body` with guard in `order`."""
    options.setdefault("policy", WARN_ALL)
    options.setdefault("every", 5)
    decorate = gradguard.guard(model, optimizer, **options)
    if order == "eager":
        return decorate(body), decorate
    if order == "guard-over-function":
        return decorate(tf.function(body)), decorate
    guarded = decorate(body)
    return tf.function(guarded), guarded


def user_step(model, optimizer, bug=None):
    """A train step as users write it, with an optional planted bug."""
    loss_fn = keras.losses.MeanSquaredError()

    def train_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = loss_fn(y, tf.stop_gradient(y_pred) if bug == "stop-gradient" else y_pred)
        grads = tape.gradient(loss, model.trainable_variables)
        if bug == "forgot-apply":
            return loss
        if bug == "partial-list":
            variables = model.layers[0].trainable_variables
            optimizer.apply_gradients(zip(grads, variables))
            return loss
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def names(layer):
    return tuple(v.path.split("/", 1)[1] for v in layer.trainable_variables)


def report_of(step, guarded):
    return (guarded if hasattr(guarded, "report") else step).report()


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "bug,code",
    [(None, None), ("forgot-apply", "missing-apply"), ("partial-list", "variable-not-trained")],
    ids=["healthy", "forgot-apply", "partial-list"],
)
def test_what_the_user_code_did(order, bug, code):
    model, optimizer = mlp(depth=1), keras.optimizers.Adam(1e-2)
    step, guarded = make_step(model, optimizer, user_step(model, optimizer, bug), order)
    x, y = regression_data()
    for _ in range(10):
        step(x, y)
    report = report_of(step, guarded)
    if code is None:
        assert report.findings == [], str(report)
    else:
        assert code in report.codes(), str(report)
        finding = next(f for f in report.findings if f.code == code)
        if code == "variable-not-trained":
            assert finding.variables == names(model.layers[1])


def _two_square_layers(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, "tanh"), keras.layers.Dense(8, "tanh")]
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("pairing", ["swapped-layers", "same-order", "local-to-global"])
def test_gradients_zipped_with_another_order_of_the_variables(order, pairing):
    # Both layers' variables have the same shapes, so Keras cannot tell the swap.
    model, global_model = _two_square_layers(0), _two_square_layers(1)
    optimizer = keras.optimizers.SGD(1e-2)
    first, second = (layer.trainable_variables for layer in model.layers)
    asked = {"swapped-layers": first + second, "same-order": second + first}.get(pairing)
    # An A3C worker applies its local network's gradients to the global network: on purpose.
    applied = {"swapped-layers": second + first, "same-order": second + first}.get(
        pairing, global_model.trainable_variables
    )
    asked = asked or model.trainable_variables

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        optimizer.apply_gradients(zip(tape.gradient(loss, asked), applied))
        return loss

    models = [model, global_model] if pairing == "local-to-global" else model
    step, guarded = make_step(models, optimizer, train_step, order)
    x, y = regression_data()
    for _ in range(4):
        step(x, np.tile(y, [1, 8]))
    report = report_of(step, guarded)
    if pairing != "swapped-layers":
        assert "gradient-misassigned" not in report.codes(), str(report)
        return
    (finding,) = [f for f in report.findings if f.code == "gradient-misassigned"]
    assert finding.severity == gradguard.Severity.ERROR
    (kernel, bias), (kernel2, bias2) = (names(layer) for layer in model.layers)
    assert sorted(finding.variables) == sorted([kernel, bias, kernel2, bias2])
    assert f"{kernel} got the gradient of {kernel2}" in finding.message, finding.message


@pytest.mark.parametrize("order", ["guard-over-function", "function-over-guard"])
@pytest.mark.parametrize(
    "pairing",
    ["labels-and-logits-swapped", "right", "distilled", "sigmoid-by-position", "sigmoid-right"],
)
def test_a_cross_entropy_given_the_model_output_as_labels(order, pairing):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    optimizer = keras.optimizers.Adam(1e-2)
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    y = tf.one_hot(np.arange(32) % 4, 4)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            if pairing == "labels-and-logits-swapped":
                ce = tf.nn.softmax_cross_entropy_with_logits(labels=logits, logits=y)
            elif pairing == "right":
                ce = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
            elif pairing == "sigmoid-by-position":  # (TF1's order; TF2 takes labels first)
                ce = tf.nn.sigmoid_cross_entropy_with_logits(logits, y)
            elif pairing == "sigmoid-right":
                ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
            else:  # the teacher's probabilities are the labels: read from variables, on purpose
                soft = tf.nn.softmax(teacher(x))
                ce = tf.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits)
            loss = tf.reduce_mean(ce)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step, guarded = make_step(model, optimizer, train_step, order)
    for _ in range(3):
        step(x, y)
    report = report_of(step, guarded)
    swapped = [f for f in report.findings if f.code == "labels-out-of-range"]
    found = pairing in ("labels-and-logits-swapped", "sigmoid-by-position")
    assert bool(swapped) == found, str(report)
    if swapped:
        assert "swapped" in swapped[0].message, swapped[0].message
        assert ("logistic_loss" in swapped[0].message) == pairing.startswith("sigmoid")


@pytest.mark.parametrize("function", [False, True], ids=["eager", "tf-function"])
@pytest.mark.parametrize("learning_rate", [50.0, 0.01])
def test_a_loop_that_updates_by_hand_is_told_its_loss_went_nan(function, learning_rate):
    # No optimizer, so no core and none of its checks: as `gradguard run` watches such a loop.
    model = mlp(depth=1)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        for variable, grad in zip(model.trainable_variables, grads):
            variable.assign_sub(learning_rate * grad)
        return loss

    step = tf.function(train_step) if function else train_step
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    x, y = regression_data()
    with guard.instrument_process():
        losses = [float(step(x, y)) for _ in range(30)]
    report = guard.read(final=True)
    non_finite = [f for f in report.findings if f.code == "non-finite"]
    assert bool(non_finite) == (not np.isfinite(losses[-1])), (losses, str(report))
    if non_finite:
        first = next(i for i, loss in enumerate(losses) if not np.isfinite(loss))
        assert non_finite[0].step == first and "by hand" in non_finite[0].message


def test_keras_own_train_step_gets_no_watch_for_updates_by_hand():
    # It always applies its optimizer: the core checks its loss, nothing more is added.
    model = mlp(depth=1)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    with guard.instrument_process():
        model.fit(*regression_data(), batch_size=16, epochs=1, verbose=0)
    assert guard.cores and guard._manual is not None and guard._manual._state is None


@pytest.mark.parametrize("watch_all", [False, True])
def test_variables_a_tape_was_told_not_to_watch_are_named_as_such(watch_all):
    model, optimizer = mlp(depth=1), keras.optimizers.Adam(1e-2)
    head = model.layers[-1].trainable_variables

    def train_step(x, y):
        with tf.GradientTape(watch_accessed_variables=watch_all) as tape:
            tape.watch([v.value for v in head])  # the head only, unless watching all it reads
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step, guarded = make_step(model, optimizer, train_step, "guard-over-function")
    for _ in range(3):
        step(*regression_data())
    none = [f for f in report_of(step, guarded).findings if f.code == "none-gradient"]
    assert bool(none) != watch_all, none
    if none:
        assert none[0].variables == names(model.layers[0]), none
        assert "watch_accessed_variables=False" in none[0].message, none[0].message


@pytest.mark.parametrize(
    "loss_kind,labels",
    [
        ("keras", "unrelated"),
        ("tf.nn", "unrelated"),
        ("tf.nn", "learnable"),
        # 55/25/15/5%: predicting those frequencies scores their entropy, 1.11, not ln 4 (1.39).
        ("tf.nn", "unrelated-imbalanced"),
        ("tf.nn-plus-penalty", "unrelated"),  # another term: no level claimed
        ("tf.nn-summed", "learnable"),  # a batch's sum, not its mean: no level claimed
        ("tf.nn-teacher", "unrelated"),  # a teacher's soft targets: their entropy, no level
        ("tf.nn-soft", "teacher"),  # the same targets, computed before and fed in: no level
    ],
)
def test_a_hand_written_step_is_held_against_the_chance_level_its_loss_shows(loss_kind, labels):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )
    optimizer = keras.optimizers.Adam(1e-2)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            if loss_kind == "keras":
                loss = keras_loss(y, logits)
            elif loss_kind == "tf.nn-teacher":  # a teacher at temperature 10: near-uniform
                soft = tf.nn.softmax(teacher(x) / 10.0)
                ce = tf.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits / 10.0)
                loss = tf.reduce_mean(ce)
            elif loss_kind == "tf.nn-soft":
                ce = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits / 10.0)
                loss = tf.reduce_mean(ce)
            else:
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                loss = tf.reduce_sum(ce) if loss_kind == "tf.nn-summed" else tf.reduce_mean(ce)
                if loss_kind == "tf.nn-plus-penalty":
                    loss += 1e-4 * tf.add_n([tf.nn.l2_loss(v) for v in model.trainable_variables])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, policy=WARN_ALL)(train_step)
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 4))
    counts = np.zeros(4)
    for _ in range(500):  # fresh examples each step: unrelated labels cannot be memorized
        x = rng.normal(size=(32, 8)).astype("float32")
        if labels == "teacher":
            step(x, tf.nn.softmax(teacher(x) / 10.0))
            continue
        if labels == "learnable":
            y = np.argmax(x @ mixing, axis=1)
        else:
            y = rng.choice(4, 32, p=[0.55, 0.25, 0.15, 0.05] if "imbalanced" in labels else None)
        counts += np.bincount(y, minlength=4)
        step(x, y.astype("int32"))
    (core,) = step.guard.cores.values()
    claimed = loss_kind in ("keras", "tf.nn")
    if claimed:  # the labels' classes are counted in-graph: the level is their entropy
        frequencies = counts / counts.sum()
        entropy = -np.sum(frequencies * np.log(frequencies))
        assert core.notes["chance_loss"] == pytest.approx(entropy, abs=0.02)
    else:
        assert core.notes["chance_loss"] is None
    at_chance = "loss-not-decreasing" in step.report().codes()
    assert at_chance == (claimed and labels.startswith("unrelated")), str(step.report())


@pytest.mark.parametrize("eager", [False, True], ids=["tf-function", "eager"])
@pytest.mark.parametrize(
    "labels, penalty, found",
    [
        ("ten-classes", False, True),  # hunt17: class ids 0..9, one sigmoid unit
        ("zero-one", False, False),
        ("ten-classes", True, False),  # another term added: no floor claimed
    ],
)
def test_a_binary_cross_entropy_below_zero_in_a_hand_written_step_names_its_labels(
    eager, labels, penalty, found
):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    optimizer, loss_fn = keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy()

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            if penalty:
                loss += 1e-4 * tf.add_n([tf.nn.l2_loss(v) for v in model.trainable_variables])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    step = gradguard.guard(model, optimizer, policy=WARN_ALL, every=10)(
        train_step if eager else tf.function(train_step)
    )
    rng = np.random.default_rng(0)
    for _ in range(60):
        x = rng.normal(size=(32, 8)).astype("float32")
        y = rng.integers(0, 10 if labels == "ten-classes" else 2, size=(32, 1))
        step(x, y.astype("float32"))
    flagged = [f for f in step.report().findings if f.code == "labels-out-of-range"]
    assert bool(flagged) == found, str(step.report())
    if found:
        assert flagged[0].details["loss_floor"] == 0.0 and flagged[0].details["loss_min"] < 0


def _hand_written_loss(kind, model, y, logits):
    """A hand-written loss of `kind` on class ids `y` of shape (n, 1) and (n, 4) logits."""
    if kind == "one-hot-of-a-column":  # (n, 1, 4) against (n, 4): every label, every example
        return -tf.reduce_mean(tf.reduce_sum(tf.one_hot(y, 4) * tf.nn.log_softmax(logits), -1))
    if kind == "one-hot-of-the-ids":
        one_hot = tf.one_hot(y[:, 0], 4)
        return -tf.reduce_mean(tf.reduce_sum(one_hot * tf.nn.log_softmax(logits), -1))
    if kind == "prototypes":  # distances of (n, 1, 4) embeddings to 4 learned prototypes
        prototypes = model.layers[-1].kernel[:4]  # (4, 4)
        distances = tf.reduce_sum(tf.square(logits[:, None, :] - prototypes), -1)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y[:, 0], logits=-distances)
        )
    targets = tf.one_hot(y[:, 0], 4)
    if kind == "kernel-one-side-expanded":  # (n, 1, 4) outputs against (n, 4) targets
        return -tf.reduce_mean(tf.exp(-tf.reduce_sum(tf.square(logits[:, None] - targets), -1)))
    if kind == "risk-sets-of-labels":  # a survival loss's (n,) times against (n, 1): labels only
        times = tf.cast(y[:, 0], tf.float32)
        at_risk = tf.cast(times >= times[:, None], tf.float32)
        scores = logits[:, 0]
        log_risk = tf.math.log(tf.reduce_sum(at_risk * tf.exp(scores), 1))
        return tf.reduce_mean(log_risk - scores)
    # A kernel distance between the outputs and the one-hot labels as two sets: (n, 1, 4)
    # against (1, n, 4), both expanded on purpose.
    kernel = tf.exp(-tf.reduce_sum(tf.square(logits[:, None, :] - targets[None, :, :]), -1))
    return -tf.reduce_mean(kernel)


@pytest.mark.parametrize(
    "kind,found",
    [
        ("one-hot-of-a-column", True),
        ("one-hot-of-the-ids", False),
        ("prototypes", False),
        ("kernel-between-sets", False),
        ("kernel-one-side-expanded", False),
        ("risk-sets-of-labels", False),
    ],
)
def test_a_hand_written_loss_pairing_every_example_with_every_label_is_a_broadcast(kind, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )
    step = guarded_loss_step(model, lambda y, p: _hand_written_loss(kind, model, y, p))
    rng = np.random.default_rng(0)
    for _ in range(3):
        step(rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 4, (16, 1)))
    broadcasts = [f for f in step.report().findings if f.code == "loss-broadcast"]
    assert bool(broadcasts) == found, str(step.report())
    if found:
        assert "(16, 1, 4) into (16, 16, 4)" in broadcasts[0].message, broadcasts[0].message


def _softmax_loss(kind, y, outputs):
    """A loss of `kind` on (n, 4) outputs and class ids `y` of shape (n,)."""
    if kind in ("over-the-batch", "over-the-classes"):
        probabilities = tf.nn.softmax(outputs, axis=0 if kind == "over-the-batch" else -1)
        return keras.losses.sparse_categorical_crossentropy(y, probabilities)
    if kind == "contrastive":  # (n, n) similarities of the examples, normalized over axis 0
        similarities = tf.matmul(outputs, outputs, transpose_b=True)
        diagonal = tf.range(tf.shape(outputs)[0])
        return keras.losses.sparse_categorical_crossentropy(
            diagonal, tf.nn.softmax(similarities, axis=0)
        )
    if kind == "prototypes-over-axis-0":  # (4, n) distances of 4 prototypes to the examples
        prototypes = tf.constant(np.eye(4, dtype="float32"))
        distances = tf.reduce_sum(tf.square(prototypes[:, None, :] - outputs[None]), -1)
        return -tf.reduce_mean(tf.nn.log_softmax(-distances, axis=0))
    # Attention over the batch as one bag of instances (4 heads): the weights pool the
    # instances, and the bag's prediction goes into the log.
    weights = tf.nn.softmax(outputs, axis=0)
    bag = tf.sigmoid(tf.reduce_sum(weights * outputs))
    return -tf.math.log(bag)


@pytest.mark.parametrize(
    "kind,found",
    [
        ("over-the-batch", True),
        ("over-the-classes", False),
        ("contrastive", False),
        ("prototypes-over-axis-0", False),
        ("attention-over-a-bag", False),
    ],
)
def test_a_softmax_over_the_batch_into_a_cross_entropy_is_named(kind, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    step = guarded_loss_step(model, lambda y, p: tf.reduce_mean(_softmax_loss(kind, y, p)))
    rng = np.random.default_rng(0)
    dataset = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(32, 8)).astype("float32"), rng.integers(0, 4, 32))
    ).batch(16)
    for x, y in dataset:
        step(x, y)
    mismatches = [f for f in step.report().findings if f.code == "from-logits-mismatch"]
    assert bool(mismatches) == found, str(step.report())
    if found:
        assert "softmax over the batch axis of outputs of shape (16, 4)" in mismatches[0].message


@pytest.mark.parametrize(
    "classes,smoothing,found",
    [((-1.0, 1.0), 0.0, True), ((0.0, 1.0), 0.0, False), ((0.0, 1.0), 0.2, False)],
)
def test_a_binary_cross_entropy_below_zero_names_its_labels(classes, smoothing, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(1, "sigmoid")]
    )
    step = guarded_loss_step(model, keras.losses.BinaryCrossentropy(label_smoothing=smoothing))
    rng = np.random.default_rng(0)
    for _ in range(60):
        x = rng.normal(size=(32, 8)).astype("float32")
        y = np.where(x[:, :1] > 0, classes[1], classes[0]).astype("float32")
        step(x, y)
    out_of_range = [f for f in step.report().findings if f.code == "labels-out-of-range"]
    assert bool(out_of_range) == found, str(step.report())
    if found:
        assert "Number the two classes 0 and 1" in out_of_range[0].message


def test_a_warning_raised_while_guarded_points_at_its_own_caller():
    model, optimizer = mlp(depth=1), keras.optimizers.Adam(1e-2)
    body = user_step(model, optimizer)

    def train_step(x, y):
        warnings.warn("from the user's step", UserWarning, stacklevel=1)
        return body(x, y)

    step, _ = make_step(model, optimizer, train_step, "eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step(*regression_data())
    (warning,) = [w for w in caught if "user's step" in str(w.message)]
    assert warning.filename == __file__, warning.filename  # not gradguard's instrument.py


def test_missing_apply_raises_by_default():
    model, optimizer = mlp(), keras.optimizers.Adam(1e-2)
    step = gradguard.guard(model, optimizer, every=10)(
        tf.function(user_step(model, optimizer, "forgot-apply"))
    )
    x, y = regression_data()
    for _ in range(40):
        step(x, y)  # reads after calls 0, 10, 20: fewer than 32 gradient calls so far
    with pytest.raises(gradguard.UpdateError, match="apply_gradients") as info:
        step(x, y)  # the read after call 40
    assert info.value.finding.code == "missing-apply"


def test_gradient_accumulation_is_not_missing_apply():
    model, optimizer = mlp(), keras.optimizers.Adam(1e-2)
    loss_fn = keras.losses.MeanSquaredError()
    accumulated = [
        tf.Variable(tf.zeros_like(v), trainable=False) for v in model.trainable_variables
    ]

    @gradguard.guard(model, optimizer, every=2)
    def train_step(x, y, apply_now):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        for acc, g in zip(accumulated, tape.gradient(loss, model.trainable_variables)):
            acc.assign_add(g / 4.0)
        if apply_now:
            optimizer.apply_gradients(zip(accumulated, model.trainable_variables))
            for acc in accumulated:
                acc.assign(tf.zeros_like(acc))
        return loss

    x, y = regression_data()
    for i in range(12):
        train_step(x, y, i % 4 == 3)
    assert train_step.report().findings == []


@pytest.mark.parametrize("order", ORDERS)
def test_transform_is_applied_to_the_users_gradients(order):
    model, optimizer = mlp(), keras.optimizers.SGD(1.0)
    step, guarded = make_step(
        model,
        optimizer,
        user_step(model, optimizer),
        order,
        transform=gradguard.clip_by_global_norm(0.1),
    )
    before = [v.numpy() for v in model.trainable_variables]
    step(*regression_data())
    delta = [v.numpy() - b for v, b in zip(model.trainable_variables, before)]
    assert np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in delta)) == pytest.approx(
        0.1, rel=1e-4
    )


@pytest.mark.parametrize("kind", ["adam", "loss-scaled", "schedule-free"])
def test_an_optimizer_built_by_the_first_update_costs_no_second_trace(kind):
    # Keras builds an optimizer in its first update: a plain tf.function step whose first trace
    # creates the slots is traced twice. The guard builds it first, outside the trace, on the
    # same variables (and its own state there too): one trace, the optimizer Keras would build.
    # Not a loss scaler: `scale_loss`, before the update, reads whether it is built (the
    # constant initial scale until then), so its step must be traced again once it is. With
    # a scale that overflows float32, a trace kept from before the build skips every update.
    # ScheduleFree's `build` copies the weights into its slots: in a plain step that copy is in
    # the first trace, which tf.function never runs, so the guard's build must drop it too.
    x, y = tf.constant(regression_data()[0]), tf.constant(regression_data()[1])

    def user_step_scaled(model, optimizer):
        loss_fn = keras.losses.MeanSquaredError()

        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
                scaled_loss = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled_loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return train_step

    runs = []
    for guarded in (False, True):
        model = mlp()
        if kind == "loss-scaled":
            opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3), 2.0**127)
            inner = tf.function(user_step_scaled(model, opt))
        else:
            optimizers = {
                "adam": keras.optimizers.Adam,
                "schedule-free": keras.optimizers.ScheduleFreeAdamW,
            }
            opt = optimizers[kind](1e-3)
            inner = tf.function(user_step(model, opt))
        step = gradguard.guard(model, opt, every=2, policy=WARN_ALL)(inner) if guarded else inner
        for _ in range(12):
            step(x, y)
        built = [(v.name, tuple(v.shape)) for v in opt.variables]
        runs.append((inner.experimental_get_tracing_count(), built, model.get_weights()))
        if guarded:
            lost = step.report().codes() == {"optimizer-build-lost"}
            assert lost == (kind == "schedule-free"), str(step.report())
    (plain_traces, plain_built, plain_weights), (traces, built, weights) = runs
    assert (plain_traces, traces) == ((2, 2) if kind == "loss-scaled" else (2, 1))
    assert [(n.rsplit("_", 2)[-2:], s) for n, s in built] == [
        (n.rsplit("_", 2)[-2:], s) for n, s in plain_built
    ]
    moved = [np.abs(a - b).max() for a, b in zip(plain_weights, mlp().get_weights())]
    assert min(moved) > 0  # (the loss scaler got to a scale that trains)
    for a, b in zip(plain_weights, weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_built_optimizer_one_trace():
    model, optimizer = mlp(), keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    inner = tf.function(user_step(model, optimizer))
    step = gradguard.guard(model, optimizer, every=2)(inner)
    x, y = regression_data()
    for _ in range(6):
        step(tf.constant(x), tf.constant(y))
    assert inner.experimental_get_tracing_count() == 1


def test_same_weights_as_unguarded_with_identity_transform():
    x, y = regression_data()
    plain_model, guarded_model = mlp(), mlp()
    plain_opt, guarded_opt = keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2)
    plain = tf.function(user_step(plain_model, plain_opt))
    guarded = gradguard.guard(guarded_model, guarded_opt, transform=gradguard.identity())(
        tf.function(user_step(guarded_model, guarded_opt))
    )
    for _ in range(10):
        plain(x, y)
        guarded(x, y)
    for a, b in zip(plain_model.weights, guarded_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_gradients_taken_eagerly_and_applied_in_a_tf_function_train_as_unguarded():
    # The update's trace sees an eager loss, which its graph cannot read (it raised).
    def loop(guarded):
        x, y = regression_data()
        model, optimizer = mlp(), keras.optimizers.SGD(0.05)

        @tf.function
        def apply(grads):
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
            apply(tape.gradient(loss, model.trainable_variables))

        step = gradguard.guard(model, optimizer, every=4)(step) if guarded else step
        for _ in range(12):
            step()
        return model, step

    (guarded_model, step), (plain_model, _) = loop(True), loop(False)
    assert step.report().steps_observed == 12 and step.report().findings == []
    for a, b in zip(plain_model.weights, guarded_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_a_head_trained_alone_first_then_the_whole_model_is_not_left_out():
    # Linear probing, then fine-tuning: the body's first update comes later, not never.
    x, y = regression_data()
    model, optimizer = mlp(), keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    head = model.layers[-1].trainable_variables

    def step(variables):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    guarded = gradguard.guard(model, optimizer, every=5)(step)
    for k in range(40):
        guarded(head if k < 10 else model.trainable_variables)
    assert guarded.report().findings == [], str(guarded.report())


@pytest.mark.parametrize("bug", [None, "forgot-apply"])
def test_a_tf_function_called_before_it_was_guarded_is_guarded(bug):
    # Its cached trace never runs gradguard's Python: the guard must not leave it to that.
    x, y = regression_data()
    model = mlp()
    optimizer = keras.optimizers.SGD(1.0)
    step = tf.function(user_step(model, optimizer, bug))
    step(x, y)  # the trace
    before = [w.numpy() for w in model.trainable_variables]
    policy = {"missing-apply": "warn"}
    clip = gradguard.clip_by_global_norm(1e-3)
    guarded = gradguard.guard(model, optimizer, transform=clip, policy=policy, every=1)(step)
    guarded(x, y)
    if bug is None:  # SGD(1.0): the weights moved by the clipped gradient
        moved = [w.numpy() - b for w, b in zip(model.trainable_variables, before)]
        assert np.sqrt(sum(np.sum(d**2) for d in moved)) == pytest.approx(1e-3, rel=1e-4)
    guarded(x, y)
    guarded(x, y)
    report = guarded.report()
    assert report.steps_observed == 3
    assert [f.code for f in report.findings] == (["missing-apply"] if bug else []), str(report)


def test_none_gradients_passed_to_the_optimizer_are_named():
    model, optimizer = mlp(depth=1), keras.optimizers.Adam(1e-2)
    loss_fn = keras.losses.MeanSquaredError()

    @gradguard.guard(model, optimizer, policy=WARN_ALL)
    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            hidden = tf.stop_gradient(model.layers[0](x))
            loss = loss_fn(y, model.layers[1](hidden))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    train_step(*regression_data())
    (finding,) = [f for f in train_step.report().findings if f.code == "none-gradient"]
    assert finding.variables == names(model.layers[0])
    assert "tf.stop_gradient" in finding.message
    assert finding.severity is gradguard.Severity.WARNING


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "function"])
def test_loss_cut_from_the_tape_raises_before_the_optimizer_does(eager):
    model, optimizer = mlp(), keras.optimizers.Adam(1e-2)
    loss_fn = keras.losses.MeanSquaredError()

    def train_step(x, y):
        prediction = model(x, training=True)  # outside the tape
        with tf.GradientTape() as tape:
            loss = loss_fn(y, prediction)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    step = gradguard.guard(model, optimizer)(train_step if eager else tf.function(train_step))
    with pytest.raises(gradguard.GradientError, match="outside the `with tf.GradientTape"):
        step(*regression_data())


class GuardedNet(keras.Model):
    def __init__(self, forget_apply=False):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(1)
        self.forget_apply = forget_apply

    def call(self, x):
        return self.out(self.hidden(x))

    @gradguard.guard
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        if not self.forget_apply:
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


@pytest.mark.parametrize("forget_apply", [False, True], ids=["healthy", "forgot-apply"])
def test_bare_guard_over_model_train_step_guards_fit(forget_apply):
    keras.utils.set_random_seed(0)
    model = GuardedNet(forget_apply)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x, y = regression_data(n=256)
    model(x[:1])
    before = float(np.mean((model(x).numpy() - y) ** 2))
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    after = float(np.mean((model(x).numpy() - y) ** 2))
    report = gradguard.model_report(model)
    assert report is not None
    if forget_apply:
        assert "missing-apply" in report.codes(), str(report)
        assert after == before
    else:
        assert report.findings == [], str(report)
        assert after < 0.5 * before


def test_guard_needs_an_optimizer():
    with pytest.raises(TypeError, match="needs the optimizer"):
        gradguard.guard(mlp())


def test_guard_rejects_a_model_that_is_not_one():
    with pytest.raises(TypeError, match="guard's model must be .* got str 'my_model'"):
        gradguard.guard("my_model", keras.optimizers.Adam())


def test_a_bare_guard_over_a_plain_step_function_says_to_name_the_model():
    @gradguard.guard
    def train_step(x, y):
        return x

    with pytest.raises(TypeError, match=r"called with a ndarray first.*guard\(model, optimizer\)"):
        train_step(*regression_data())


def test_guard_rejects_a_non_keras_optimizer():
    with pytest.raises(TypeError, match="Keras optimizer"):
        gradguard.guard(mlp(), object())


# -- several optimizers in one step: GANs ---------------------------------------------------------


def _gan_parts(seed=0):
    keras.utils.set_random_seed(seed)
    generator = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)],
        name="generator",
    )
    discriminator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)],
        name="discriminator",
    )
    return generator, discriminator


def _real_points(n=256, seed=0):
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).astype("float32")


class KerasIoGan(keras.Model):
    """The keras.io "Customizing fit(): GAN" pattern, with a bare @gradguard.guard."""

    def __init__(self):
        super().__init__()
        self.generator, self.discriminator = _gan_parts()
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    @gradguard.guard
    def train_step(self, real):
        batch = tf.shape(real)[0]
        noise = tf.random.normal((batch, 4))
        fake = self.generator(noise)
        points = tf.concat([fake, real], axis=0)
        labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = self.bce(labels, self.discriminator(points))
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        with tf.GradientTape() as tape:
            g_loss = self.bce(tf.zeros((batch, 1)), self.discriminator(self.generator(noise)))
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


def test_bare_guard_over_a_gan_train_step_guards_both_optimizers():
    gan = KerasIoGan()
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    gan.fit(_real_points(), batch_size=8, epochs=8, verbose=0)  # 256 steps
    report = gradguard.model_report(gan)
    assert report.findings == [], str(report)  # no missing-apply from the unused default
    guarded = type(gan).__dict__["train_step"].guards[gan]
    cores = {core.optimizer.name for core in guarded.cores.values()}
    assert cores == {gan.d_optimizer.name, gan.g_optimizer.name}
    assert report.steps_observed == 256


def _gan_step(generator, discriminator, g_opt, d_opt):
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def step(real):
        noise = tf.random.normal((tf.shape(real)[0], 4))
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(noise, training=True)
            real_out, fake_out = discriminator(real), discriminator(fake)
            d_loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
            g_loss = bce(tf.ones_like(fake_out), fake_out)
        d_grads = d_tape.gradient(d_loss, discriminator.trainable_variables)
        g_grads = g_tape.gradient(g_loss, generator.trainable_variables)
        d_opt.apply_gradients(zip(d_grads, discriminator.trainable_variables))
        g_opt.apply_gradients(zip(g_grads, generator.trainable_variables))
        return d_loss

    return step


@pytest.mark.parametrize("form", ["stacked", "lists"])
def test_one_gan_step_under_guards_gives_one_silent_report(form):
    generator, discriminator = _gan_parts()
    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    body = tf.function(_gan_step(generator, discriminator, g_opt, d_opt))
    if form == "stacked":
        inner = gradguard.guard(discriminator, d_opt, every=20)(body)
        step = gradguard.guard(generator, g_opt, every=20)(inner)
    else:
        step = inner = gradguard.guard([generator, discriminator], [g_opt, d_opt], every=20)(body)
    real = _real_points()
    for i in range(250):
        step(real[(i % 32) * 8 : (i % 32) * 8 + 8])
    assert step.report() is inner.report()
    assert step.report().findings == [], str(step.report())
    assert step.report().steps_observed == 250


def test_separately_guarded_gan_steps_do_not_judge_their_losses(tmp_path):
    from gradguard import inspect as inspect_lib

    generator, discriminator = _gan_parts()
    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @gradguard.guard(discriminator, d_opt, every=50, log_dir=str(tmp_path / "d"))
    @tf.function
    def d_step(real):
        fake = generator(tf.random.normal((tf.shape(real)[0], 4)))
        with tf.GradientTape() as tape:
            real_out, fake_out = discriminator(real), discriminator(fake)
            loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
        grads = tape.gradient(loss, discriminator.trainable_variables)
        d_opt.apply_gradients(zip(grads, discriminator.trainable_variables))

    @gradguard.guard(generator, g_opt, every=50, log_dir=str(tmp_path / "g"))
    @tf.function
    def g_step(real):
        with tf.GradientTape() as tape:
            fake_out = discriminator(generator(tf.random.normal((tf.shape(real)[0], 4))))
            loss = bce(tf.ones_like(fake_out), fake_out)  # reads the discriminator
        grads = tape.gradient(loss, generator.trainable_variables)
        g_opt.apply_gradients(zip(grads, generator.trainable_variables))

    real = _real_points()
    for i in range(300):
        batch = real[(i % 32) * 8 : (i % 32) * 8 + 8]
        d_step(batch)
        g_step(batch)
    assert g_step.report().findings == [], str(g_step.report())
    assert d_step.report().findings == [], str(d_step.report())
    g_run = inspect_lib.inspect(str(tmp_path / "g")).results[0]
    assert "loss-not-decreasing" not in g_run.report.codes(), g_run.report


@pytest.mark.parametrize("skips", [True, False], ids=["skip_nonfinite", "identity"])
def test_weights_are_kept_for_a_nan_replay_only_where_a_nan_update_reaches_them(skips):
    """Behind `skip_nonfinite()` (the default) a non-finite update never reaches the weights,
    so the NaN keeper holds only the batch; keeping the weights too would make every update
    wait for the step's health flag. Without the gate (as under `gradguard run`) it keeps them.
    """
    x, y = regression_data()
    model, optimizer = mlp(), keras.optimizers.Adam(1e-2)
    options = {} if skips else {"transform": gradguard.identity()}
    step = gradguard.guard(model, optimizer, policy=WARN_ALL, **options)(
        tf.function(user_step(model, optimizer))
    )
    step(x, y)
    ((keeper, _),) = step.guard.forensics._keepers.values()
    assert len(keeper._weights) == (0 if skips else len(model.trainable_weights))


@pytest.mark.parametrize("order", ORDERS)
def test_a_loss_scalers_loss_is_judged_unscaled(order):
    # The tape is asked for the gradient of the scaled loss, and the update runs inside the
    # scaler's conditional: the loss judged is still the user's, as in TrainStep.
    model = mlp()
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01))
    loss_fn = keras.losses.MeanSquaredError()

    def body(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            scaled = optimizer.scale_loss(loss)
        optimizer.apply_gradients(
            zip(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
        )
        return loss

    step, guarded = make_step(model, optimizer, body, order)
    x, y = regression_data()
    for _ in range(3):
        loss = float(step(x, y))
    (core,) = (guarded if order == "function-over-guard" else step).guard.cores.values()
    assert core.statistics()["loss"] == pytest.approx(loss, rel=1e-6)
    assert float(optimizer.dynamic_scale.numpy()) > 1e3  # the loss was scaled


def test_a_none_gradient_at_warn_is_logged_before_keras_refuses_the_update(caplog):
    # With the finding not raised, Keras raises on the all-None gradients: the explanation (where
    # the chain broke) must be out before that, not at a read that never comes.
    model, optimizer = mlp(), keras.optimizers.SGD(0.1)
    body = user_step(model, optimizer, bug="stop-gradient")
    policy = {"none-gradient": "warn"}
    step, _ = make_step(model, optimizer, body, "guard-over-function", policy=policy)
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError):
        step(*regression_data())
    assert "[none-gradient]" in caplog.text and "tf.stop_gradient" in caplog.text


def test_a_patch_is_installed_while_used_and_restored_exactly():
    class Base:
        def method(self) -> str:
            return "base"

    class Owner(Base):
        pass

    wrapped = []

    def wrap(original):
        wrapped.append(original)
        return lambda self: "wrapped " + original(self)

    patch = instrument.Patch(Owner, "method", wrap)
    with patch:
        with patch:  # nested uses: installed once
            assert Owner().method() == "wrapped base"
        assert Owner().method() == "wrapped base"
    assert "method" not in vars(Owner) and Owner().method() == "base"  # inherited: not copied
    with patch:
        assert Owner().method() == "wrapped base"
    assert len(wrapped) == 1  # a guard enters its patches every call: the wrapper is made once
    Base.method = lambda self: "replaced"  # changed by someone else between two uses
    with patch:
        assert Owner().method() == "wrapped replaced"
    assert len(wrapped) == 2 and Owner().method() == "replaced"


def test_a_step_that_fails_midway_leaves_no_invented_finding():
    # A call aborted by an assert in the user's step may have run some of gradguard's ops: a
    # row counted without being written read as a loss scale of 0 ("collapsed").
    x, y = regression_data()
    model, optimizer = mlp(), keras.optimizers.Adam()

    @gradguard.guard(model, optimizer, policy=WARN_ALL)
    @tf.function
    def step(x, y, i):
        with tf.GradientTape() as tape:
            tf.debugging.assert_less(i, 2, message="stop here")
            loss = tf.reduce_mean(tf.square(y - model(x)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    with pytest.raises(tf.errors.InvalidArgumentError, match="stop here"):
        for i in range(4):
            step(x, y, tf.constant(i))
    assert step.report().findings == [], str(step.report())


@pytest.mark.parametrize("watched", [False, True])
@pytest.mark.parametrize("compiled", [False, True])
def test_a_gradient_asked_of_an_unwatched_tensor_is_named(watched, compiled):
    # Input gradients (saliency, a gradient penalty) need tape.watch; without it TensorFlow
    # returns None silently.
    x, y = regression_data()
    model, optimizer = mlp(), keras.optimizers.Adam()

    def step(x, y):
        x = tf.convert_to_tensor(x)
        with tf.GradientTape(persistent=True) as tape:
            if watched:
                tape.watch(x)
            loss = tf.reduce_mean(tf.square(y - model(x)))
        tape.gradient(loss, x)  # a saliency map
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    guarded = gradguard.guard(model, optimizer, policy=WARN_ALL)(
        tf.function(step) if compiled else step
    )
    for _ in range(3):
        guarded(x, y)
    found = [f for f in guarded.report().findings if f.code == "none-gradient"]
    assert bool(found) == (not watched), str(guarded.report())
    if found:
        assert "tape.watch(x)" in found[0].message and "(64, 8)" in found[0].message


def test_run_counts_the_steps_of_optimizers_one_after_another_and_a_games_once():
    # A model and its optimizer rebuilt every "epoch" (10 steps, 3 times): 30 steps, not 10.
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    x, y = regression_data()
    with guard.instrument_process():
        for _ in range(3):
            model, optimizer = mlp(), keras.optimizers.Adam(1e-2)
            step = tf.function(user_step(model, optimizer))
            for _ in range(10):
                step(x, y)
    assert len(guard.cores) == 3 and guard.read(final=True).steps_observed == 30
    # A GAN's two optimizers update in turn: 12 steps are 12, not 24.
    generator, discriminator = _gan_parts()
    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    gan = tf.function(_gan_step(generator, discriminator, g_opt, d_opt))
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    with guard.instrument_process():
        for i in range(12):
            gan(_real_points()[i * 8 : i * 8 + 8])
    assert len(guard.cores) == 2 and guard.read(final=True).steps_observed == 12


@pytest.mark.parametrize(
    ("make", "updates_each", "found"),
    [
        (lambda: keras.optimizers.Adam(1e-2), 1, True),
        (lambda: keras.optimizers.SGD(1e-2, momentum=0.9), 1, True),
        (lambda: keras.optimizers.SGD(1e-2), 1, False),  # no state to lose
        (lambda: keras.optimizers.Adam(1e-2), 4, False),  # an inner loop's per-task optimizer
    ],
    ids=["adam", "momentum", "plain-sgd", "four-updates-each"],
)
def test_an_optimizer_made_anew_for_every_update_is_named_and_shares_one_core(
    make, updates_each, found
):
    model = mlp()
    x, y = regression_data()
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    with guard.instrument_process():
        for _ in range(24 // updates_each):
            step = user_step(model, make())  # eager: the bug a tf.function refuses
            for _ in range(updates_each):
                step(x, y)
    report = guard.read(final=True)
    recreated = [f for f in report.findings if f.code == "optimizer-recreated"]
    assert bool(recreated) == found, str(report)
    # Made one per update or per task, they go on in the first one's core: one record.
    assert len(guard.cores) == 1
    assert report.steps_observed == 24
    if found:
        assert recreated[0].details["optimizers"] == 24
        assert "before the training loop" in recreated[0].message


def test_a_fresh_optimizer_per_task_goes_on_in_one_core_without_a_loss_trend():
    """hunt14: Reptile adapts to each task (a new sine) with a new SGD for 5 updates: the loss
    falls within each task and moves from one task to the next; one core for all 600 updates
    (a core per task made the run 12 times slower)."""
    model = mlp(features=1, units=16)
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(32, 1)).astype("float32")
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    with guard.instrument_process():
        for _ in range(120):
            y = rng.uniform(0.5, 2.0) * np.sin(x + rng.uniform(0, 2 * np.pi))
            step = user_step(model, keras.optimizers.SGD(0.1))
            for _ in range(5):
                step(x, y.astype("float32"))
    report = guard.read(final=True)
    assert len(guard.cores) == 1 and report.steps_observed == 600
    assert report.codes() == set(), str(report)


def test_compile_before_each_train_on_batch_makes_an_optimizer_per_update():
    # Each compile makes a new Adam, met inside the new train function's trace.
    model = mlp()
    x, y = regression_data()
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    with guard.instrument_process():
        for _ in range(12):
            model.compile(keras.optimizers.Adam(1e-2), "mse")
            model.train_on_batch(x, y)
    report = guard.read(final=True)
    assert "optimizer-recreated" in {f.code for f in report.findings}, str(report)
    assert len(guard.cores) == 1 and report.steps_observed == 12


@pytest.mark.parametrize("scaled", [True, False], ids=["loss-scaled", "unscaled"])
def test_float16_underflow_is_named_only_without_a_loss_scaler(scaled):
    """The guard intercepts a LossScaleOptimizer's inner optimizer: it is told the scaler ran."""
    rng = np.random.default_rng(0)
    features, zeros = rng.normal(size=(64, 8)).astype("float32"), np.zeros((64, 4), "float32")
    y = (features[:, :1] > 0).astype("float32")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        a, b = keras.Input((8,)), keras.Input((4,))
        both = keras.layers.Concatenate()(
            [keras.layers.Dense(8)(a), keras.layers.Dense(4, "relu", name="meta")(b)]
        )
        model = keras.Model([a, b], keras.layers.Dense(1, dtype="float32")(both))
        optimizer = keras.optimizers.Adam(1e-3)
        if scaled:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)

        @gradguard.guard(model, optimizer, policy=WARN_ALL)
        @tf.function
        def train_step(x, z, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(y - model([x, z], training=True)))
                target = optimizer.scale_loss(loss) if scaled else loss
            grads = tape.gradient(target, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        for _ in range(4):
            train_step(features, zeros, y)
        (zero,) = [f for f in train_step.report().findings if f.code == "zero-gradient"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert zero.variables == ("meta/kernel", "meta/bias"), zero
    assert ("LossScaleOptimizer" in zero.message) == (not scaled), zero.message


@pytest.mark.parametrize("strict", [True, False])
def test_a_check_failing_around_fit_is_logged_and_fit_goes_on(monkeypatch, caplog, strict):
    """A bug in a host-side check must not kill the user's script (``GRADGUARD_STRICT=1``,
    the test suite's setting, raises it instead)."""

    def broken(*args):
        raise ValueError("a broken check")

    monkeypatch.setattr(Guard, "on_fit_start", broken)
    if not strict:
        monkeypatch.delenv("GRADGUARD_STRICT")
    model = mlp(depth=1)
    model.compile(keras.optimizers.SGD(1e-2), "mse")
    before = [w.copy() for w in model.get_weights()]
    guard = Guard(options=Options.create(policy=WARN_ALL), raise_errors=False)
    with guard.instrument_process(), caplog.at_level(logging.ERROR):
        if strict:
            with pytest.raises(ValueError, match="a broken check"):
                model.fit(*regression_data(), batch_size=16, epochs=1, verbose=0)
            return
        model.fit(*regression_data(), batch_size=16, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert "a check failed in on_fit_start" in caplog.text, caplog.text
