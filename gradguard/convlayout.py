"""Images laid out channels-first read by a channels-last convolution (`channels-first-input`).

PyTorch's loaders, and code ported from them, keep images as ``(batch, channels, height,
width)``; Keras' convolutions read ``(batch, height, width, channels)`` unless built with
``data_format="channels_first"``. ``keras.Input((3, 32, 32))`` before a ``Conv2D`` runs without
an error: the convolution slides over a 3-row "image" whose 32 "channels" are its rows, so a
pattern moving down the picture becomes another set of channels and the kernels learn nothing
that carries over (hunt29 b03: held-out accuracy 0.40 against 1.00 transposed). MNIST made
``(batch, 1, 28, 28)`` is the same.

Read from a traced loss's graph (`lossgraph.graph_findings`): a channels-last ``Conv2D`` or
``Conv3D`` reading the step's data (no learned layer before it) whose first spatial axis is 1 to
4 long (an image's channels) and whose last two axes are equal and 8 or more (a square image's
height and width, the last taken for its channels). A ``Conv1D``'s own expansion to two
dimensions is left out, as is a convolution built channels-first.
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf

from gradguard.diagnose import DATA_SOURCES, ancestors, shape_text
from gradguard.findings import Finding

__all__ = ["graph_channels_first"]

_CONVOLUTIONS = {"Conv2D": b"NHWC", "Conv3D": b"NDHWC"}  # (the channels-last layouts)
_LEARNED = {"Conv2D", "Conv3D", "MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
MAX_CHANNELS = 4  # grey, RGB, RGBA (and two-channel images)
MIN_SIDE = 8  # a square image at least this wide


def graph_channels_first(ops: Iterable[tf.Operation], step: int) -> Finding | None:
    """`channels-first-input` for the first convolution among `ops` reading such images."""
    for op in sorted((op for op in ops if op.type in _CONVOLUTIONS), key=lambda op: op.name):
        shape = op.inputs[0].shape
        if op.get_attr("data_format") != _CONVOLUTIONS[op.type] or not _channels_first(shape):
            continue
        source = op.inputs[0].op
        if source.type == "ExpandDims" and source.name.startswith(op.name + "/"):
            continue  # (a Conv1D, made two-dimensional by TensorFlow's conv1d)
        before = ancestors(op.inputs[0])
        if any(parent.type in _LEARNED for parent in before):
            continue  # (a feature map: its layout is the model's own)
        if not any(parent.type in DATA_SOURCES for parent in before):
            continue
        return _finding(op, step)
    return None


def _channels_first(shape: tf.TensorShape) -> bool:
    """Whether `shape` looks like ``(batch, channels, ..., side, side)``: see the module."""
    if shape.rank not in (4, 5) or None in shape.as_list()[1:]:
        return False
    dims = shape.as_list()
    return dims[1] <= MAX_CHANNELS and dims[-1] == dims[-2] >= MIN_SIDE


def _finding(op: tf.Operation, step: int) -> Finding:
    dims = op.inputs[0].shape.as_list()
    channels, spatial = dims[1], dims[2:]
    layer = op.name.rpartition("/")[0] or op.name
    last = [0, *range(2, len(dims)), 1]
    axes = "height, width" if len(dims) == 4 else "depth, height, width"
    message = (
        f"The convolution {layer} reads its input {shape_text(op.inputs[0].shape)} as "
        f"channels-last ({axes}, channels), but it looks channels-first: {channels} "
        f"channel(s), then a {'x'.join(map(str, spatial))} image. The kernels slide over the "
        f"channels and rows and take the image's {spatial[-1]} columns for channels, so what "
        "they learn does not carry across the picture. Transpose the images to channels-last "
        f"(np.transpose(x, {last}), tf.transpose(x, {last})) and declare the input as "
        f"{tuple(spatial + [channels])}, or build the convolutions with "
        'data_format="channels_first".'
    )
    details = {"op": op.name, "input": dims, "transpose": last}
    return Finding("channels-first-input", message, step, details=details)
