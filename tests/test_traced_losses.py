"""What a hand-written loss's traced graph shows: its sign, and what it compares.

`loss-sign-flipped` (the labels' log-likelihood minimized), `labels-uninformative` (the
batch's mean error squared, the error never squared, or only one label's examples counted) and
`from-logits-mismatch` (a cross-entropy on probabilities given logits), each with healthy twins
that look like it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import WARN_ALL, guarded_loss_step

import gradguard


def _step(entry_point, model, loss_fn):
    """A hand-written guarded step, or a `TrainStep` handed the same loss function."""
    if entry_point == "guard":
        return guarded_loss_step(model, loss_fn)
    return gradguard.TrainStep(model, keras.optimizers.Adam(1e-2), loss_fn, policy=WARN_ALL)


def _likelihood_loss(kind, y, logits):
    """A hand-written loss of `kind` on class ids `y` (n,) and (n, 4) logits."""
    one_hot = tf.one_hot(y, 4)
    log_probabilities = tf.nn.log_softmax(logits)
    if kind == "log-softmax-without-minus":
        return tf.reduce_mean(tf.reduce_sum(one_hot * log_probabilities, -1))
    if kind == "log-softmax":
        return -tf.reduce_mean(tf.reduce_sum(one_hot * log_probabilities, -1))
    if kind == "log-of-softmax-without-minus":
        log_p = tf.math.log(tf.nn.softmax(logits) + 1e-7)
        return tf.reduce_mean(tf.reduce_sum(one_hot * log_p, -1))
    if kind == "keras-cross-entropy-negated":
        probabilities = tf.nn.softmax(logits)
        return -tf.reduce_mean(keras.losses.categorical_crossentropy(one_hot, probabilities))
    if kind == "sparse-cross-entropy-negated":
        return -tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    if kind.startswith("sigmoid-cross-entropy"):  # Keras' binary cross-entropy on logits
        cross_entropy = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(one_hot, logits))
        return -cross_entropy if kind.endswith("negated") else cross_entropy
    if kind.startswith("multi-label"):  # one sigmoid per class, a binary cross-entropy each
        p = tf.sigmoid(logits)
        log_likelihood = one_hot * tf.math.log(p + 1e-7) + (1 - one_hot) * tf.math.log(1 - p + 1e-7)
        return tf.reduce_mean(log_likelihood) * (1.0 if kind.endswith("without-minus") else -1.0)
    picked = tf.gather(log_probabilities, y, batch_dims=1)  # the labels' (actions') log-p
    if kind == "picked-without-minus":
        return tf.reduce_mean(picked)
    if kind == "negated-labels":  # the minus on the labels: -y * log p
        return tf.reduce_mean(tf.reduce_sum(-one_hot * log_probabilities, -1))
    if kind.startswith("policy-gradient"):  # REINFORCE: the actions' log-probabilities
        weights = tf.cast(y, tf.float32) - 1.5  # returns, or costs (minimized with a plus)
        sign = 1.0 if kind.endswith("on-costs") else -1.0
        return sign * tf.reduce_mean(picked * weights)
    if kind == "preference":  # DPO: the chosen action's log-probability over the rejected's
        rejected = tf.gather(log_probabilities, (y + 1) % 4, batch_dims=1)
        return -tf.reduce_mean(tf.math.log_sigmoid(0.5 * (picked - rejected)))
    if kind == "complementary-labels":  # an unbiased estimator from complementary labels
        return tf.reduce_mean(
            3.0 * tf.reduce_sum(one_hot * log_probabilities, -1)
            - tf.reduce_sum(log_probabilities, -1)
        )
    cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    if kind == "entropy-bonus":  # minus the predictions' entropy: keeps them from collapsing
        probabilities = tf.nn.softmax(logits)
        return cross_entropy + 0.1 * tf.reduce_mean(
            tf.reduce_sum(probabilities * log_probabilities, -1)
        )
    # Domain-adversarial in one loss: the task's cross-entropy minus a second head's.
    domain = tf.nn.sparse_softmax_cross_entropy_with_logits(y % 2, logits[:, :2])
    return cross_entropy - 0.1 * tf.reduce_mean(domain)


@pytest.mark.parametrize(
    "kind,found",
    [
        ("log-softmax-without-minus", True),
        ("log-of-softmax-without-minus", True),
        ("keras-cross-entropy-negated", True),
        ("sparse-cross-entropy-negated", True),
        ("multi-label-without-minus", True),
        ("sigmoid-cross-entropy-negated", True),
        ("picked-without-minus", True),
        ("log-softmax", False),
        ("negated-labels", False),
        ("multi-label", False),
        ("sigmoid-cross-entropy", False),
        ("policy-gradient", False),
        # Costs minimized with a plus look as rewards without the minus: no claim either way.
        ("policy-gradient-on-costs", False),
        ("complementary-labels", False),
        ("preference", False),
        ("entropy-bonus", False),
        ("domain-adversarial", False),
    ],
)
@pytest.mark.parametrize("entry_point", ["guard", "train_step"])
def test_a_loss_growing_with_the_labels_log_likelihood_is_named(kind, found, entry_point):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )
    step = _step(entry_point, model, lambda y, p: _likelihood_loss(kind, y, p))
    rng = np.random.default_rng(0)
    for _ in range(2):
        step(rng.normal(size=(32, 8)).astype("float32"), rng.integers(0, 4, 32))
    flipped = [f for f in step.report().findings if f.code == "loss-sign-flipped"]
    assert bool(flipped) == found, str(step.report())
    if found:
        assert "minimizing it makes the labels" in flipped[0].message


def _unit(v):
    return tf.math.l2_normalize(v, axis=-1)


# Cosine losses between target embeddings y (n, 4) and the model's (n, 4) output p.
_COSINE_LOSSES = {
    "one-minus-keras-cosine": lambda y, p: 1.0 - keras.losses.cosine_similarity(y, p),
    "keras-cosine-negated": lambda y, p: -keras.losses.cosine_similarity(y, p),
    "cosine-by-hand-without-minus": lambda y, p: tf.reduce_sum(_unit(y) * _unit(p), -1),
    "keras-cosine": lambda y, p: keras.losses.cosine_similarity(y, p),
    "one-plus-keras-cosine": lambda y, p: 1.0 + keras.losses.cosine_similarity(y, p),
    "one-minus-cosine-by-hand": lambda y, p: 1.0 - tf.reduce_sum(_unit(y) * _unit(p), -1),
    "divided-by-norms": lambda y, p: (
        1.0 - tf.reduce_sum(y * p, -1) / (tf.norm(y, axis=-1) * tf.norm(p, axis=-1))
    ),
    # A dot product unscaled (a Wasserstein critic's y * p): its sign is the labels' to say.
    "dot-product": lambda y, p: tf.reduce_sum(y * p, -1),
    # A target and a hard negative packed in the labels: the error pulls the output to the
    # target, a margin on the cosine pushes it from the negative, on purpose.
    "error-and-a-hard-negative": lambda y, p: (
        tf.reduce_sum(tf.square(y[:, :2] - p[:, :2]), -1)
        + tf.nn.relu(tf.reduce_sum(_unit(y[:, 2:]) * _unit(p[:, 2:]), -1) - 0.3)
    ),
}


@pytest.mark.parametrize(
    "kind,found",
    [
        ("one-minus-keras-cosine", True),
        ("keras-cosine-negated", True),
        ("cosine-by-hand-without-minus", True),
        ("keras-cosine", False),
        ("one-plus-keras-cosine", False),
        ("one-minus-cosine-by-hand", False),
        ("divided-by-norms", False),
        ("dot-product", False),
        ("error-and-a-hard-negative", False),
    ],
)
@pytest.mark.parametrize("entry_point", ["guard", "train_step"])
def test_a_loss_growing_with_the_labels_cosine_similarity_is_named(kind, found, entry_point):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )
    step = _step(entry_point, model, lambda y, p: tf.reduce_mean(_COSINE_LOSSES[kind](y, p)))
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(size=(32, 8)).astype("float32")
        step(x, x[:, :4] + 0.1 * rng.normal(size=(32, 4)).astype("float32"))
    flipped = [f for f in step.report().findings if f.code == "loss-sign-flipped"]
    assert bool(flipped) == found, str(step.report())
    if found:
        assert "cosine similarity of the predictions to the labels" in flipped[0].message


def _dice(y, p):
    return (2.0 * tf.reduce_sum(y * p) + 1.0) / (tf.reduce_sum(y) + tf.reduce_sum(p) + 1.0)


# Overlap losses on (n, 8) masks and a sigmoid (or, where named, linear) output.
_OVERLAP_LOSSES = {
    "dice-coefficient": _dice,  # hunt28 b03: compile(loss=dice_coef)
    "dice-per-example": lambda y, p: tf.reduce_mean(
        (2.0 * tf.reduce_sum(y * p, -1) + 1.0) / (tf.reduce_sum(y + p, -1) + 1.0)
    ),
    "one-minus-dice": lambda y, p: 1.0 - _dice(y, p),
    "cross-entropy-minus-dice": lambda y, p: (
        tf.reduce_mean(keras.losses.binary_crossentropy(y, p)) - _dice(y, p)
    ),
    # The union holds the overlap too (through the divisor): it claims nothing.
    "iou-coefficient": lambda y, p: (
        tf.reduce_sum(y * p) / (tf.reduce_sum(y) + tf.reduce_sum(p) - tf.reduce_sum(y * p) + 1.0)
    ),
    "brier-score": lambda y, p: tf.reduce_mean(tf.square(y - p)),
}


@pytest.mark.parametrize(
    "kind, found",
    [
        ("dice-coefficient", True),
        ("dice-per-example", True),
        ("one-minus-dice", False),
        ("cross-entropy-minus-dice", False),
        ("iou-coefficient", False),
        ("brier-score", False),
    ],
)
def test_a_loss_growing_with_the_overlap_of_predictions_and_labels_is_named(kind, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(8, "sigmoid")]
    )
    step = guarded_loss_step(model, _OVERLAP_LOSSES[kind])
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(size=(32, 8)).astype("float32")
        step(x, (x > 0.5).astype("float32"))
    flipped = [f for f in step.report().findings if f.code == "loss-sign-flipped"]
    assert bool(flipped) == found, str(step.report())
    if found:
        assert "overlap of the predicted probabilities and the labels" in flipped[0].message
        assert "1 - dice_coef" in flipped[0].message


def test_a_generator_lowering_the_discriminators_likelihood_of_fake_is_not_flagged():
    """The minimax GAN: the generator minimizes log D(fake | G(z)), through the discriminator's
    layer, which this update does not train."""
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    discriminator = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def generator_step(z, fake):
        with tf.GradientTape() as tape:
            log_p = tf.nn.log_softmax(discriminator(generator(z)))
            loss = tf.reduce_mean(tf.reduce_sum(tf.one_hot(fake, 2) * log_p, -1))
        grads = tape.gradient(loss, generator.trainable_variables)
        optimizer.apply_gradients(zip(grads, generator.trainable_variables))
        return loss

    step = gradguard.guard(generator, optimizer, policy=WARN_ALL)(generator_step)
    for _ in range(2):
        step(tf.random.normal((16, 4)), tf.ones(16, tf.int32))
    assert "loss-sign-flipped" not in step.report().codes(), str(step.report())


@pytest.mark.parametrize("examples", [64, 72], ids=["full-batches", "a-partial-batch"])
def test_fit_with_a_loss_function_without_its_minus_is_told(examples):
    def log_likelihood(y_true, logits):  # compiled as the model's loss: minimized by fit
        labels = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), 4)
        return tf.reduce_sum(labels * tf.nn.log_softmax(logits), -1)

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4)]
    )
    model.compile(keras.optimizers.Adam(1e-3), log_likelihood)
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(examples, 8)).astype("float32")
    # A partial batch leaves the batch size unknown: Keras' mean reads the loss's shape.
    model.fit(x, rng.integers(0, 4, examples), batch_size=32, verbose=0, callbacks=[guard])
    assert "loss-sign-flipped" in guard.report().codes(), str(guard.report())


@pytest.mark.parametrize("absolute", [False, True], ids=["abs-forgotten", "mean-absolute-error"])
def test_fit_with_a_loss_linear_in_the_error_over_a_partial_batch_is_told(absolute):
    """hunt14: Keras' mean over a batch of unknown size reads the per-example errors' shape."""

    def my_mae(y_true, y_pred):
        error = y_true - y_pred
        return tf.reduce_mean(tf.abs(error) if absolute else error, axis=-1)

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(1e-3), my_mae)
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    x = np.random.default_rng(0).normal(size=(72, 8)).astype("float32")
    model.fit(x, x[:, :1] * 2.0, batch_size=32, verbose=0, callbacks=[guard])
    found = [f.message for f in guard.report().findings if f.code == "labels-uninformative"]
    assert (found and LINEAR in found[0]) if not absolute else not found, str(guard.report())


_ERRORS = {
    "mean-error-squared": lambda y, p: tf.reduce_mean(y - p) ** 2,
    "square-of-the-mean-error": lambda y, p: tf.square(tf.reduce_mean(y - p)),
    "absolute-mean-error": lambda y, p: tf.abs(tf.reduce_mean(p - y)),
    "mean-squared-error": lambda y, p: tf.reduce_mean(tf.square(y - p)),
    # A calibration term (the mean error squared) beside a per-example error.
    "with-a-calibration-term": lambda y, p: (
        tf.reduce_mean(tf.square(y - p)) + tf.square(tf.reduce_mean(y - p))
    ),
    # ... and beside a likelihood of the labels, which compares each example on its own.
    "calibration-beside-a-likelihood": lambda y, p: (
        -tf.reduce_mean(y * tf.math.log_sigmoid(p)) + tf.square(tf.reduce_mean(y - p))
    ),
    # Moments matched per feature: the mean error over the batch axis alone, squared.
    "moments-over-the-batch-axis": lambda y, p: tf.reduce_sum(
        tf.square(tf.reduce_mean(y - p, axis=0))
    ),
    # Errors summed over a sequence's steps (axis 1), then squared per example.
    "summed-over-time-steps": lambda y, p: tf.reduce_mean(tf.square(tf.reduce_sum(y - p, axis=1))),
    # The square forgotten: the loss is linear in the error.
    "mean-error": lambda y, p: tf.reduce_mean(y - p),
    "error-summed-over-the-batch-size": lambda y, p: (
        tf.reduce_sum(p - y) / tf.cast(tf.shape(y)[0], tf.float32)
    ),
    "mean-error-per-example-then-halved": lambda y, p: (
        0.5 * tf.reduce_mean(tf.reduce_mean(y - p, axis=-1))
    ),
    "mean-absolute-error": lambda y, p: tf.reduce_mean(tf.abs(y - p)),
    "mean-squared-error-as-a-product": lambda y, p: tf.reduce_mean((y - p) * (y - p)),
    "error-norm-per-example": lambda y, p: tf.reduce_mean(tf.norm(y - p, axis=-1)),
    # An error weighted by data: a divergence from target distributions written by hand.
    "kl-divergence-by-hand": lambda y, p: tf.reduce_mean(
        tf.reduce_sum(tf.nn.softmax(y) * (tf.nn.log_softmax(y) - tf.nn.log_softmax(p)), -1)
    ),
    "quantile-loss": lambda y, p: tf.reduce_mean(tf.maximum(0.9 * (y - p), -0.1 * (y - p))),
    "a-mean-error-beside-a-squared-one": lambda y, p: (
        tf.reduce_mean(tf.square(y - p)) + 0.1 * tf.reduce_mean(y - p)
    ),
    # Labels that also reach the model's side: a KL divergence estimated on actions sampled
    # from a teacher (its log-probabilities in column 0, the actions in column 1) ...
    "sampled-kl-divergence": lambda y, p: tf.reduce_mean(
        y[:, 0] - tf.gather(tf.nn.log_softmax(p), tf.cast(y[:, 1] > 0, tf.int32), batch_dims=1)
    ),
    # ... and an expected regret: the best reward less the rewards the policy expects.
    "expected-regret": lambda y, p: tf.reduce_mean(
        tf.reduce_max(y, -1) - tf.reduce_sum(tf.nn.softmax(p) * y, -1)
    ),
}
SQUARED = "averages the error over the batch before squaring it"
LINEAR = "is linear in the error"


@pytest.mark.parametrize(
    "kind,found",
    [
        ("mean-error-squared", SQUARED),
        ("square-of-the-mean-error", SQUARED),
        ("absolute-mean-error", SQUARED),
        ("mean-error", LINEAR),
        ("error-summed-over-the-batch-size", LINEAR),
        ("mean-error-per-example-then-halved", LINEAR),
        ("mean-squared-error", None),
        ("with-a-calibration-term", None),
        ("calibration-beside-a-likelihood", None),
        ("moments-over-the-batch-axis", None),
        ("summed-over-time-steps", None),
        ("mean-absolute-error", None),
        ("mean-squared-error-as-a-product", None),
        ("error-norm-per-example", None),
        ("kl-divergence-by-hand", None),
        ("quantile-loss", None),
        ("a-mean-error-beside-a-squared-one", None),
        ("sampled-kl-divergence", None),
        ("expected-regret", None),
    ],
)
@pytest.mark.parametrize("entry_point", ["guard", "train_step"])
def test_an_error_measured_whole_is_named(kind, found, entry_point):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(2)]
    )
    step = _step(entry_point, model, _ERRORS[kind])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    for _ in range(2):
        step(x, x[:, :2] * 2.0)
    uninformative = [f for f in step.report().findings if f.code == "labels-uninformative"]
    assert bool(uninformative) == bool(found), str(step.report())
    if found:
        assert found in uninformative[0].message


# Label noise: each class kept with probability 0.85 (a variable no optimizer trains).
_MIXING = tf.Variable((np.full((4, 4), 0.05) + 0.8 * np.eye(4)).astype("float32"), trainable=False)


def _probability_loss(kind, y, outputs):
    """A cross-entropy of `kind` on class ids `y` (n,) and the model's `outputs`."""
    if kind.startswith("sparse"):
        from_logits = kind == "sparse-from-logits"
        probabilities = tf.nn.softmax(outputs) if kind == "sparse-on-nn-softmax" else outputs
        return keras.losses.SparseCategoricalCrossentropy(from_logits)(y, probabilities)
    if kind == "categorical-on-logits":
        return keras.losses.CategoricalCrossentropy()(tf.one_hot(y, 4), outputs)
    if kind.startswith("binary"):
        return keras.losses.BinaryCrossentropy()(tf.cast(y > 1, tf.float32)[:, None], outputs)
    if kind.startswith("focal"):  # by hand: where(y == 1, p, 1 - p), clipped against log(0)
        labels = tf.cast(y > 1, tf.float32)[:, None]
        p = tf.clip_by_value(outputs, 1e-7, 1.0 - 1e-7)
        picked = tf.where(tf.equal(labels, 1.0), p, 1.0 - p)
        return -tf.reduce_mean(tf.pow(1.0 - picked, 2.0) * tf.math.log(picked))
    if kind == "softmax-mixed-by-a-frozen-matrix":  # noisy-label forward correction
        return keras.losses.SparseCategoricalCrossentropy()(y, tf.nn.softmax(outputs) @ _MIXING)
    if kind == "log-floored-not-capped":  # a floor alone is not Keras' clip into (0, 1)
        return -tf.reduce_mean(tf.one_hot(y, 4) * tf.math.log(tf.maximum(outputs, 1e-3)))
    if kind == "gaussian-likelihood":  # the log of a variance clipped to be positive
        mean, variance = outputs[:, 0], tf.maximum(outputs[:, 1], 1e-3)
        error = tf.cast(y, tf.float32) - mean
        return tf.reduce_mean(0.5 * tf.math.log(variance) + tf.square(error) / (2 * variance))
    # The model's raw output, clipped, logged and averaged: no labels in it.
    return -tf.reduce_mean(tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0)))


