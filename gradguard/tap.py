"""The tap on Keras layer calls: which layers and models a training forward pass called.

`gradguard run` and the guard do not know the model in advance; `instrument.tapping_layers`
hands every layer output computed under a recording `tf.GradientTape` to a `Tap`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from gradguard import baseline
from gradguard.activations import (
    Site,
    current_graph,
    flatten_outputs,
    layer_kind,
    make_site,
    visible_here,
    watched_layers,
)
from gradguard.ledger import key

__all__ = ["ACTING", "ACTING_SHARE", "Tap"]

ACTING, ACTING_SHARE = 10, 50  # updates after acting: at least 10, and one in 50

# Layers whose training mode `modes.inference_mode` judges.
_MODAL = (keras.layers.BatchNormalization, keras.layers.Dropout)
# Layers whose inputs are judged (`unadapted`, `fractionalids`).
_INPUTS_READ = (keras.layers.Normalization, keras.layers.Embedding)


def _one_example(value: Any) -> bool:
    """Whether `value` is a batch of one (an array or tensor whose first axis is 1)."""
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) > 0 and shape[0] == 1


def _spec(value: Any) -> Any:
    """A structure of inputs as `tf.TensorSpec`s (the batch axis left open)."""

    def one(t: Any) -> Any:
        if not tf.is_tensor(t) and not hasattr(t, "shape"):
            return t
        t = tf.convert_to_tensor(t)
        shape = [None, *t.shape[1:]] if t.shape.rank else t.shape
        return tf.TensorSpec(shape, t.dtype)

    return tf.nest.map_structure(one, value)


class Tap:
    """Records the layers called in training forward passes, and for ``gradguard run`` outputs.

    The model is not known in advance there: `instrument.tapping_layers` hands every Keras
    layer's output computed while a `tf.GradientTape` records (a training forward pass; not
    inference or evaluation) to `record`, which remembers the layers and models called and,
    with `outputs`, keeps the outputs of activation-bearing layers. Each gradient call closes a
    forward pass: an optimizer update then `take`s the outputs of its layers from the forward
    pass before it. The layer's own result is returned untouched.

    Which layers an optimizer's checks watch is decided at its first update (`sites`): those of
    the models whose trainable variables it updates (a GAN's generator optimizer does not watch
    the discriminator), and watched layers holding its variables (layers used without a model).
    """

    def __init__(self, outputs: bool = False) -> None:
        self.outputs = outputs
        # (layer, output) recorded since the latest gradient call, and those of the forward
        # pass(es) before it, which the next updates take from.
        self._recent: list[tuple[Any, tf.Tensor]] = []
        self._forward: list[tuple[Any, tf.Tensor]] = []
        self._models: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._layers: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._inputs: dict[int, Any] = {}  # per model, the spec of its first input seen
        self.last_model: Any = None  # a weak reference to the model called last
        self._outputs: dict[int, Any] = {}  # and of its output
        self._latest: dict[int, Any] = {}  # per model, Normalization or Embedding: latest input
        self._read: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        # The `training` values each normalization or dropout layer was called with (None: not
        # told, so inference; `modes.inference_mode`).
        self.told: dict[int, set[Any]] = {}
        # Per optimizer (by id), the layers its checks watch and their sites (`watch`).
        self._watched: dict[int, tuple[list[Any], list[Site]]] = {}
        # The layers whose `losses` (their penalties and their sublayers') were read.
        self.penalties_read: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._eager_loss: tuple[Any, Any] = (None, None)  # (a Keras loss, what it returned)
        # (model, what its call returned) since the latest gradient call, and before it.
        self._recent_calls: list[tuple[Any, Any]] = []
        self._forward_calls: list[tuple[Any, Any]] = []
        self.penalized: set[int] = set()  # weights a traced loss penalizes by hand (keys)
        # Models called on one example outside a tape since the latest eager update (an agent
        # acting), and per eager update's first variable, [updates after acting, updates].
        self._acted: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._acting: dict[int, list[int]] = {}

    def record(
        self,
        layer: Any,
        result: Any,
        args: Sequence[Any] = (),
        training: Any = None,
        under_tape: bool = True,
    ) -> None:
        """Notes one layer call (called by the process-wide layer patch).

        Outside a tape (`under_tape` False), only a Normalization or Embedding layer's input: a
        step that standardizes its batch before the forward pass (`unadapted`).
        """
        if isinstance(layer, _INPUTS_READ) and args:
            self._read[id(layer)] = layer
            self._latest[id(layer)] = args[0]
        if not under_tape:
            if isinstance(layer, keras.Model) and args and _one_example(args[0]):
                self._acted[id(layer)] = layer
            return
        self._layers[id(layer)] = layer
        if isinstance(layer, _MODAL):
            told = training if training is None or isinstance(training, bool) else "tensor"
            self.told.setdefault(id(layer), set()).add(told)
        if isinstance(layer, keras.Model):
            self._models[id(layer)] = layer
            self.last_model = weakref.ref(layer)
            self._recent_calls.append((layer, result))
            if args:
                self._latest[id(layer)] = args[0]
            if args and id(layer) not in self._inputs:
                self._inputs[id(layer)] = _spec(args[0])
                self._outputs[id(layer)] = _spec(result)
        elif self.outputs and tf.is_tensor(result) and layer_kind(layer) is not None:
            self._recent.append((layer, result))

    def eager_loss(self, loss_fn: Any, result: Any) -> None:
        """A Keras loss computed eagerly under a tape (`instrument`): the latest, and its loss."""
        self._eager_loss = (loss_fn, result)

    def eager_loss_notes(self, loss: Any, variables: Sequence[Any]) -> dict[str, Any]:
        """Notes on an eager update of `variables` and its `loss`, to add to its core's.

        ``"loss_floor": 0.0`` for a loss a Keras binary cross-entropy returned: with labels in
        [0, 1] it cannot go below 0 (`checks.loss`; `losslevel` reads it in-graph).
        ``"acting": True`` once `ACTING` updates or more, and one in `ACTING_SHARE` at least,
        came after a model holding `variables` was called on one example outside a tape: an
        agent acting between its updates (REINFORCE, DQN), which learns from data its own
        policy makes, so its loss's trend says nothing of learning (hunt29 f04).
        """
        loss_fn, result = self._eager_loss
        kind = baseline.kind_of(loss_fn) if loss is not None and result is loss else None
        notes: dict[str, Any] = {}
        if kind is not None and kind.name == baseline.BINARY_CE:
            notes["loss_floor"] = 0.0
        trained = {key(v) for v in variables}
        acted = any(trained & {key(v) for v in m.trainable_variables} for m in self._acted.values())
        self._acted.clear()
        counts = self._acting.setdefault(key(variables[0]) if variables else 0, [0, 0])
        counts[0], counts[1] = counts[0] + acted, counts[1] + 1
        if counts[0] >= ACTING and counts[0] * ACTING_SHARE >= counts[1]:
            notes["acting"] = True
        return notes

    def losses_read(self, layer: Any) -> None:
        """`layer.losses` was read into a loss (by the process-wide patch of the property)."""
        self.penalties_read[id(layer)] = layer

    def penalty_taken(self, weights: Any) -> None:
        """A Keras regularizer was called on `weights` into a loss: a penalty written by hand."""
        if isinstance(weights, (tf.Variable, keras.Variable)):
            self.penalized.add(key(weights))

    def layer_inputs(self) -> list[tuple[Any, Any]]:
        """Each Normalization or Embedding layer called so far, tape or not, with its input.

        Its latest input (judged by `unadapted`, `fractionalids`), None where not usable here
        (`latest_input`, graphs enclosing this one included: a loss scaler's conditional branch).
        """
        return [(n, self.latest_input(n, enclosing=True)) for n in self._read.values()]

    def layers(self) -> list[Any]:
        """The layers (and models) called in a training forward pass so far."""
        return list(self._layers.values())

    def models(self) -> list[tuple[Any, Any]]:
        """The models called in a training forward pass, each with its input's spec."""
        return [(m, self._inputs[k]) for k, m in self._models.items() if k in self._inputs]

    def latest_input(self, model: Any, enclosing: bool = False) -> Any:
        """`model`'s (or a Normalization layer's) input in its latest training forward pass.

        A Normalization's also when called before the tape (`record`).

        Only an input of the graph being traced (or an eager one, eagerly) is returned; with
        `enclosing`, also one of a graph enclosing it, which a conditional's branch (a loss
        scaler's update) reads by capturing it.
        """
        value = self._latest.get(id(model))
        if value is None:
            return None
        graph = current_graph()
        if enclosing:
            usable = all(visible_here(t) for t in tf.nest.flatten(value))
        else:
            usable = all(getattr(t, "graph", None) is graph for t in tf.nest.flatten(value))
        return value if usable else None

    def output_spec(self, model: Any) -> Any:
        """The spec of `model`'s output in a training forward pass, if it was called in one."""
        return self._outputs.get(id(model))

    def on_gradient(self) -> None:
        """A gradient call: what was recorded since the last one is the forward pass to take.

        A second gradient call on the same forward pass (a persistent tape) keeps it.
        """
        if self._recent:
            self._forward, self._recent = self._recent, []
        if self._recent_calls:
            self._forward_calls, self._recent_calls = self._recent_calls, []

    def model_returning(self, tensor: Any) -> Any:
        """The model whose call in the forward pass just closed returned `tensor`, or None."""
        calls = self._forward_calls
        return next((m for m, out in calls if any(t is tensor for t in tf.nest.flatten(out))), None)

    def watch(self, optimizer: Any, variables: Sequence[Any], model_name: str = "") -> list[Site]:
        """Fixes the layers `optimizer`'s update of `variables` watches (`sites`); their sites."""
        self._watched[id(optimizer)] = self.sites(variables, model_name)
        return self._watched[id(optimizer)][1]

    def hand_over(self, old: int, optimizer: Any) -> None:
        """`optimizer` watches what the optimizer of id `old` did (made anew for each update)."""
        if old in self._watched:
            self._watched[id(optimizer)] = self._watched.pop(old)

    def take_for(self, optimizer: Any) -> tuple[Any, ...]:
        """The outputs `optimizer`'s checks watch, from the forward pass before its update."""
        layers, sites = self._watched.get(id(optimizer), ([], []))
        return self.take(layers, sites) if sites else ()

    def sites(self, variables: Sequence[Any], model_name: str = "") -> tuple[list[Any], list[Site]]:
        """The layers an update of `variables` watches, in model order, and their sites."""
        trained = {id(v) for v in variables}

        def trains(layer: Any) -> bool:
            return any(id(v) in trained for v in getattr(layer, "trainable_variables", ()))

        candidates: dict[int, tuple[Any, str]] = {}
        for model in list(self._models.values()):
            if trains(model):
                for layer, kind in watched_layers(model):
                    candidates.setdefault(id(layer), (layer, kind))
        for layer, _ in self._forward:
            own = layer_kind(layer)
            if own is not None and trains(layer):
                candidates.setdefault(id(layer), (layer, own))
        layers, sites = [], []
        for layer, kind in candidates.values():
            seen = [t for each, t in self._forward if each is layer]
            site = make_site(layer, kind, seen, model_name)
            if site is not None:
                layers.append(layer)
                sites.append(site)
        return layers, sites

    def take(self, layers: Sequence[Any], sites: Sequence[Site]) -> tuple[Any, ...]:
        """The outputs of `layers` in the forward pass before the latest gradient call.

        Only outputs of the current graph (or eager ones, when eager) are usable; the taken
        layers' outputs are forgotten.
        """
        graph = current_graph()
        wanted = {id(layer) for layer in layers}
        outputs: dict[int, list[tf.Tensor]] = {id(layer): [] for layer in layers}
        for layer, t in self._forward:
            if id(layer) in wanted and getattr(t, "graph", None) is graph:
                outputs[id(layer)].append(t)
        self._forward = [(layer, t) for layer, t in self._forward if id(layer) not in wanted]
        return flatten_outputs([outputs[id(layer)] for layer in layers], sites)
