"""Gradients accumulated by hand in variables nothing resets (`accumulators`,
`accumulators-not-reset`): found when they are applied as they are or as their mean; silent
when they are zeroed after each update (eagerly, or in the update's function), before each
cycle, or made anew for each cycle, and for updates of fresh gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options

K = 3  # micro-batches per update
LOOPS = [
    "never reset",
    "mean never reset",
    "reset eagerly",
    "reset in the update",
    "reset first",
    "assigned sum never reset",  # a.assign(a + g): an assign_add written out
    "assigned sum reset in the update",
]


def _small_model() -> tuple[np.ndarray, keras.Model, keras.optimizers.Optimizer]:
    """Inputs (16, 4), a one-unit regression model and its SGD, the same in every test."""
    x = np.random.default_rng(7).normal(size=(16, 4)).astype("float32")
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    return x, model, keras.optimizers.SGD(0.01)


def _train(loop: str, micro_batches: int = 12) -> list[str]:
    """`micro_batches` of a small regression, accumulated over K each; the codes found."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16 * micro_batches, 4)).astype("float32")
    y = x @ rng.normal(size=(4, 1)).astype("float32")
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)
    accumulators = [
        tf.Variable(tf.zeros_like(v), trainable=False) for v in model.trainable_variables
    ]

    @tf.function
    def accumulate(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        for a, g in zip(accumulators, tape.gradient(loss, model.trainable_variables)):
            if loop.startswith("assigned"):
                a.assign(a + g)
            else:
                a.assign_add(g)

    @tf.function
    def update():
        grads = [a / K for a in accumulators] if loop.startswith("mean") else accumulators
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if loop.endswith("reset in the update"):
            for a in accumulators:
                a.assign(tf.zeros_like(a))

    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for i in range(micro_batches):
            if loop == "reset first" and i % K == 0:
                for a in accumulators:
                    a.assign(tf.zeros_like(a))
            accumulate(x[16 * i : 16 * (i + 1)], y[16 * i : 16 * (i + 1)])
            if i % K == K - 1:
                update()
                if loop == "reset eagerly":
                    for a in accumulators:
                        a.assign(tf.zeros_like(a))
        return [f.code for f in guard.read(final=True).findings]


@pytest.mark.parametrize("loop", LOOPS)
def test_accumulators_never_reset_are_found(loop):
    codes = _train(loop)
    assert ("accumulators-not-reset" in codes) == loop.endswith("never reset"), codes


def test_two_updates_are_too_few_to_judge():
    assert "accumulators-not-reset" not in _train("never reset", micro_batches=2 * K)


def test_accumulators_made_anew_for_each_cycle_are_not_reset_by_design():
    x, model, optimizer = _small_model()
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for _ in range(5):  # eager: each cycle's variables, added to once, then applied
            fresh = [tf.Variable(tf.zeros_like(v)) for v in model.trainable_variables]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model(x, training=True) ** 2)
            for a, g in zip(fresh, tape.gradient(loss, model.trainable_variables)):
                a.assign_add(g)
            optimizer.apply_gradients(zip(fresh, model.trainable_variables))
        codes = [f.code for f in guard.read(final=True).findings]
    assert "accumulators-not-reset" not in codes, codes


def test_keras_own_gradient_accumulation_is_silent():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(192, 4)).astype("float32")
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2, gradient_accumulation_steps=K), "mse")
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, x[:, :1], batch_size=16, epochs=1, verbose=0)
        codes = [f.code for f in guard.read(final=True).findings]
    assert "accumulators-not-reset" not in codes, codes


def test_the_guard_decorator_which_sees_no_reset_outside_its_calls_does_not_judge():
    x, model, optimizer = _small_model()
    accumulators = [tf.Variable(tf.zeros_like(v)) for v in model.trainable_variables]

    @gradguard.guard(model, optimizer)
    def update(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True) ** 2)
        for a, g in zip(accumulators, tape.gradient(loss, model.trainable_variables)):
            a.assign_add(g)
        optimizer.apply_gradients(zip(accumulators, model.trainable_variables))

    for _ in range(5):
        update(x)
        for a in accumulators:  # reset outside the guarded call: unseen by the decorator
            a.assign(tf.zeros_like(a))
    assert "accumulators-not-reset" not in update.report().codes()


@pytest.mark.parametrize("average", ["assign_add of a decay", "assign"])
def test_an_average_of_the_gradients_kept_in_variables_is_no_sum(average):
    """An EMA of the gradients, e += 0.1 (g - e), is set back by its own value: no growing sum."""
    x, model, optimizer = _small_model()
    ema = [tf.Variable(tf.zeros_like(v)) for v in model.trainable_variables]

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True) ** 2)
        for e, g in zip(ema, tape.gradient(loss, model.trainable_variables)):
            if average == "assign":
                e.assign(value=0.9 * e + 0.1 * g)  # (by keyword: the patch passes it on)
            else:
                e.assign_add(0.1 * (g - e))
        optimizer.apply_gradients(zip(ema, model.trainable_variables))

    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for _ in range(5):
            step(x)
        codes = [f.code for f in guard.read(final=True).findings]
    assert "accumulators-not-reset" not in codes, codes


def test_a_sum_kept_over_a_table_of_gradients_is_no_growing_sum():
    """SAG (hunt11): d += g - table[i], the replaced entry taken off: never reset, by design."""
    x, model, optimizer = _small_model()
    kernel, bias = model.trainable_variables
    table = tf.Variable(tf.zeros([4, *kernel.shape]), trainable=False)
    total = tf.Variable(tf.zeros_like(kernel), trainable=False)

    @tf.function
    def step(i):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True) ** 2)
        grad, _ = tape.gradient(loss, [kernel, bias])
        total.assign_add(grad - tf.gather(table, i))
        table.scatter_update(tf.IndexedSlices(grad[None], i[None]))
        optimizer.apply_gradients([(total / 4, kernel)])

    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        for i in range(6):
            step(tf.constant(i % 4))
        codes = [f.code for f in guard.read(final=True).findings]
    assert "accumulators-not-reset" not in codes, codes