@pytest.mark.parametrize(
    "kind,activation,found",
    [
        ("sparse-on-logits", None, True),
        ("categorical-on-logits", None, True),
        ("binary-on-logits", None, True),
        ("sparse-on-softmax", "softmax", False),
        ("sparse-from-logits", None, False),
        ("sparse-on-nn-softmax", None, False),
        ("binary-on-sigmoid", "sigmoid", False),
        ("focal-on-logits", None, True),  # hunt28 b10
        ("focal-on-sigmoid", "sigmoid", False),
        ("gaussian-likelihood", None, False),
        ("log-of-clipped-output", None, False),
        ("softmax-mixed-by-a-frozen-matrix", None, False),
        ("log-floored-not-capped", None, False),
    ],
)
def test_a_cross_entropy_on_probabilities_given_logits_is_named(kind, activation, found):
    keras.utils.set_random_seed(0)
    units = 1 if kind.startswith(("binary", "focal")) else 4
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8, "relu"),
            keras.layers.Dense(units, activation, name="head"),
        ]
    )
    step = guarded_loss_step(model, lambda y, p: _probability_loss(kind, y, p))
    rng = np.random.default_rng(0)
    for _ in range(2):
        step(rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 4, 16))
    mismatches = [f for f in step.report().findings if f.code == "from-logits-mismatch"]
    assert bool(mismatches) == found, str(step.report())
    if found:
        assert "head" in mismatches[0].details["output"]
        assert "from_logits=True" in mismatches[0].message


