"""Pixels divided by 255 twice: inputs 255 times smaller than meant (`inputs-rescaled-twice`).

8-bit pixels (0..255) are divided by 255 once, to lie in [0, 1]. Divided twice (once when the
arrays are loaded and again before training, or by a ``Rescaling(1./255)`` layer the model
starts with, as image tutorials add) they lie in [0, 1/255]: the first layer's weights must
grow 255 times to read them, and the model learns slowly or not at all (an MLP on 8x8 images:
test accuracy 0.49 after 3 epochs, against 1.00). Nothing fails: the values are finite, small
and plausible.

The fingerprint is exact: what the model's first computing layer reads (the inputs, times the
scales of the `Rescaling` layers the model starts with) is at most 1/255, every value is a
whole number over 255**2 (a pixel divided twice), the brightest is 16 over 255**2 or more, and
some value lies between 0 and it. No other data is: pixels divided once, 16-bit images divided
by 65535 and standardized features pass 1/255; a mask of 0 and 1/255 has two levels; values in
tiny physical units (1e-10) round to 0. Read from `SAMPLE` values strided over each batch's
first example, for float inputs of at least `MIN_VALUES` values an example (images, not a few
tabular features): on `TrainStep`'s first batch on the host, and under `fit` in-graph on every
step (a few ops on the sample), judged at reads.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding, number

__all__ = ["InputPixels", "first_batch_finding", "first_batch_suspect", "input_scale"]

SAMPLE = 4096  # values of a batch's first example read
MIN_VALUES = 64  # an example of fewer values (tabular features) is not read: not an image
# Pixels reach at least this (of 255) somewhere in an image: whole numbers up to it, and at
# most 255, are pixels never scaled; over 255 squared, pixels divided twice.
_BRIGHT = 16.0
# What `_read` gives: [largest, smallest, smallest above 0, largest distance from a whole number
# over 255**2, and from a whole number; smallest above -1, largest distance from a whole number
# of the values mapped back from [-1, 1] to pixels over 255**2]; the fold keeps the largest of
# those it takes the max of.
_READ_MAX = np.array([True, False, False, True, True, False, True])
_TWICE = 255.0**2
_TOLERANCE = 1e-3  # from a whole number of pixels over 255**2 (float32 round-off: ~1e-5)
# Mapped back from near -1, float32's round-off is about 4e-3 of a pixel over 255**2.
_SHIFTED_TOLERANCE = 2e-2
# Layers a model may start with that standardize its inputs, and that move or crop pixels
# without changing their scale.
_NORMALIZING = (
    keras.layers.Normalization,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.UnitNormalization,
)
_KEEP_SCALE = (
    keras.layers.InputLayer,
    keras.layers.RandomFlip,
    keras.layers.RandomRotation,
    keras.layers.RandomZoom,
    keras.layers.RandomTranslation,
    keras.layers.RandomCrop,
    keras.layers.Resizing,
    keras.layers.CenterCrop,
)


def input_scale(model: Any) -> tuple[float, str | None] | None:
    """The scale the `Rescaling` layers `model` starts with apply, and the last one's name.

    ``(1.0, None)`` for none; None for a model whose first layers cannot be told (a subclassed
    model, whose ``call`` may rescale), one that also shifts (an ``offset``: [-1, 1] inputs), or
    one that standardizes its inputs first (a Normalization layer), whatever their scale.
    """
    if not getattr(model, "inputs", None):  # a subclassed model has no symbolic inputs
        return None
    scale, name = 1.0, None
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Rescaling):
            if np.any(np.asarray(layer.offset) != 0.0) or np.ndim(layer.scale) > 0:
                return None
            scale, name = scale * float(layer.scale), layer.name
        elif isinstance(layer, _NORMALIZING):
            return None  # (the first computing layer reads them standardized)
        elif not isinstance(layer, _KEEP_SCALE):
            break
    return scale, name


def _read(x: Any, scale: float) -> tf.Tensor | None:
    """A sample's `_READ` values; None for inputs that are not images.

    The sample strides over the whole first example: the top rows of an image alone may be
    dark background (pixels of 0 and 1), the rest bright.
    """
    # Floats, or bytes (uint8 images); other integers are ids (tokens, categories).
    if isinstance(x, np.ndarray) and (np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8):
        x = tf.convert_to_tensor(x)
    if not isinstance(x, tf.Tensor) or x.shape.rank is None:
        return None
    if not (x.dtype.is_floating or x.dtype == tf.uint8):
        return None
    values = int(np.prod(x.shape[1:])) if x.shape[1:].is_fully_defined() else 0
    if x.shape.rank < 2 or values < MIN_VALUES:
        return None
    sample = tf.reshape(x[:1], [-1])[:: max(1, values // SAMPLE)][:SAMPLE]
    seen = tf.cast(sample, tf.float32) * scale
    # (pixels in [0, 1] given to a preprocess_input that maps 0..255 to [-1, 1]: x / 127.5 - 1)
    shifted = (seen + 1.0) * (127.5 * 255.0)
    distances = [tf.reduce_max(tf.abs(v - tf.round(v))) for v in (seen * _TWICE, seen, shifted)]
    positive = tf.reduce_min(tf.where(seen > 0.0, seen, np.inf))
    above = tf.reduce_min(tf.where(seen > -1.0, seen, np.inf))
    largest, smallest = tf.reduce_max(seen), tf.reduce_min(seen)
    return tf.stack([largest, smallest, positive, *distances[:2], above, distances[2]])


def _finding(read: np.ndarray, rescaling: str | None, step: int) -> Finding | None:
    shifted = _preprocessed_twice(read, step)
    if shifted is not None:
        return shifted
    largest, smallest, positive, distance, *_ = (float(v) for v in read)
    # Pixels up to 16 at least, and a level between 0 and the largest: not two levels of a
    # mask, nor tiny physical values that round to 0 over 65025.
    if not (_BRIGHT / _TWICE <= largest <= (1.0 + _TOLERANCE) / 255.0 and smallest >= 0.0):
        return None
    if distance > _TOLERANCE or positive >= largest * (1.0 - _TOLERANCE):
        return None
    where = (
        f"divided by 255 before the model and again by its Rescaling layer {rescaling!r}"
        if rescaling
        else "divided by 255 twice before the model"
    )
    fix = f"drop the layer {rescaling!r} or the division before it" if rescaling else "divide once"
    message = (
        f"The model's inputs lie in [0, {number(largest)}] and are whole numbers over 65025 "
        f"(255 squared): 8-bit pixels {where}, so the first layer reads values 255 times "
        "smaller than meant and its weights must grow 255 times to learn from them (slowly, "
        f"if at all). Scale pixels to [0, 1] once: {fix}."
    )
    details = {"largest": largest, "rescaling_layer": rescaling}
    return Finding("inputs-rescaled-twice", message, step, details=details)


def _preprocessed_twice(read: np.ndarray, step: int) -> Finding | None:
    """Pixels scaled to [0, 1], then by a preprocess_input for 0..255 (x / 127.5 - 1)."""
    largest, smallest, *_, above, distance = (float(v) for v in read)
    # Pixels up to 16 at least above -1, and a level between -1 and the largest.
    top = -1.0 + 2.0 / 255.0
    bright = -1.0 + 2.0 * _BRIGHT / _TWICE
    if not (bright <= largest <= top + _TOLERANCE and smallest >= -1.0 - _TOLERANCE):
        return None
    if distance > _SHIFTED_TOLERANCE or above >= largest - 1e-6:
        return None
    message = (
        f"The model's inputs lie in [{number(smallest)}, {number(largest)}], within 2/255 of "
        "-1: 8-bit pixels scaled to [0, 1] and then by a preprocess_input that expects 0..255 "
        "(x / 127.5 - 1, as MobileNet's, Inception's and ResNetV2's do), so every image is "
        "nearly the same flat -1 and the model cannot tell them apart. Give preprocess_input "
        "the pixels as loaded (0..255), or skip it after scaling to [0, 1]."
    )
    details = {"largest": largest, "smallest": smallest, "preprocess_input": True}
    return Finding("inputs-rescaled-twice", message, step, details=details)


def _raw_phrase(read: np.ndarray) -> str | None:
    """The suspect phrase for 8-bit pixels never scaled (whole numbers in [0, 255]), or zeroed."""
    largest, smallest, _, _, distance, *_ = (float(v) for v in read)
    if largest == smallest == 0.0:
        return (
            "the inputs: every value read was exactly 0 (pixels cast to an integer type after "
            "scaling to [0, 1] all truncate to 0); check the preprocessing"
        )
    if not (_BRIGHT <= largest <= 255.0 and smallest >= 0.0 and distance <= _TOLERANCE):
        return None
    return (
        f"the inputs: 8-bit pixels never scaled (whole numbers in [0, {largest:.0f}]), which "
        "make the first layer's outputs and gradients hundreds of times too large; divide "
        "them by 255 (or start the model with keras.layers.Rescaling(1.0 / 255))"
    )


def first_batch_finding(model: Any, x: Any, step: int) -> Finding | None:
    """`inputs-rescaled-twice` from one batch `x` of `model`'s inputs (eagerly), or None."""
    scale = input_scale(model)
    read = _read(x, scale[0]) if scale is not None else None
    return None if scale is None or read is None else _finding(read.numpy(), scale[1], step)


