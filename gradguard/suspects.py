"""Settings in a model that keep it from learning, told from the model alone.

Not findings of their own: a dropout rate of 0.9 or an L2 factor of 0.1 can be chosen on
purpose. When the loss does not decrease (`loss-not-decreasing`) or units are dead from the
first step (`dead-units`), the message names them as the likely cause (`sentence`), where it
would otherwise leave the cause to other findings:

* a `Dropout` rate of 0.9 or more: ``rate`` is the fraction dropped (TensorFlow 1's
  ``keep_prob`` was the fraction kept), so ``Dropout(0.99)`` leaves 1% of the units;
* an L1/L2 weight penalty of 0.1 or more on a layer: the penalty outweighs the data's loss and
  drives the weights to 0;
* a layer with weights initialized to zeros that feeds another layer with weights: every unit
  of it gets the same gradient and stays identical to the others (the symmetry is never
  broken);
* a cross-entropy's ``label_smoothing`` of 0.5 or more: at 1.0 every target is the uniform
  distribution, and the best the model can do is the chance level;
* an adaptive optimizer's ``epsilon`` of 0.1 or more (Adam, RMSprop): it is added to the
  gradient's scale in each step's denominator, so the steps shrink toward plain SGD's at a
  tiny rate;
* an optimizer's ``weight_decay`` that shrinks every weight by 1% or more each step (Keras
  subtracts ``learning_rate * weight_decay`` times each weight, decoupled from the loss): the
  weights are pulled to 0 faster than the data moves them.
"""

from __future__ import annotations

from typing import Any

import keras

from gradguard import _compat, padding, rescaled, rownorm, sampleweights, updating

__all__ = ["INPUTS", "of_inputs", "of_model", "sentence"]

DROPOUT = 0.9  # rates at or above are named
PENALTY = 0.1  # L1/L2 factors at or above are named
SMOOTHING = 0.5  # label_smoothing at or above is named
DECAY = 0.01  # a weight decay shrinking the weights by this share each step (lr * decay) or more
# Notes of what the inputs show: sequences padded at their end that a recurrent layer reads
# unmasked (`padding`), 8-bit pixels never scaled (`rescaled`), and examples scaled to unit
# length one by one (`rownorm`).
INPUTS = ("trailing_padding", "raw_pixels", "rows_normalized")


def of_model(model: Any, loss: Any = None, optimizer: Any = None) -> list[str]:
    """Phrases naming the suspect settings of `model`, its `loss` and its `optimizer`."""
    config = loss.get_config() if isinstance(loss, keras.losses.Loss) else {}
    smoothing = config.get("label_smoothing") or 0.0
    found = []
    if smoothing >= SMOOTHING:
        found.append(
            f"the loss: label_smoothing={smoothing:g} moves every target {smoothing:.0%} of the "
            "way to the uniform distribution (at 1 the labels say nothing; 0.1 is usual)"
        )
    inner = _compat.inner_optimizer(optimizer) if optimizer else None
    epsilon = getattr(inner, "epsilon", None)
    if isinstance(epsilon, (int, float)) and epsilon >= updating.EPSILON:
        found.append(
            f"the optimizer: epsilon={epsilon:g} is added to the gradient's scale in each step's "
            "denominator, so steps shrink to about lr * gradient / epsilon (1e-7 is the default)"
        )
    decay, rate = getattr(inner, "weight_decay", None), updating.learning_rate_value(inner)
    if isinstance(decay, (int, float)) and rate and decay * rate >= DECAY:
        found.append(
            f"the optimizer: weight_decay={decay:g} at learning rate {rate:g} shrinks every "
            f"weight by {decay * rate:.1%} each step (learning rate * weight_decay), pulling the "
            "weights to 0 faster than the data moves them (AdamW's default, 0.004 at 1e-3, "
            "shrinks them by 4e-6 a step)"
        )
    return found + _of_layers(model)


def _of_layers(model: Any) -> list[str]:
    layers = [layer for layer in _compat.flatten_layers(model) if layer is not model]
    found: dict[str, list[str]] = {}  # what is wrong -> the layers it is wrong in
    for layer in layers:
        rate = getattr(layer, "rate", None)
        if isinstance(layer, keras.layers.Dropout) and rate is not None and rate >= DROPOUT:
            what = f"drop {rate:.0%} of their inputs (rate is the fraction dropped, not kept)"
            found.setdefault(what, []).append(layer.name)
        if isinstance(layer, (keras.layers.RandomFlip, keras.layers.RandomRotation)):
            what = (
                "flip or rotate the images at random: where the label depends on left and "
                "right or on orientation (arrows, handedness, 6 and 9), each flip turns an "
                "example into another class's; train once without them"
            )
            found.setdefault(what, []).append(layer.name)
        penalty = _penalty(getattr(layer, "kernel_regularizer", None))
        if penalty >= PENALTY:
            what = (
                f"have a weight penalty of {penalty:g}, which outweighs the data's loss "
                "(0.0001 to 0.01 is usual)"
            )
            found.setdefault(what, []).append(layer.name)
    weighted = [layer for layer in layers if getattr(layer, "kernel", None) is not None]
    for layer in weighted[:-1]:  # the last one's inputs differ, so its units do not stay equal
        if isinstance(getattr(layer, "kernel_initializer", None), keras.initializers.Zeros):
            what = (
                "start with all-zero weights, so their units get the same gradient and stay "
                "identical (use the default glorot_uniform, or he_normal)"
            )
            found.setdefault(what, []).append(layer.name)
    return [f"{', '.join(repr(n) for n in names)}: {what}" for what, names in found.items()]


def _penalty(regularizer: Any) -> float:
    """The largest L1/L2 factor of a Keras regularizer (0 for none or another kind)."""
    config = regularizer.get_config() if hasattr(regularizer, "get_config") else {}
    factors = [config.get(key) for key in ("l1", "l2")]
    return max((float(f) for f in factors if isinstance(f, (int, float))), default=0.0)


def of_inputs(model: Any, x: Any, sample_weight: Any = None) -> dict[str, Any]:
    """What one batch `x` of `model`'s inputs shows (eagerly), as notes.

    The suspects `INPUTS`, and ``"sample_weight_largest"`` (`sampleweights`), as `fit`'s
    batches tell them (`fit_batches.FitBatches.input_notes`).
    """
    return {
        "trailing_padding": padding.first_batch_suspect(model, x),
        "raw_pixels": rescaled.first_batch_suspect(model, x),
        "rows_normalized": rownorm.first_batch_suspect(x),
        "sample_weight_largest": sampleweights.largest(sample_weight),
    }


def sentence(notes: Any) -> str:
    """The settings `of_model` found (in a core's notes, ``"suspects"``), for a message.

    With them, what the inputs show (`INPUTS`, `of_inputs`), and gradients the data's scale
    made huge from the first step of a fresh run (``"data_scale"``,
    `checks.ExplodingGradient.notes`).
    """
    scale = None if notes.get("resumed") else notes.get("data_scale")
    inputs = [notes.get(key) for key in INPUTS]
    found = [*(notes.get("suspects") or []), *filter(None, [*inputs, scale])]
    return f" Suspects in this model and its data: {'; '.join(found)}." if found else ""