_PRIOR = tf.Variable(tf.zeros(4), trainable=False)  # a target network's logits, say


def _ordered_loss(kind, y, probabilities):
    """A Keras cross-entropy of `kind` on class ids `y` (n,) and a softmax's `probabilities`."""
    one_hot = tf.one_hot(y, 4)
    if kind == "categorical-swapped":  # keras#8993: (y_pred, y_true)
        return tf.reduce_mean(keras.losses.categorical_crossentropy(probabilities, one_hot))
    if kind == "binary-swapped":
        return tf.reduce_mean(keras.losses.binary_crossentropy(probabilities, one_hot))
    if kind == "categorical":
        return tf.reduce_mean(keras.losses.categorical_crossentropy(one_hot, probabilities))
    if kind == "smoothed-with-a-constant-target":  # the smoothing term's target is no data
        uniform = tf.ones_like(probabilities) / 4
        smoothing = keras.losses.categorical_crossentropy(probabilities, uniform)
        cross_entropy = keras.losses.categorical_crossentropy(one_hot, probabilities)
        return tf.reduce_mean(0.9 * cross_entropy + 0.1 * smoothing)
    if kind == "against-a-frozen-network":  # its probabilities read variables, not data
        target = tf.nn.softmax(_PRIOR + tf.zeros_like(probabilities))
        return tf.reduce_mean(keras.losses.categorical_crossentropy(probabilities, target))
    if kind == "entropy-bonus":  # the predictions' own entropy, clipped, beside the loss
        entropy = keras.losses.categorical_crossentropy(probabilities, probabilities)
        cross_entropy = keras.losses.categorical_crossentropy(one_hot, probabilities)
        return tf.reduce_mean(cross_entropy - 0.01 * entropy)
    return tf.reduce_mean(keras.losses.kl_divergence(probabilities, one_hot))  # reverse KL


