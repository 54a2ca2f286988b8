"""The model's output layer against its loss: mismatches told from the model alone.

A cross-entropy reads the outputs as probabilities (``from_logits=False``) or as logits; the
layer that makes them says which they are before any data is seen:

* a softmax over one unit is 1 whatever the input: the model cannot learn (a sigmoid can);
* a plain `Dense` (no activation) that is trained makes logits, which a loss on probabilities
  clips or normalizes into nonsense, and so does a `Dot` of two embeddings (a matrix
  factorization's score);
* a `Softmax` over an axis other than the last makes values that do not sum to 1 over the
  classes the loss reads (a sequence's time steps instead).

`TrainStep` and `fit` (through the guard) report these as `from-logits-mismatch` once, when
the step is traced. Only layers whose output is plain to read are judged: a `Sequential` or
functional model with one output, whose last layer is a `Softmax`, or a layer with weights and
Keras' own ``activation`` (a custom layer, `tf.nn.softmax` passed as a function, a subclassed
model: nothing is claimed).

The same layer tells whether labels all of one class are a bug (`learns_a_constant`): its own
bias fits them (or per-id biases summed into the score), or the output is built so that they
carry the signal (BPR's 1s).
"""

from __future__ import annotations

from typing import Any

import keras

from gradguard import baseline
from gradguard.findings import Finding

__all__ = ["learns_a_constant", "mismatch", "of", "softmax_width"]

_CROSS_ENTROPIES = (baseline.SPARSE_CE, baseline.CE, baseline.BINARY_CE)
_CLASSES = (baseline.SPARSE_CE, baseline.CE)  # read the last axis as the classes


def of(model: Any) -> tuple[Any, tuple[Any, ...]] | None:
    """The layer that makes `model`'s one output and the output's shape, when plain to read."""
    outputs = getattr(model, "outputs", None) or []
    history = getattr(outputs[0], "_keras_history", None) if len(outputs) == 1 else None
    if history is None or len(outputs[0].shape) < 2:
        return None
    return history[0], tuple(outputs[0].shape)


def softmax_width(model: Any) -> tuple[str, int] | None:
    """The output layer's name and width when it is a softmax over more than one class."""
    output = of(model)
    if output is None:
        return None
    layer, shape = output
    last = _softmax_axis(layer, len(shape)) == len(shape) - 1
    width = shape[-1]
    return (layer.name, width) if last and isinstance(width, int) and width > 1 else None


def _softmax_axis(layer: Any, rank: int) -> int | None:
    """The axis (from 0) `layer` applies a softmax over, in an output of `rank`; else None."""
    axis = layer.axis if isinstance(layer, keras.layers.Softmax) else None
    if axis is None and getattr(layer, "activation", None) is keras.activations.softmax:
        axis = -1
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    return axis % rank if isinstance(axis, int) else None


def mismatch(model: Any, loss_fn: Any, step: int) -> Finding | None:
    """`from-logits-mismatch` when `model`'s output layer cannot make what `loss_fn` reads."""
    output = of(model)
    if output is None:
        return None
    layer, shape = output
    kind = baseline.kind_of(loss_fn)
    activation = getattr(layer, "activation", None)
    axis = _softmax_axis(layer, len(shape))
    if axis is not None:
        if shape[axis] == 1:
            over = "its one unit" if axis == len(shape) - 1 else f"axis {axis}, of size 1"
            why = (
                f"{layer.name!r} applies softmax over {over}: "
                "its output is 1 whatever the input, so the model cannot learn; for two "
                "classes use one unit with a sigmoid (or two units with a softmax)."
            )
            return _finding(why, layer, step)
        classes = kind.axis % len(shape) if kind is not None else len(shape) - 1
        if kind is not None and kind.name in _CLASSES and axis != classes:
            where = "the last axis" if classes == len(shape) - 1 else f"axis {classes}"
            why = (
                f"{layer.name!r} applies softmax over axis {axis} (size {shape[axis]}) of an "
                f"output of shape {shape}, but the loss reads {where} as the classes: "
                f"its values do not sum to 1 over them; use Softmax(axis={classes - len(shape)}) "
                "or the loss's axis=."
            )
            return _finding(why, layer, step)
        return None
    # (A frozen linear layer after a softmax mixes probabilities by a fixed matrix: a noise
    # adaptation or class-aggregation layer, its outputs still probabilities.)
    logits = activation is keras.activations.linear and getattr(layer, "kernel", None) is not None
    logits = logits and bool(layer.trainable)
    if kind is None or kind.name not in _CROSS_ENTROPIES or kind.from_logits:
        return None
    if logits or _scores(layer):
        made = "has no activation" if logits else "is a dot product of two vectors (a score)"
        why = (
            f"{layer.name!r} {made}, so the model outputs logits, but the loss "
            f"({kind.name}) reads probabilities (from_logits=False): it clips or normalizes "
            "the logits and the model cannot learn; pass from_logits=True to the loss, or "
            "give the last layer a softmax (a sigmoid for one unit)."
        )
        return _finding(why, layer, step)
    return None