def first_batch_suspect(model: Any, x: Any) -> str | None:
    """The raw-pixels suspect phrase from one batch `x` of `model`'s inputs (eagerly), or None."""
    scale = input_scale(model)
    read = _read(x, scale[0]) if scale is not None else None
    return None if read is None else _raw_phrase(read.numpy())


class InputPixels:
    """`fit`'s batches of a model's inputs, folded in-graph; judged on the host.

    Args:
      scale: `input_scale` of the model.
    """

    def __init__(self, scale: tuple[float, str | None]):
        self.scale, self.rescaling = scale
        self._state: tf.Variable | None = None  # `_read`'s values, folded over the batches

    @classmethod
    def of(cls, model: Any) -> InputPixels | None:
        """One for `model`, if its first layers can be told (`input_scale`)."""
        scale = input_scale(model)
        return None if scale is None else cls(scale)

    def observe(self, x: Any) -> None:
        """In-graph: folds a batch's sample (inputs that are not images: nothing)."""
        read = _read(x, self.scale)
        if read is None:
            return
        if self._state is None:
            with _compat.outside_trace():
                self._state = replicas.state_variable(
                    np.where(_READ_MAX, -np.inf, np.inf).astype(np.float32),
                    name="gradguard_input_pixels",
                )
        seen = self._state.read_value()
        self._state.assign(tf.where(_READ_MAX, tf.maximum(seen, read), tf.minimum(seen, read)))

    def finding(self, step: int) -> Finding | None:
        """`inputs-rescaled-twice` if every batch read was pixels divided twice (a host read)."""
        return None if self._state is None else _finding(self._state.numpy(), self.rescaling, step)

    def suspect(self) -> str | None:
        """The raw-pixels suspect phrase if every batch read was unscaled pixels (a host read)."""
        return None if self._state is None else _raw_phrase(self._state.numpy())
