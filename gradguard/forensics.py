"""What the guard works out about the models the user's code trains, from what it saw them do.

The guard sees the models only through the layer calls made under a tape (`tap.Tap`) and the
variables the tapes and optimizers touch (`ledger.Ledger`). `Forensics` tells each step core:

* which model it trains, and that model's chance-level loss (`chance`);
* what Keras' `fit` showed: its batches, warnings, a resumed schedule it restarts (`resumedfit`),
  new data (`newdata`) and, once it returned, its held-out data, its data's end, its BatchNorm;
* where a NaN began: the first unhealthy step's model input, kept in-graph, replayed once
  (`origin`) at the next host read.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import tensorflow as tf

from gradguard import (
    _compat,
    augmentation,
    bnstats,
    chance,
    contrastive,
    fit_batches,
    fitend,
    frozen,
    frozenbatch,
    ignoredweights,
    latebound,
    linearstack,
    lossgraph,
    losslevel,
    monitors,
    newdata,
    output_layer,
    output_order,
    posterior,
    ranout,
    rawlabels,
    regularizers,
    replicas,
    resumedfit,
    suspects,
    switchedoff,
)
from gradguard import activations as activations_lib
from gradguard import origin as origin_lib
from gradguard import stats as stats_lib
from gradguard.core import StepCore
from gradguard.findings import Finding
from gradguard.ledger import Ledger, key
from gradguard.tap import Tap

__all__ = ["Forensics"]

# What a traced loss reads, folded in-graph: raw labels, a VAE's KL, a contrastive loss's pairs.
_WATCHERS = (rawlabels.RawLabels, posterior.PosteriorKL, contrastive.ContrastivePairs)


class Forensics:
    """The models' side of a guard's diagnosis.

    Args:
      tap: The layer calls the guard saw.
      ledger: What the user's code did with the variables.
      names: Display names of variables.
    """

    def __init__(self, tap: Tap, ledger: Ledger, names: Callable[[list[Any]], list[str]]):
        self._tap, self._ledger, self._names = tap, ledger, names
        # Per core, its first unhealthy batch's keeper and model; the step a replay explained.
        self._keepers: dict[int, tuple[origin_lib.Keeper, Any]] = {}
        self._replayed: dict[int, int] = {}  # (`origin`)
        # A Keras train step's batch (`fit_batch`); each model's compiled loss (replays use it).
        self.batch: tuple[Any, ...] | None = None
        self._fit_model: Any = None
        self._losses: dict[int, Callable[[Any, Any], Any]] = {}
        self._xla_inputs: dict[int, tf.TensorSpec] = {}  # (XLA: per core, its input's spec)
        self._latest_call: list[Any] = []  # (XLA: the host's latest call's arguments)
        self._graph_chance: dict[int, float | None] = {}  # per core (losslevel.graph_chance)
        self._fit = fit_batches.FitBatches()  # (each model's batches in Keras' own step)
        self._fit_length = ranout.FitLength()  # (under gradguard run: fit's data ran out)
        self._resumed = resumedfit.ResumedFits()  # (and restarts a resumed schedule)
        self._new_data = newdata.FitData()  # (the arrays each model's last fit was given)
        self._stale = bnstats.StaleStatistics()  # (and its models' BatchNormalization)
        self._traced_counts: dict[int, chance.LabelCounts] = {}  # (a traced loss's classes)
        self._watchers = [watcher() for watcher in _WATCHERS]  # (each traced loss's values)
        self._frozen = frozen.FrozenUntrained()  # (frozen layers never trained nor loaded)
        self._linear_judged: set[int] = set()  # (models judged once: `linearstack`, `latebound`)
        self.trained_graphs: weakref.WeakSet[Any] = weakref.WeakSet()  # (traced updates')

    def fit_batch(self, model: Any, data: Any) -> None:
        """A Keras train step's batch (`fit`, `train_on_batch`): kept with its model's loss."""
        self.batch = keras.utils.unpack_x_y_sample_weight(data)
        self._fit_model = model
        if getattr(model, "compiled", False) and id(model) not in self._losses:
            self._losses[id(model)] = functools.partial(model.compute_loss, None)  # (x=None)
        if fit_batches.keras_own_step(model):
            self._fit.observe(model, *self.batch)

    def fit_given(
        self, cores: Mapping[int, StepCore], model: Any, arguments: Mapping[str, Any], step: int
    ) -> list[Finding]:
        """`fit` starts on `arguments`: its arrays (`FitBatches.given`, `newdata`), maps."""
        self._fit_length.start(model)
        self._new_data.given(model, arguments, cores)
        found = self._fit.given(model, arguments, step) + augmentation.findings(arguments, step)
        return found + self._resumed.given(model, arguments)

    def fit_ended(
        self, cores: Mapping[int, StepCore], model: Any, fit: Any, step: int
    ) -> list[Finding]:
        """`fit` of `model` returned (`fit`: ``(arguments, history)``), judged at `step`.

        Its held-out data and weights by its optimizer's core (`fitend`); its data ran out?
        """
        (arguments, history), found = fit, []
        core = cores.get(id(_compat.inner_optimizer(model.optimizer)))
        if core is not None:
            self.note_chance(core)
            found += fitend.judge(model, core, history, arguments)
        found += monitors.findings(model, arguments.get("callbacks"), history, step)
        self._stale.fit_ended(model, arguments, history, step)
        return found + self._fit_length.judge(model, arguments, step)

    def on_warning(self, message: str) -> None:
        """A Python warning raised while the guard listens (Keras' own diagnoses)."""
        self._fit_length.on_warning(message)
        if "does not have any trainable weights" in message and self._tap.last_model:
            model = self._tap.last_model()
            if model is not None and not model.trainable_variables and model.weights:
                self._ledger.frozen_models.setdefault(id(model), model)

    def heldout_given(self, model: Any, call: str, x: Any, step: int) -> list[Finding]:
        """`call` gives `model` the inputs `x`: scaled as `fit`'s were, not reshuffled?"""
        return self._fit.heldout_given(model, call, x, step)

    def in_keras_step(self) -> bool:
        """Whether the graph being traced is a Keras train step's (`fit_batch` saw its batch)."""
        return self.batch is not None and activations_lib.in_current_graph(self.batch)

    def label_findings(self, step: int) -> list[Finding]:
        """What the labels showed (`fit_batches`, one class), and the traced losses' watchers."""
        found = [counts.batches_one_class(step) for counts in self._traced_counts.values()]
        found += self._fit.findings(step) + [f for w in self._watchers for f in w.findings(step)]
        return [finding for finding in found if finding is not None]

    def traced_findings(self, traced: list[tuple[tf.Tensor, int]]) -> list[Finding]:
        """Traced losses with their steps: a batch drawn once (`frozenbatch`), weights unread."""
        found = [frozenbatch.graph_batch_frozen(*t) for t in traced]
        return [f for f in found if f is not None] + ignoredweights.sample_weights_ignored(traced)

    def model_findings(self, cores: Iterable[StepCore], step: int, final: bool) -> list[Finding]:
        """Models `cores` train: `frozen`; `linearstack`, `latebound` once; `regularizers` last.

        `final` (the run ended) judges the BatchNormalization of the models `fit` trained too.
        """
        models = [model for model in map(self.model_of, cores) if model is not None]
        found = self._frozen.judge(models, step, final) + (self._stale.judge() if final else [])
        judges = (linearstack.collapsed, latebound.finding)  # (once: a model's layers, losses)
        once = [j(m, step) for m in models if id(m) not in self._linear_judged for j in judges]
        self._linear_judged.update(map(id, models))
        once.append(regularizers.ignored(self._tap, self._ledger, step) if final else None)
        return found + [finding for finding in once if finding is not None]

    def compiled_loss(self, step: int) -> list[Finding | None]:
        """A Keras train step being traced: its compiled loss against its model and labels.

        Losses listed, or weights keyed off, for dict outputs: where Keras matches them
        (`output_order`). One loss for one output: traced alone on the shapes of the batch's
        labels and of the model's output (`lossgraph.loss_broadcast`), and held against the
        model's output layer (`output_layer.mismatch`). Only Keras' own train step: an
        override may hand the loss something else (a softmax of the output, reshaped labels).
        A hand-written loop's traced loss is read instead (`lossgraph.graph_loss_broadcast`).
        """
        model = self._fit_model
        if self.batch is None or not self.in_keras_step() or not fit_batches.keras_own_step(model):
            return []
        loss, y = getattr(model, "loss", None), self.batch[1]
        outputs = tf.nest.flatten(self._tap.output_spec(model))
        if loss is None or isinstance(loss, (list, tuple, dict)) or len(outputs) != 1:
            return output_order.findings(model, step)
        found = [output_layer.mismatch(model, loss, step)]
        compiled = _compat.compiled_loss_object(loss)
        if compiled is not None and tf.is_tensor(y) and y.shape.rank is not None:
            labels = tf.TensorSpec([None, *y.shape[1:]], y.dtype)
            softmax = output_layer.softmax_width(model) is not None
            found.append(lossgraph.loss_broadcast(compiled, labels, outputs[0], step, softmax))
        return found

    def model_of(self, core: StepCore) -> Any:
        """The model `core` trains (None if none is known).

        The model compiled with its optimizer (`fit`), else the largest one called under a
        tape whose variables it trains: a model pretrained on some of them is not it.
        """
        trained = {key(v) for v in core.variables}
        models = [
            m for m, _ in self._tap.models() if trained & {key(v) for v in m.trainable_variables}
        ]
        mine = _compat.inner_optimizer(core.optimizer)
        own = [m for m in models if _compat.inner_optimizer(getattr(m, "optimizer", None)) is mine]
        return max(own or models, key=lambda m: len(m.trainable_variables)) if models else None

    def before_read(self, core: StepCore) -> None:
        """Tells `core` what its judgments need to know about its model, and replays a NaN."""
        self.note_chance(core)
        self.note_suspects(core)
        self.note_switched_off(core)
        self.replay(core)

    def note_chance(self, core: StepCore) -> None:
        """Tells the core the chance-level loss of the model it trains, when it can be told.

        From a compiled model's loss (`fit`) and its output's width, else from the graph of a
        hand-written step's loss (`traced_loss`); with the labels' class frequencies counted
        in-graph (`chance.LabelCounts`), ln C until enough are. None for several outputs, for
        weighted examples (`sample_weight`, `class_weight`), and for labels whose own entropy
        is near their mean's (soft labels, smoothed ones, a teacher's at a high temperature).
        """
        model = self.model_of(core)
        counts = self._fit.label_counts.get(id(model))
        traced = self._traced_counts.get(id(core))
        if ("chance_loss" in core.notes and counts is None and traced is None) or model is None:
            return
        spec = tf.nest.flatten(self._tap.output_spec(model))
        width = spec[0].shape[-1] if spec and getattr(spec[0], "shape", None) else None
        weighted = core.notes["weighted"] = self.batch is not None and self.batch[2] is not None
        loss = getattr(model, "loss", None) if len(spec) == 1 and not weighted else None
        balanced = chance.chance_loss(loss, width)
        if balanced is None:
            balanced = self._graph_chance.get(id(core))
        # The class frequencies counted in-graph (`fit`'s labels, or those of the traced
        # cross-entropy whose level the graph shows) replace balanced classes where the training
        # loss is the labels' alone (`chance.comparable`). Validation keeps `balanced`.
        counted = counts if loss is not None else (traced if balanced is not None else None)
        level = balanced
        if counted is not None:
            counted_level, one_value = counted.chance_loss(), counted.one_value()
            if one_value is not None and not output_layer.learns_a_constant(model):
                # One class by construction (BPR, a sampled softmax's positive at index 0): no
                # level of 0, classes taken as balanced (scores that rank nothing).
                counted_level, one_value = balanced, None
            if counted_level is None:  # soft labels about as uncertain as their mean: no level
                level = balanced = None
            elif chance.comparable(model):
                level = counted_level
            core.notes["labels_one_value"] = one_value
        core.notes["chance_loss"], core.notes["chance_loss_balanced"] = level, balanced

    def traced_loss(self, core: StepCore, loss: Any) -> None:
        """A step's traced loss: its raw labels; a hand-written step's levels (`losslevel`).

        Its chance level and floor, whether it sums the batch and whether its trend means
        anything (not a surrogate's nor a moving target's). Keras' own step: `note_chance`.
        """
        if loss is None or not hasattr(loss, "graph"):  # (eager: no graph; its Keras loss)
            core.notes.update(self._tap.eager_loss_notes(loss, core.variables))
            return
        self.trained_graphs.add(loss.graph)
        for watcher in self._watchers:  # (each trace: one-hot encodings, hinges, a KL...)
            watcher.watch(id(core), loss)
        if self.in_keras_step():
            return
        self._tap.penalized |= regularizers.penalized(loss, core.variables)
        if id(core) not in self._graph_chance:
            if losslevel.graph_trend_uninformative(loss, core.variables):
                core.ignore("loss-not-decreasing")
            self._graph_chance[id(core)] = losslevel.graph_chance(loss)
            core.notes["loss_floor"] = losslevel.graph_loss_floor(loss)
            core.notes["loss_summed"] = losslevel.graph_batch_sum(loss)
            # Its labels' classes, counted in-graph: imbalanced classes' level is their entropy.
            # (Not in a replica: a fold in the first replica's trace alone desynchronizes them.)
            labels = losslevel.cross_entropy_labels(loss)
            if labels is not None and replicas.summing_replica_context() is None:
                counts = self._traced_counts[id(core)] = chance.LabelCounts(*labels[1:])
                counts.observe(labels[0])

    def note_suspects(self, core: StepCore) -> None:
        """Tells the core what in its model (`suspects`) or data (`fit_batches`) stops learning."""
        model = self.model_of(core)
        if "suspects" not in core.notes and model is not None:
            loss = getattr(model, "loss", None)
            core.notes["suspects"] = suspects.of_model(model, loss, core.optimizer)
        core.notes.update(self._fit.input_notes(model))

    def note_switched_off(self, core: StepCore) -> None:
        """Tells the core which of its variables feed only outputs switched off (`switchedoff`)."""
        model = self.model_of(core)
        if "switched_off" not in core.notes and model is not None:
            off = switchedoff.variables(model, core.variables)
            if off is not None:
                core.notes["switched_off"] = off

    def watch(self, core: StepCore) -> None:
        """Gets ready to keep `core`'s first unhealthy batch (call when the core is made)."""
        self._keepers[id(core)] = (origin_lib.Keeper(), None)

    def keep_batch(
        self, core: StepCore, healthy: tf.Tensor, step: tf.Tensor, exposed: bool = True
    ) -> None:
        """Keeps the batch of `core`'s first unhealthy step, for a replay (in-graph).

        Called before the step's update is applied (`StepCore.update`'s `before_apply`). The
        model's input (through the layer tap), or the whole batch when a Keras train step got
        it; and when a non-finite update reaches the weights (`exposed`: `gradguard run`
        applies it, as it never changes what the script computes), the model's trainable
        weights, since a replay needs them as they were. Behind `skip_nonfinite()` they stay
        as they were, and keeping them would cost every step a wait for the health flag (not
        under XLA, which cannot keep a batch of any shape).
        """
        model = self.model_of(core)
        batch = self._batch_of(model)
        if batch is None:
            return
        if _compat.in_xla_context():
            self._xla_inputs[id(core)] = tf.TensorSpec.from_tensor(batch[0])
            return
        keeper = self._keepers.get(id(core))
        if keeper is None:  # made with the core, before any trace where it can
            return
        self._keepers[id(core)] = keeper = (keeper[0], model)
        weights = getattr(model, "trainable_weights", []) if model is not None and exposed else []
        keeper[0].keep(healthy, step, batch, weights)

    def batch_faults(self, core: StepCore, healthy: tf.Tensor) -> Any:
        """`stats.batch_faults` of the step's batch, as far as it is seen (in-graph; any mode).

        The whole batch when a Keras train step got it, else the model's input; 0 when none is
        seen. Under XLA, where no batch can be kept for a replay, this still tells a NaN in the
        data from one the model made.
        """
        batch = self._batch_of(self.model_of(core))
        return 0 if batch is None else stats_lib.batch_faults(healthy, *batch)

    def _batch_of(self, model: Any) -> tuple[Any, ...] | None:
        """The step's whole batch (`fit_batch`), or `model`'s latest input, traced in this graph."""
        if self.batch is not None and activations_lib.in_current_graph(self.batch):
            return self.batch
        if model is not None and self._tap.latest_input(model) is not None:
            return (self._tap.latest_input(model),)
        return None

    def offer(self, *call: Any) -> None:
        """The arguments of a call the host just made (a train step), kept only under XLA.

        A reference to the latest call's, once an XLA step was traced: under XLA the first
        unhealthy batch cannot be kept in-graph, so the latest one is replayed.
        """
        if self._xla_inputs:
            self._latest_call = tf.nest.flatten(call)

    def replay(self, core: StepCore) -> None:
        """Replays the kept batch of `core`'s first unhealthy step through its model, once."""
        if id(core) in self._xla_inputs:
            self._replay_latest(core)
            return
        keeper = self._keepers.get(id(core))
        kept = keeper[0].unreplayed() if keeper is not None else None
        if keeper is None or kept is None:
            return
        (step, batch, weights), loss = kept, self._losses.get(id(keeper[1]))
        if len(batch) == 3 and loss is not None:  # the whole batch, and the loss
            x, y, sample_weight = batch
            found = origin_lib.trace(keeper[1], x, y, sample_weight, loss=loss, weights=weights)
            core.notes["non_finite_origin"] = origin_lib.note(found, step)
            return
        found = origin_lib.trace(keeper[1], batch[0], weights=weights)
        core.notes["non_finite_origin"] = origin_lib.note(found, step, forward_only=True)

    def _replay_latest(self, core: StepCore) -> None:
        """Under XLA: replays the latest call's model input, once, if that step was unhealthy."""
        model = self.model_of(core)
        spec = self._xla_inputs[id(core)]
        if id(core) in self._replayed or model is None or core.latest_healthy():
            return
        matches = [
            leaf
            for leaf in self._latest_call
            if hasattr(leaf, "shape")
            and hasattr(leaf, "dtype")
            and tf.as_dtype(leaf.dtype) == spec.dtype
            and spec.shape.is_compatible_with(leaf.shape)
        ]
        step = self._replayed[id(core)] = core.steps - 1
        if not matches:  # no call seen from the host (`gradguard run`), or not this model's
            where = "under XLA the step's batch cannot be kept for a replay; run the step "
            where += "without jit_compile=True to have the layer named"
            notes = {"step": step, "replayed": False, "latest": True, "where": where}
            core.notes["non_finite_origin"] = notes
            return
        found = origin_lib.trace(model, matches[0])
        core.notes["non_finite_origin"] = origin_lib.note(
            found, step, xla=True, forward_only=True, latest=True
        )