def _scores(layer: Any) -> bool:
    """Whether `layer` is a `Dot` of vectors not made by a softmax or sigmoid (unbounded).

    A matrix factorization's or a two-tower model's score; the dot product of two probability
    vectors is one itself.
    """
    if not isinstance(layer, keras.layers.Dot):
        return False
    nodes = getattr(layer, "_inbound_nodes", None) or []
    inputs = nodes[0].input_tensors if nodes else []
    makers = [_maker(t) for t in inputs]
    bounded = (keras.activations.softmax, keras.activations.sigmoid)
    return bool(makers) and not any(
        isinstance(m, keras.layers.Softmax) or getattr(m, "activation", None) in bounded
        for m in makers
    )


def _maker(tensor: Any) -> Any:
    """The layer that made `tensor` (a functional model's), or None."""
    return getattr(getattr(tensor, "_keras_history", None), "operation", None)


def _inputs_of(tensor: Any) -> list[Any]:
    """The tensors the layer that made `tensor` was called on for it (its call's node)."""
    history = getattr(tensor, "_keras_history", None)
    nodes = getattr(_maker(tensor), "_inbound_nodes", None) or []
    if history is None or history.node_index >= len(nodes):
        return []
    return list(nodes[history.node_index].input_tensors)


def _has_bias(layer: Any) -> bool:
    bias = getattr(layer, "bias", None)
    return bias is not None and bool(layer.trainable) and bool(getattr(bias, "trainable", True))


def _per_id_bias(tensor: Any) -> bool:
    """Whether `tensor` is an `Embedding`'s one trainable value per id, reshaped or not."""
    while isinstance(_maker(tensor), (keras.layers.Flatten, keras.layers.Reshape)):
        tensor = (_inputs_of(tensor) or [None])[0]
    layer = _maker(tensor)
    return isinstance(layer, keras.layers.Embedding) and layer.output_dim == 1 and layer.trainable


def learns_a_constant(model: Any) -> bool:
    """Whether `model`'s output has a trainable bias, which fits labels of one class alone.

    Labels all one class are a bug where a bias can fit them (a threshold on the wrong scale:
    the loss falls to 0, nothing learned): the output layer's own bias, or, under an
    `Activation`, per-id biases summed into the score (a matrix factorization with user and
    item biases trained on positive interactions only, no negatives). By construction where
    the output is a difference or product of scores (BPR, a sampled softmax's positive at index
    0) or comes through a frozen layer (a GAN's generator trained through its discriminator).
    Unknown: False.
    """
    if of(model) is None:
        return False
    tensor = model.outputs[0]
    while isinstance(_maker(tensor), keras.layers.Activation):
        tensor = (_inputs_of(tensor) or [None])[0]
    layer = _maker(tensor)
    if isinstance(layer, keras.layers.Add):
        return any(_per_id_bias(each) for each in _inputs_of(tensor))
    return layer is not None and _has_bias(layer)


def _finding(why: str, layer: Any, step: int) -> Finding:
    message = f"The model's output does not match its loss: {why}"
    return Finding("from-logits-mismatch", message, step, details={"output_layer": layer.name})