@pytest.mark.parametrize(
    "kind,found",
    [
        ("categorical-swapped", True),
        ("binary-swapped", True),
        ("categorical", False),
        ("smoothed-with-a-constant-target", False),
        ("against-a-frozen-network", False),
        ("entropy-bonus", False),
        ("reverse-kl", False),
    ],
)
def test_a_keras_cross_entropy_given_its_arguments_swapped_is_named(kind, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, "softmax")])
    step = guarded_loss_step(model, lambda y, p: _ordered_loss(kind, y, p))
    rng = np.random.default_rng(0)
    for _ in range(2):
        step(rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 4, 16))
    swapped = [f for f in step.report().findings if f.code == "labels-out-of-range"]
    assert bool(swapped) == found, str(step.report())
    if found:
        assert "y_true and y_pred are swapped" in swapped[0].message, swapped[0].message


def _token_losses(y, logits):
    """Each token's cross-entropy and the padding mask of labels `y` (0 is padding)."""
    per_token = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return per_token, tf.cast(tf.equal(y, 0), per_token.dtype)


def _masked_loss(kind, y, logits):
    """A token loss of `kind` on labels `y` (n, T) padded with 0 and logits (n, T, 6)."""
    if kind == "a-flag-column-split-off":  # the labels and a flag of the tokens to count
        tokens, flag = tf.unstack(tf.cast(y, tf.int32), axis=-1)
        per_token, _ = _token_losses(tokens, logits)
        counted = tf.cast(tf.equal(flag, 1), per_token.dtype)
        return tf.reduce_sum(per_token * counted) / tf.reduce_sum(counted)
    per_token, padding = _token_losses(y, logits)
    if kind == "padding-kept":  # TensorFlow's tutorial's mask, tf.logical_not left out
        mask = tf.cast(tf.math.equal(y, 0), per_token.dtype)
        return tf.reduce_sum(per_token * mask) / tf.reduce_sum(mask)
    if kind == "padding-kept-by-where":
        return tf.reduce_mean(tf.where(tf.equal(y, 0), per_token, tf.zeros_like(per_token)))
    if kind == "padding-kept-by-boolean-mask":
        return tf.reduce_mean(tf.boolean_mask(per_token, tf.equal(y, 0)))
    if kind == "padding-dropped-by-boolean-mask":
        return tf.reduce_mean(tf.boolean_mask(per_token, tf.not_equal(y, 0)))
    if kind == "padding-kept-as-keras-sample-weight":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return loss(y, logits, sample_weight=padding)
    if kind == "padding-dropped":
        mask = tf.cast(tf.math.logical_not(tf.math.equal(y, 0)), per_token.dtype)
        return tf.reduce_sum(per_token * mask) / tf.reduce_sum(mask)
    if kind == "padding-dropped-by-not-equal":
        mask = tf.cast(tf.not_equal(y, 0), per_token.dtype)
        return tf.reduce_sum(per_token * mask) / tf.reduce_sum(mask)
    if kind == "padding-dropped-by-where":
        return tf.reduce_mean(tf.where(tf.equal(y, 0), tf.zeros_like(per_token), per_token))
    if kind == "padding-dropped-by-one-minus":
        return tf.reduce_sum(per_token * (1.0 - padding)) / tf.reduce_sum(1.0 - padding)
    if kind == "ignore-class":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
        return loss(y, logits)
    if kind == "a-term-per-class":  # class 0 weighted apart from the others
        others = 1.0 - padding
        return tf.reduce_sum(per_token * padding) / (1.0 + tf.reduce_sum(padding)) + (
            tf.reduce_sum(per_token * others) / (1.0 + tf.reduce_sum(others))
        )
    if kind == "a-class-term-beside-the-mean":
        return tf.reduce_mean(per_token) + tf.reduce_sum(per_token * padding) / 100.0
    if kind == "a-weight-column-beside-the-labels":  # column 1 flags the tokens to count
        tokens = tf.cast(y, tf.int32) % 6
        counted = tf.cast(tf.equal(tf.cast(y, tf.int32) // 6, 1), per_token.dtype)
        return tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(tokens, logits, from_logits=True) * counted
        )
    raise ValueError(kind)


_PADDING_KEPT = "counts only the examples whose label is 0"


@pytest.mark.parametrize(
    "kind,found",
    [
        ("padding-kept", True),
        ("padding-kept-by-where", True),
        ("padding-kept-as-keras-sample-weight", True),
        ("padding-kept-by-boolean-mask", True),
        ("padding-dropped-by-boolean-mask", False),
        ("padding-dropped", False),
        ("padding-dropped-by-not-equal", False),
        ("padding-dropped-by-where", False),
        ("padding-dropped-by-one-minus", False),
        ("ignore-class", False),
        ("a-term-per-class", False),
        ("a-class-term-beside-the-mean", False),
        ("a-weight-column-beside-the-labels", False),
        ("a-flag-column-split-off", False),
    ],
)
@pytest.mark.parametrize("entry_point", ["guard", "train_step"])
def test_a_loss_counting_only_the_padding_is_named(kind, found, entry_point):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,), dtype="int32"), keras.layers.Embedding(6, 8), keras.layers.Dense(6)]
    )
    step = _step(entry_point, model, lambda y, p: _masked_loss(kind, y, p))
    rng = np.random.default_rng(0)
    x = rng.integers(1, 6, size=(32, 5))
    x[:, 3:] = 0  # two padding tokens at each sequence's end
    y = (x * 5) % 6  # the tokens' labels; padding stays 0
    if kind == "a-weight-column-beside-the-labels":
        y = y + 6 * (x > 0)  # labels + 6 where the token counts
    if kind == "a-flag-column-split-off":
        y = np.stack([y, x > 0], axis=-1)
    for _ in range(2):
        step(x.astype("int32"), y.astype("int32"))
    uninformative = [f for f in step.report().findings if f.code == "labels-uninformative"]
    assert bool(uninformative) == found, str(step.report())
    if found:
        assert _PADDING_KEPT in uninformative[0].message
        assert uninformative[0].details["label"] == 0


