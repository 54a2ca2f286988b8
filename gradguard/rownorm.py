"""Examples scaled to unit length one by one, where features were meant (a suspect).

``keras.utils.normalize(x, axis=1)`` (or ``tf.math.l2_normalize(x, axis=-1)``) divides each
example by its own L2 norm; standardizing the features is ``axis=0`` or a ``Normalization``
layer. Where an example's overall size carries its class (intensity, count, amount), that
information is gone and the model may stay at the chance level.

Not a finding of its own: L2-normalized embeddings or TF-IDF rows are fine inputs. When the loss
does not decrease, its message names it with the model's suspect settings
(`suspects.sentence`, ``notes["rows_normalized"]``). Told from 2-D float inputs of 4 features
or more: `TrainStep`'s first batch, or `fit`'s array under ``gradguard run`` (read on the host
as it starts, `fit_batches.FitBatches.given`). Not from `fit`'s batches in-graph: a fold in its
train step cost the MLP benchmark about 5% a step, too much for a suspect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["first_batch_suspect"]

MIN_FEATURES = 4  # fewer: a 2-D point or a pair of values on a circle may be meant
MIN_ROWS = 8  # examples to see before naming them
TOLERANCE = 1e-4  # a norm this close to 1 is one


def _counted(x: Any) -> tf.Tensor | None:
    """[examples, examples of L2 norm 1] in a batch of 2-D float inputs; None for others."""
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        x = tf.convert_to_tensor(x)
    if not isinstance(x, tf.Tensor) or not x.dtype.is_floating or len(x.shape) != 2:
        return None
    if x.shape[1] is None or x.shape[1] < MIN_FEATURES:
        return None
    norms = tf.norm(tf.cast(x, tf.float32), axis=1)
    unit = tf.reduce_sum(tf.cast(tf.abs(norms - 1.0) <= TOLERANCE, tf.float32))
    return tf.stack([tf.cast(tf.shape(x)[0], tf.float32), unit])


def _phrase(counted: np.ndarray) -> str | None:
    rows, unit = (float(v) for v in counted)
    if rows < MIN_ROWS or unit < rows:
        return None
    return (
        "the inputs: every example has an L2 norm of exactly 1, so each was scaled by its own "
        "length (keras.utils.normalize(x, axis=1), l2_normalize(x, axis=-1)) and its overall "
        "size, if that carried the class, is gone; to standardize each feature, use axis=0 or "
        "a Normalization layer"
    )


def first_batch_suspect(x: Any) -> str | None:
    """The phrase for one batch `x` of a model's inputs (eagerly), if its rows are unit length."""
    counted = _counted(x)
    return None if counted is None else _phrase(counted.numpy())
