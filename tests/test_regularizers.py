"""Penalties a hand-written loss never adds (`regularizers`, `regularization-ignored`): found
for a kernel or activity regularizer whose `model.losses` a hand-written loop or `train_step`
override never reads, eager and traced, under the guard decorator and `gradguard run`'s
process-wide guard; silent for a loss that adds them, for `fit` and `self.compute_loss`, for a
layer's own `losses` read, for a frozen regularized layer and for a regularized teacher."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options

CODE = "regularization-ignored"
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 6)).astype("float32")
Y = (X[:, :1] > 0).astype("float32")


def _model(penalty: str = "kernel", trainable: bool = True) -> keras.Model:
    keras.utils.set_random_seed(0)
    kwargs = {"kernel_regularizer": "l2"} if penalty == "kernel" else {"activity_regularizer": "l1"}
    hidden = keras.layers.Dense(8, activation="relu", trainable=trainable, **kwargs)
    output = keras.layers.Dense(1, kernel_regularizer="l2" if penalty == "both" else None)
    return keras.Sequential([keras.Input((6,)), hidden, output])


LOOPS = [
    "forgotten",
    "forgotten, activity",
    "forgotten, read before the tape",  # (hunt13: constants to the tape, no gradient)
    "added",
    "each layer's own read",
    "one layer's read, the other's left out",  # (hunt13: normalization kept free of decay)
    "frozen layer",
    "regularized teacher",
]


def _loop(loop: str, entry: str, traced: bool) -> list[str]:
    penalty = "activity" if "activity" in loop else "both" if "left out" in loop else "kernel"
    model = _model(penalty, loop != "frozen layer")
    teacher = _model() if loop == "regularized teacher" else None
    if teacher is not None:
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.01)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def step(x, y):
        before = model.losses if "before the tape" in loop else []  # (the tape never sees it)
        with tf.GradientTape() as tape:
            target = y if teacher is None else tf.sigmoid(teacher(x))
            loss = loss_fn(target, model(x, training=True))
            if loop == "added":
                loss += tf.add_n(model.losses)
            elif before:
                loss += tf.add_n(before)
            elif loop == "each layer's own read":
                loss += tf.add_n([p for layer in model.layers for p in layer.losses])
            elif loop == "one layer's read, the other's left out":
                loss += tf.add_n(model.layers[1].losses)
            elif loop == "weight decay by hand":  # (hunt13: the factory's regularizer too)
                loss += 1e-2 * tf.add_n([tf.nn.l2_loss(layer.kernel) for layer in model.layers])
            elif loop == "all kernels flattened, k * k by hand":  # (hunt13: one global norm)
                flat = tf.concat([tf.reshape(layer.kernel, [-1]) for layer in model.layers], 0)
                loss += 1e-2 * tf.reduce_sum(flat * flat)
            elif loop == "the regularizer called by hand":  # (hunt13: penalties logged apart)
                hidden = model.layers[0]
                loss += hidden.kernel_regularizer(hidden.kernel)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    step = tf.function(step) if traced else step
    if entry == "decorator":
        guarded = gradguard.guard(model, optimizer)(step)
        for _ in range(3):
            guarded(X, Y)
        return guarded.report().codes()
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for _ in range(3):
            step(X, Y)
        return [f.code for f in guard.read(final=True).findings]


@pytest.mark.parametrize("entry, traced", [("decorator", True), ("run", False), ("run", True)])
@pytest.mark.parametrize("loop", LOOPS)
def test_penalties_a_hand_written_loss_never_reads_are_found(loop, entry, traced):
    codes = _loop(loop, entry, traced)
    # (Traced, a penalty read before the tape is still in the loss's graph: taken as added.)
    found = loop.startswith("forgotten") and not (traced and "before the tape" in loop)
    assert (CODE in codes) == found, codes


@pytest.mark.parametrize("entry", ["decorator", "run"])
@pytest.mark.parametrize(
    "loop",
    [
        "weight decay by hand",
        "all kernels flattened, k * k by hand",
        "the regularizer called by hand",
    ],
)
def test_a_traced_loss_penalizing_the_weights_by_hand_is_silent(loop, entry):
    # (read from the traced loss; in an eager one, only the regularizer called is seen)
    assert CODE not in _loop(loop, entry, traced=True)


def test_an_eager_loss_calling_the_regularizer_by_hand_is_silent():
    assert CODE not in _loop("the regularizer called by hand", "run", traced=False)


class OwnLoss(keras.Sequential):
    """A train_step override: with Keras' compute_loss (penalties added), or a loss of its own."""

    own = False

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            if self.own:
                loss = keras.losses.binary_crossentropy(y, y_pred, from_logits=True)
            else:
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": tf.reduce_mean(loss)}


@pytest.mark.parametrize("how", ["fit", "compute_loss", "own loss"])
def test_fit_and_train_step_overrides(how):
    keras.utils.set_random_seed(0)
    model_class = keras.Sequential if how == "fit" else OwnLoss
    model = model_class(
        [keras.Input((6,)), keras.layers.Dense(8, kernel_regularizer="l2", name="hidden")]
    )
    model.add(keras.layers.Dense(1))
    model.own = how == "own loss"
    model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True))
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        # (validation: Keras' test step reads the penalties, but not into a trained loss)
        model.fit(X, Y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
        findings = [f for f in guard.read(final=True).findings if f.code == CODE]
    assert len(findings) == (how == "own loss"), findings
    if findings:
        assert "hidden (kernel)" in findings[0].message and "model.losses" in findings[0].message
