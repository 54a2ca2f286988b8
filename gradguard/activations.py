"""Which layer outputs the activation checks watch, and how they are captured in the forward pass.

The training forward pass already computes every activation; gradguard records the outputs of
the activation-bearing layers while the model runs (no second forward pass) and leaves the
outputs and the gradients untouched: the layer's own `call` runs and its result is returned as
is. The captured tensors reach the checks in `checks.Stats.activations`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from gradguard import _compat

__all__ = [
    "Recorder",
    "Site",
    "current_graph",
    "capture",
    "enclosing_graphs",
    "find_sites",
    "flatten_outputs",
    "in_current_graph",
    "visible_here",
    "layer_kind",
    "make_site",
    "watched_layers",
]

# Activation functions by family: "relu" units can die (output exactly 0 for every input, so no
# gradient reaches them); "sigmoid" and "tanh" units can saturate (derivative near 0).
_KINDS = {"relu": "relu", "relu6": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
# Layers whose output is their activation's (by class or base class name). Not RNNs: an LSTM's
# `activation` is applied inside its cell, and its output is not that activation's.
_WATCHED = {
    "Dense",
    "EinsumDense",
    "BaseConv",
    "BaseConvTranspose",
    "BaseSeparableConv",
    "BaseDepthwiseConv",
    "Activation",
}


@dataclasses.dataclass(frozen=True)
class Site:
    """One watched layer output.

    Attributes:
      name: The layer's path without the model's name (``dense``), as in variable names.
      kind: ``"relu"`` (can die), ``"sigmoid"`` or ``"tanh"`` (can saturate).
      units: Size of the unit axis (units, channels): each unit is judged over every other axis.
      axis: The unit axis: -1 (the last), or 1 for a ``channels_first`` convolution.
    """

    name: str
    kind: str
    units: int
    axis: int = -1


def layer_kind(layer: Any) -> str | None:
    """The activation family of a layer's output, or None when it is not watched."""
    if not getattr(layer, "trainable", True):
        return None  # a frozen base: nothing the user can fix by training
    # keras.layers.ReLU: only the plain one (a leaky or thresholded ReLU does not die the same way).
    if type(layer).__name__ == "ReLU":
        plain = not getattr(layer, "negative_slope", 0.0) and not getattr(layer, "threshold", 0.0)
        return "relu" if plain else None
    if not any(cls.__name__ in _WATCHED for cls in type(layer).__mro__):
        return None
    activation = getattr(layer, "activation", None)
    if not callable(activation):
        return None
    return _KINDS.get(getattr(activation, "__name__", ""))


def _unit_axis(layer: Any) -> int:
    """Where a layer's output holds its units: axis 1 for a ``channels_first`` convolution.

    Element-wise layers (`Activation`, `ReLU`) do not know the layout of their input and are
    judged on the last axis.
    """
    return 1 if getattr(layer, "data_format", None) == "channels_first" else -1


def _size(output: Any, axis: int) -> int | None:
    """The size of `output` along `axis`, if its shape says."""
    shape = output.shape
    if shape.rank is None or shape.rank < 2 or shape[axis] is None:
        return None
    return int(shape[axis])


def _name(layer: Any, model_name: str) -> str:
    name = getattr(layer, "path", None) or layer.name
    prefix = f"{model_name}/" if model_name else None
    if prefix and name.startswith(prefix):
        name = name[len(prefix) :]
    return str(name)


def watched_layers(model: Any) -> list[tuple[Any, str]]:
    """The model's layers whose outputs are watched, with their kind, in model order."""
    found = []
    for layer in _compat.flatten_layers(model):
        kind = layer_kind(layer)
        if kind is not None:
            found.append((layer, kind))
    return found


