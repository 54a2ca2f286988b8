"""A batch drawn by NumPy while the step was traced (`frozenbatch`, `batch-frozen-at-trace`):
found for NumPy-drawn indices into data held in the graph (a captured tensor, a NumPy array),
under the guard decorator and `gradguard run`'s process-wide guard; silent for indices drawn
with `tf.random`, for a slice of consecutive rows (one batch overfit on purpose), and for a
memory of examples replayed beside a batch passed to the step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options

CODE = "batch-frozen-at-trace"
ROWS = 512
PICKS = [
    "numpy indices",
    "numpy indices into numpy",
    "tf.random",
    "first rows",
    "rehearsal",
    # hunt11's healthy designs:
    "sorted subset",  # a learning curve's fixed subset, selected
    "memory beside a tf.random batch",  # replay of a memory picked once
    "labels only",  # full-batch on every node, the loss on fixed labelled nodes
    "an epoch of fixed batches",  # a curriculum: every example, in a fixed order
    "an epoch of fixed batches, a gradient each",  # (judged once the whole epoch is traced)
    "an epoch of fixed batches of numpy, a gradient each",  # (a new constant per gather)
]


def _loop(pick: str, entry: str) -> list[str]:
    """Three steps of a classifier whose step picks its batch as `pick` says; the codes found."""
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(ROWS, 6)).astype("float32")
    y_np = (x_np[:, 0] > 0).astype("int32")
    x, y = tf.constant(x_np), tf.constant(y_np)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def epoch():
        order = np.random.default_rng(2).permutation(ROWS)
        return [order[i : i + 128] for i in range(0, ROWS, 128)]

    def step(new_x, new_y):
        if pick.endswith("a gradient each"):
            source_x, source_y = (x_np, y_np) if "numpy" in pick else (x, y)
            for b in epoch():
                with tf.GradientTape() as tape:
                    logits = model(tf.gather(source_x, b), training=True)
                    loss = loss_fn(tf.gather(source_y, b), logits)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return
        drawn = np.random.default_rng(1).integers(0, ROWS, 32)  # once, at trace time
        if pick == "tf.random":
            drawn = tf.random.uniform([32], 0, ROWS, dtype=tf.int32)
        elif pick == "first rows":
            drawn = np.arange(32)
        elif pick == "sorted subset":
            drawn = np.unique(drawn)
        source_x, source_y = (x_np, y_np) if pick == "numpy indices into numpy" else (x, y)
        xb, yb = tf.gather(source_x, drawn), tf.gather(source_y, drawn)
        if pick == "rehearsal":  # (the memory replayed beside the batch passed in)
            xb, yb = tf.concat([new_x, xb], 0), tf.concat([new_y, yb], 0)
        if pick == "memory beside a tf.random batch":
            fresh = tf.random.uniform([32], 0, ROWS, dtype=tf.int32)
            xb, yb = (
                tf.concat([tf.gather(x, fresh), xb], 0),
                tf.concat([tf.gather(y, fresh), yb], 0),
            )
        with tf.GradientTape() as tape:
            if pick == "labels only":
                loss = loss_fn(yb, tf.gather(model(x, training=True), drawn))
            elif pick == "an epoch of fixed batches":
                losses = [
                    loss_fn(tf.gather(y, b), model(tf.gather(x, b), training=True)) for b in epoch()
                ]
                loss = tf.add_n(losses)
            else:
                loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    batch = (x[:16], y[:16])
    if entry == "decorator":
        guarded = tf.function(gradguard.guard(model, optimizer)(step))
        for _ in range(3):
            guarded(*batch)
        return guarded.report().codes()
    guard = Guard(options=Options.create(), raise_errors=False)
    traced = tf.function(step)
    with guard.instrument_process():
        for _ in range(3):
            traced(*batch)
        return [f.code for f in guard.read(final=True).findings]


@pytest.mark.parametrize("entry", ["decorator", "run"])
@pytest.mark.parametrize("pick", PICKS)
def test_indices_drawn_at_trace_time_are_found(pick, entry):
    codes = _loop(pick, entry)
    assert (CODE in codes) == pick.startswith("numpy indices"), codes