@pytest.mark.parametrize("kept", ["padding", "tokens"])
def test_fit_with_a_masked_loss_keeping_the_padding_is_told(kept):
    def masked_loss(y_true, y_pred):  # the Keras translation tutorial's, compiled
        loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        mask = tf.cast(y_true == 0 if kept == "padding" else y_true != 0, loss.dtype)
        return tf.reduce_sum(loss * mask) / tf.reduce_sum(mask)

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,), dtype="int32"), keras.layers.Embedding(6, 8), keras.layers.Dense(6)]
    )
    model.compile(keras.optimizers.Adam(1e-2), masked_loss)
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    x = np.random.default_rng(0).integers(1, 6, size=(64, 5))
    x[:, 3:] = 0
    model.fit(x, (x * 5) % 6, batch_size=32, epochs=2, verbose=0, callbacks=[guard])
    found = [f for f in guard.report().findings if f.code == "labels-uninformative"]
    assert bool(found) == (kept == "padding"), str(guard.report())


def test_a_model_comparing_strings_in_its_step_trains_silently():
    # `TextVectorization` in the model compares its input with the empty string in the step
    # the guard reads for label masks (gradguard run crashed converting b"" to a number).
    words = tf.constant(["good day", "bad day", "good", "bad", "a good one", "a bad one"] * 8)
    labels = np.array([1.0, 0.0] * 24, "float32")
    vectorize = keras.layers.TextVectorization(max_tokens=10, output_sequence_length=4)
    vectorize.adapt(words)
    inputs = keras.Input((1,), dtype="string")
    hidden = keras.layers.Embedding(10, 4, mask_zero=True)(vectorize(inputs))
    model = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(hidden))
    )
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    guard = gradguard.GuardCallback(policy=WARN_ALL)
    model.fit(words[:, None], labels, batch_size=16, epochs=2, verbose=0, callbacks=[guard])
    assert guard.report().findings == [], str(guard.report())