def _recording(original: Any, out: list[tf.Tensor]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if tf.is_tensor(result):
            out.append(result)
        return result

    return call


@contextlib.contextmanager
def capture(
    layers: Sequence[Any], outputs: list[list[tf.Tensor]] | None = None
) -> Iterator[list[list[tf.Tensor]]]:
    """Records the outputs of `layers` while the block runs; restores them afterwards.

    Args:
      layers: The layers to record.
      outputs: Lists to append to, one per layer (default: new ones).

    Yields:
      One list per layer, filled with the layer's outputs (a layer called twice, e.g. shared,
      gets two).
    """
    if outputs is None:
        outputs = [[] for _ in layers]
    patched: list[tuple[Any, Any]] = []
    try:
        for layer, out in zip(layers, outputs):
            own = vars(layer).get("call")  # an instance's own `call`, if it has one
            layer.call = _recording(layer.call, out)
            patched.append((layer, own))
        yield outputs
    finally:
        for layer, own in reversed(patched):
            if own is not None:
                layer.call = own
            else:
                with contextlib.suppress(AttributeError):
                    del layer.call  # back to the class's method


def find_sites(model: Any, x: Any, call: Any, model_name: str = "") -> tuple[list[Any], list[Site]]:
    """Finds the watched layers and their unit counts by running `call(x)` once (host, eagerly).

    Args:
      model: The Keras model.
      x: A batch of inputs, for the one probing forward pass.
      call: Runs the model on `x` (inference mode).
      model_name: Dropped from the front of layer paths.

    Returns:
      The watched layers that produced an output, and a `Site` for each.
    """
    candidates = watched_layers(model)
    if not candidates:
        return [], []
    layers = [layer for layer, _ in candidates]
    with capture(layers) as outputs:
        call(x)
    kept, sites = [], []
    for (layer, kind), out in zip(candidates, outputs):
        axis = _unit_axis(layer)
        units = _size(out[0], axis) if out else None
        if units is None:
            continue
        kept.append(layer)
        sites.append(Site(_name(layer, model_name), kind, units, axis))
    return kept, sites


def flatten_outputs(
    outputs: Sequence[Sequence[tf.Tensor]], sites: Sequence[Site]
) -> tuple[Any, ...]:
    """One ``[examples, units]`` tensor per site (every other axis folded into examples).

    A site whose layer produced no output in this pass (a branch not taken) gets None: it is
    not observed on this step, which is not the same as observed silent.
    """
    result: list[Any] = []
    for out, site in zip(outputs, sites):
        rows = [tf.reshape(_units_last(t, site.axis), [-1, site.units]) for t in out]
        if not rows:
            result.append(None)
        else:
            result.append(rows[0] if len(rows) == 1 else tf.concat(rows, axis=0))
    return tuple(result)


def _units_last(output: tf.Tensor, axis: int) -> tf.Tensor:
    """`output` with its unit axis moved last (a copy only for ``channels_first``)."""
    rank = output.shape.rank
    if axis == -1 or rank is None or axis == rank - 1:
        return output
    return tf.transpose(output, [i for i in range(rank) if i != axis] + [axis])


def _units(layer: Any, outputs: Sequence[tf.Tensor]) -> int | None:
    """Size of a layer output's unit axis: from an output seen, else from the layer."""
    axis = _unit_axis(layer)
    if outputs:
        size = _size(outputs[0], axis)
        if size is not None:
            return size
    for attribute in ("units", "filters"):
        size = getattr(layer, attribute, None)
        if isinstance(size, int):
            return size
    try:
        size = layer.output.shape[axis]  # a built Sequential or functional model's layer
    except (AttributeError, ValueError, IndexError, TypeError):
        return None
    return int(size) if size is not None else None


def make_site(layer: Any, kind: str, outputs: Sequence[tf.Tensor], model_name: str) -> Site | None:
    """The site of `layer`'s `outputs`, or None when its units cannot be told."""
    units = _units(layer, outputs)
    if units is None:
        return None
    return Site(_name(layer, model_name), kind, units, _unit_axis(layer))


class Recorder:
    """Captures a model's watched layer outputs for code gradguard did not write (the guard).

    The sites are fixed by the first outputs seen (`fix_sites`, before the checks are built);
    afterwards each `take` hands over the outputs captured in the current graph since the last
    `take`, one per site.

    Args:
      model: The model whose layers are watched.
      model_name: Dropped from the front of layer paths.
    """

    def __init__(self, model: Any, model_name: str = ""):
        self._model_name = model_name
        self._candidates = watched_layers(model)
        self._layers = [layer for layer, _ in self._candidates]
        self.sites: list[Site] | None = None
        # Filled by every recorded pass, emptied by `take`.
        self._outputs: list[list[tf.Tensor]] = [[] for _ in self._layers]

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Captures the watched layers' outputs while the block runs (one guarded call).

        What an earlier block captured but no update took is dropped: the checks see the
        forward passes of the call that updates, and nothing piles up between updates.
        """
        for out in self._outputs:
            out.clear()
        with capture(self._layers, self._outputs):
            yield

    def fix_sites(self) -> list[Site]:
        """Decides the sites (once) and returns them.

        From the outputs captured so far, or, before any forward pass (the guard builds its
        core early for an optimizer that is already built), from the layers' own sizes.
        """
        if self.sites is None:
            kept = []
            for (layer, kind), out in zip(self._candidates, self._outputs):
                site = make_site(layer, kind, out, self._model_name)
                if site is not None:
                    kept.append((layer, site, out))
            self.sites = [site for _, site, _ in kept]
            self._layers = [layer for layer, _, _ in kept]
            self._outputs = [out for _, _, out in kept]
        return self.sites

    def take(self) -> tuple[Any, ...]:
        """The outputs captured in this graph since the last take, per site; then forgets them."""
        if not self.sites:
            return ()
        graph = current_graph()
        # Outputs of another graph (a forward pass traced apart from the update) cannot be used.
        usable = [[t for t in out if getattr(t, "graph", None) is graph] for out in self._outputs]
        for out in self._outputs:
            out.clear()
        return flatten_outputs(usable, self.sites)


def current_graph() -> Any:
    """The graph being traced, or None when running eagerly."""
    return tf.compat.v1.get_default_graph() if tf.inside_function() else None


def enclosing_graphs(graph: Any) -> list[Any]:
    """`graph` and the graphs it is nested in, innermost first (a branch's, its function's...)."""
    graphs = []
    while graph is not None:
        graphs.append(graph)
        graph = getattr(graph, "outer_graph", None)
    return graphs


def visible_here(tensor: Any) -> bool:
    """Whether `tensor` can be used in the graph being traced (or eagerly) here.

    It can if it is of that graph or of one enclosing it: a conditional's branch (a loss
    scaler's update) captures it.
    """
    if not tf.is_tensor(tensor):
        return True
    graph = current_graph()
    if graph is None:
        return getattr(tensor, "graph", None) is None  # eager: an eager tensor
    own = getattr(tensor, "graph", None)  # (None: an eager tensor, which no graph reads)
    return any(own is each for each in enclosing_graphs(graph))


def in_current_graph(structure: Any) -> bool:
    """Whether every tensor of `structure` belongs to the graph being traced (or is eager)."""
    graph = current_graph()
    return all(
        getattr(t, "graph", None) is graph for t in tf.nest.flatten(structure) if tf.is_tensor(t)
    )
