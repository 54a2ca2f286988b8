"""Box labels a loss reads as corners that are not (`corners`, `labels-out-of-range`).

An IoU loss written for corners ``(x1, y1, x2, y2)`` given center-and-size or corner-and-size
boxes is found, through `fit` and a guarded loop, with the lengths clipped (GIoU, as TF Addons
writes it) or multiplied into areas; corner labels, labels converted inside the loss, a few
degenerate boxes, a model's own features and a single difference of two label columns (no box)
stay silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradguard
from gradguard.guarding import Guard
from gradguard.options import Options

N = 256


def _boxes(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and boxes in `layout`: "corners", "center-size" or "corner-size" (normalized)."""
    rng = np.random.default_rng(3)
    size = rng.uniform(0.1, 0.4, size=(N, 2))
    center = rng.uniform(size / 2, 1 - size / 2)
    x = np.concatenate([center, size, rng.normal(size=(N, 4))], axis=1).astype("float32")
    if layout == "center-size":
        boxes = np.concatenate([center, size], axis=1)
    elif layout == "corner-size":
        boxes = np.concatenate([center - size / 2, size], axis=1)
    else:
        boxes = np.concatenate([center - size / 2, center + size / 2], axis=1)
        if layout == "corners, a few degenerate":
            boxes[::20, 2] = boxes[::20, 0] - 0.01  # (5%: an annotation's slip)
    return x, boxes.astype("float32")


def _clipped_giou(y_true, y_pred):
    """1 - GIoU of corner boxes, the lengths clipped at 0 (TF Addons' GIoULoss), unstacked."""
    zero = tf.zeros((), y_true.dtype)
    t_x1, t_y1, t_x2, t_y2 = tf.unstack(y_true, 4, axis=-1)
    p_x1, p_y1, p_x2, p_y2 = tf.unstack(y_pred, 4, axis=-1)
    area_t = tf.maximum(zero, t_x2 - t_x1) * tf.maximum(zero, t_y2 - t_y1)
    area_p = tf.maximum(zero, p_x2 - p_x1) * tf.maximum(zero, p_y2 - p_y1)
    iw = tf.maximum(zero, tf.minimum(t_x2, p_x2) - tf.maximum(t_x1, p_x1))
    ih = tf.maximum(zero, tf.minimum(t_y2, p_y2) - tf.maximum(t_y1, p_y1))
    inter = iw * ih
    union = area_t + area_p - inter
    enclose = (tf.maximum(t_x2, p_x2) - tf.minimum(t_x1, p_x1)) * (
        tf.maximum(t_y2, p_y2) - tf.minimum(t_y1, p_y1)
    )
    giou = tf.math.divide_no_nan(inter, union) - tf.math.divide_no_nan(enclose - union, enclose)
    return 1.0 - giou


def _sliced_iou(y_true, y_pred):
    """1 - IoU of corner boxes, the columns sliced and the areas unclipped products."""
    area_t = (y_true[:, 2] - y_true[:, 0]) * (y_true[:, 3] - y_true[:, 1])
    area_p = (y_pred[:, 2] - y_pred[:, 0]) * (y_pred[:, 3] - y_pred[:, 1])
    iw = tf.nn.relu(tf.minimum(y_true[:, 2], y_pred[:, 2]) - tf.maximum(y_true[:, 0], y_pred[:, 0]))
    ih = tf.nn.relu(tf.minimum(y_true[:, 3], y_pred[:, 3]) - tf.maximum(y_true[:, 1], y_pred[:, 1]))
    inter = iw * ih
    return 1.0 - tf.math.divide_no_nan(inter, area_t + area_p - inter)


def _converted_giou(y_true, y_pred):
    """Center-and-size labels converted to corners inside the loss (the fix)."""
    cx, cy, w, h = tf.unstack(y_true, 4, axis=-1)
    corners = tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    return _clipped_giou(corners, y_pred)


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(4, "sigmoid")]
    )


def _codes_of_fit(loss_fn, x, y) -> list:
    model = _model()
    model.compile(keras.optimizers.Adam(1e-2), loss_fn)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return guard.read(final=True).findings


def _codes_of_loop(loss_fn, x, y) -> list:
    model, optimizer = _model(), keras.optimizers.Adam(1e-2)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, N, 32):
        step(x[i : i + 32], y[i : i + 32])
    return step.report().findings


@pytest.mark.parametrize(
    "entry, loss_fn, layout, found",
    [
        ("fit", _clipped_giou, "center-size", True),
        ("fit", _clipped_giou, "corners", False),
        ("loop", _sliced_iou, "corner-size", True),
        ("loop", _sliced_iou, "corners", False),
        ("loop", _clipped_giou, "corners, a few degenerate", False),
        ("loop", _converted_giou, "center-size", False),
    ],
)
def test_boxes_a_loss_reads_as_corners_that_are_not_are_found(entry, loss_fn, layout, found):
    x, y = _boxes(layout)
    run = _codes_of_fit if entry == "fit" else _codes_of_loop
    inverted = [
        f for f in run(loss_fn, x, y) if "inverted_share" in (f.details or {})
    ]  # (the labels-out-of-range of inverted boxes, not another's)
    assert bool(inverted) == found, inverted
    if found:
        finding = inverted[0]
        assert finding.code == "labels-out-of-range"
        assert "label[..., 2] - label[..., 0]" in finding.message, finding.message
        assert "center and size (cx, cy, w, h)" in finding.message
        assert finding.details["boxes"] == N
        assert finding.details["inverted_share"] > 0.5


def test_lengths_the_model_computes_from_its_inputs_or_one_label_difference_are_no_boxes():
    """A feature ``relu(x2 - x1)`` inside the model, and a single label difference (a ranking
    pair's margin), are not box labels: silent however often they are negative."""
    x, y = _boxes("center-size")
    inputs = keras.Input((8,))
    widths = keras.layers.Lambda(
        lambda t: tf.stack([tf.nn.relu(t[:, 2] - t[:, 0]), tf.nn.relu(t[:, 3] - t[:, 1])], -1)
    )(inputs)
    keras.utils.set_random_seed(3)
    hidden = keras.layers.Dense(16, "relu")(keras.layers.Concatenate()([inputs, widths]))
    model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    @gradguard.guard(model, optimizer)
    def step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            margin = tf.nn.relu(y[:, 2] - y[:, 0])  # (one difference: no box)
            loss = tf.reduce_mean(tf.square(pred - y)) + tf.reduce_mean(margin * pred[:, 0])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for i in range(0, N, 32):
        step(x[i : i + 32], y[i : i + 32])
    found = [f for f in step.report().findings if "inverted_share" in (f.details or {})]
    assert found == [], found