def test_a_mask_on_the_models_input_is_not_a_mask_on_the_labels():
    # A masked-language model: the loss counts the tokens masked in the model's input (their
    # id is 1 there); the labels are the original tokens.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,), dtype="int32"), keras.layers.Embedding(6, 8), keras.layers.Dense(6)]
    )
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(masked, tokens):
        with tf.GradientTape() as tape:
            per_token, _ = _token_losses(tokens, model(masked, training=True))
            counted = tf.cast(tf.equal(masked, 1), per_token.dtype)
            loss = tf.reduce_sum(per_token * counted) / tf.reduce_sum(counted)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step = gradguard.guard(model, optimizer, policy=WARN_ALL)(train_step)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 6, size=(32, 5)).astype("int32")
    masked = np.where(rng.random((32, 5)) < 0.3, 1, tokens).astype("int32")
    for _ in range(2):
        step(masked, tokens)
    assert "labels-uninformative" not in step.report().codes(), str(step.report())


@pytest.mark.parametrize(
    "reduce, named",
    [
        (lambda e: tf.reduce_sum(e), "64 examples"),  # per-example losses summed
        (lambda e: tf.reduce_sum(tf.reduce_sum(e, axis=1)), "64 examples"),
        (lambda e: tf.reduce_mean(e), None),
        (lambda e: tf.reduce_sum(e) / 64.0, None),  # a mean written by hand
        (lambda e: tf.reduce_sum(e / 64.0), None),  # the same, divided first
        (lambda e: tf.nn.compute_average_loss(tf.reduce_sum(e, 1), global_batch_size=64), None),
        (lambda e: tf.reduce_mean(tf.reduce_sum(e, axis=1)), None),  # summed over outputs only
    ],
    ids=[
        "sum",
        "sum-of-sums",
        "mean",
        "sum-over-count",
        "count-then-sum",
        "average-loss",
        "sum-over-outputs",
    ],
)
def test_a_loss_summed_over_its_batch_is_named_when_it_diverges(reduce, named):
    """`exploding-gradient` says the loss sums its examples (`losslevel.graph_batch_sum`):
    SGD tuned for a mean takes steps 64 times too large. Means, and sums divided by a count,
    are not named: there a rate too high for that model diverges (lr 2 here)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 2))).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.05 if named else 2.0)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = reduce(tf.square(y - model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    step = gradguard.guard(model, optimizer, policy=WARN_ALL, every=5)(train_step)
    for _ in range(15):
        step(x, y)
    (found,) = [f for f in step.report().findings if f.code == "exploding-gradient"]
    if named:
        assert f"The loss is a sum over {named} (tf.reduce_sum)" in found.message, found.message
    else:
        assert "sum over" not in found.message, found.message


def _contrastive_loss(kind, outputs):
    """NT-Xent of `kind` over the model's (n, 8) outputs: two 'views' of 4 examples each."""
    z = tf.math.l2_normalize(outputs, axis=1)
    n = tf.shape(z)[0] // 2
    if kind == "two-towers":  # CLIP: the first half against the second, pairs on the diagonal
        logits = tf.matmul(z[:4], z[4:], transpose_b=True) / 0.2
        return keras.losses.sparse_categorical_crossentropy(tf.range(4), logits, True)
    logits = tf.matmul(z, z, transpose_b=True) / 0.2
    labels = tf.range(2 * n)
    if kind == "masked-and-paired":
        logits -= 1e9 * tf.eye(2 * n)
        labels = tf.concat([tf.range(n, 2 * n), tf.range(0, n)], 0)
    if kind == "self-positive-one-hot":
        return keras.losses.categorical_crossentropy(tf.one_hot(labels, 2 * n), logits, True)
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


@pytest.mark.parametrize(
    "kind, found",
    [
        ("self-positive", True),  # hunt28 b05: labels tf.range(2n), no mask
        ("self-positive-one-hot", True),
        ("masked-and-paired", False),
        ("two-towers", False),
    ],
)
def test_a_contrastive_loss_whose_positive_is_each_rows_own_similarity_is_named(kind, found):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8)])
    step = guarded_loss_step(model, lambda y, p: tf.reduce_mean(_contrastive_loss(kind, p)))
    rng = np.random.default_rng(0)
    for _ in range(2):
        step(rng.normal(size=(8, 6)).astype("float32"), np.zeros(8, "float32"))
    named = [f for f in step.report().findings if f.code == "labels-uninformative"]
    assert bool(named) == found, str(step.report())
    if found:
        assert "its own similarity" in named[0].message
        assert "MatMul" in named[0].details["product"]
