"""What `TrainStep` learns from its traced step, judged on the host after the call.

Each made once: the variables the trace gave no gradient (`none-gradient`, with where each one's
chain to the loss broke), labels broadcast against the predictions (`loss-broadcast`) and an
output layer that cannot make what the loss reads (`from-logits-mismatch`), and the first
batch's pixels divided by 255 twice (`inputs-rescaled-twice`) or labels that are one of its
inputs or padded elsewhere (`tokenlabels`) or an embedding that masks a real token 0
(`maskzero`) or hidden Dense layers with no activation (`linearstack`) or Lambda layers made in
a loop that all read its last value (`latebound`), and in the model a
reshape where a transpose was meant (`reshapes`) or an attention mask that keeps the padding
(`attnmask`); and, from the labels of batches spread
over the run, the chance level the loss checks compare with and labels out of the output's
or the loss's range (`labels-out-of-range`); and from every batch's classes,
counted in-graph, batches of one class at a time (`batches-one-class`), and from the inputs of
Normalization layers never adapted, whether they are raw (`normalization-not-adapted`); and
the model's frozen layers, once, whether they were never trained nor loaded (`frozen-untrained`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import (
    attnmask,
    chance,
    diagnose,
    frozen,
    label_range,
    latebound,
    linearstack,
    lookahead,
    losses,
    maskzero,
    output_layer,
    rescaled,
    reshapes,
    softmaxone,
    tokenlabels,
    unadapted,
)
from gradguard import batch as batch_lib
from gradguard.core import StepCore
from gradguard.findings import Finding

__all__ = ["TraceFindings"]


class TraceFindings:
    """The findings and notes of `TrainStep`'s traces.

    Args:
      model: The step's model.
      loss_fn: The step's loss function.
      forward_loss: ``forward_loss(x, y, sample_weight)``, the step's loss (replayed to find
        where a chain to the loss broke).
    """

    def __init__(self, model: Any, loss_fn: Any, forward_loss: Callable[..., Any]):
        self._model = model
        self.loss_fn = loss_fn
        self._forward_loss = forward_loss
        self._diagnosed: set[int] = set()
        # (y_true spec, y_pred spec) pairs seen while tracing, judged on the host after the call.
        self.loss_shapes = losses.LossShapes()
        self._labels = chance.LabelSample()  # the first batch's and each read's
        # A call had sample weights or labels of several outputs: no one label distribution to
        # compare the loss with (the weights and the sum over outputs change the level).
        self._no_chance_level = False
        self._label_range: label_range.LabelRange | None = None  # when the labels are bounded
        self._counts: chance.LabelCounts | None = None  # a cross-entropy's classes, in-graph
        # The inputs of Normalization layers never adapted, folded in-graph (`unadapted`).
        self.input_scales = unadapted.InputScales()
        self.frozen = frozen.FrozenUntrained()
        # Found while tracing, reported after the call (with its step); the judges of the
        # model's graph still to find anything (each finds once).
        self._from_trace: list[Finding] = []
        self._model_judges = [
            reshapes.graph_reshape_transposes,
            attnmask.graph_attention_keeps_padding,
            softmaxone.graph_softmax_over_one,
        ]

    def record(self, y: Any, y_pred: Any) -> None:
        """In-graph, each trace: the labels' and predictions' shapes; the batch's classes.

        And the model's graph, until each judge found what it looks for: a reshape where a
        transpose was meant (`reshapes`), an attention mask that keeps the padding (`attnmask`).
        """
        self.loss_shapes.record(y, y_pred)
        outputs = [t for t in tf.nest.flatten(y_pred) if isinstance(t, tf.Tensor)]
        if self._model_judges and tf.inside_function() and outputs:
            ops = set().union(*map(diagnose.ancestors, outputs))
            found = {judge: judge(ops, -1) for judge in self._model_judges}
            self._from_trace += [finding for finding in found.values() if finding is not None]
            self._model_judges = [judge for judge, finding in found.items() if finding is None]
        shape = getattr(y_pred, "shape", None)
        width = shape[-1] if shape is not None and shape.rank else None
        if self._counts is None and width and chance.LabelCounts.applies(self.loss_fn, width):
            self._counts = chance.LabelCounts(self.loss_fn, width)
        if self._counts is not None:
            self._counts.observe(y)

    def no_gradient(
        self,
        core: StepCore,
        indices: Iterable[int],
        batch: tuple[Any, ...],
        step: int,
        causes: Any = None,
    ) -> Finding:
        """The `none-gradient` finding for `indices`: where each one's chain to the loss broke."""
        if causes is None:
            causes = diagnose.chain_breaks(self._forward_loss, batch, core.variables)
        return diagnose.none_gradient_finding(core.layout.names, indices, causes, step)

    def after_call(
        self, core: StepCore, batch: tuple[Any, ...], step: int, read: bool
    ) -> list[Finding]:
        """The findings new since the last call; the chance level, on the first call and reads.

        Args:
          core: The step's core (its trace's facts, and its notes for the judgment).
          batch: The call's ``(x, y, sample_weight)``.
          step: The call's step.
          read: Whether the host reads after this call: its labels join the chance level's.
        """
        found: list[Finding | None] = [dataclasses.replace(f, step=step) for f in self._from_trace]
        self._from_trace = []
        new_none = core.none_indices - self._diagnosed
        if new_none:
            self._diagnosed |= new_none
            found.append(self.no_gradient(core, core.none_indices, batch, step))
        if self.loss_shapes.traced and "chance_loss" not in core.notes:  # the first call
            found.append(output_layer.mismatch(self._model, self.loss_fn, step))
            found.append(rescaled.first_batch_finding(self._model, batch[0], step))
            found += tokenlabels.findings(self._model, batch[0], batch[1], step)
            found += lookahead.findings(self._model, batch[0], batch[1], step)
            found += maskzero.findings(self._model, batch[0], step)
            found.append(linearstack.collapsed(self._model, step))
            found.append(latebound.finding(self._model, step))
            allowed = label_range.bounds(self._model, self.loss_fn)
            self._label_range = label_range.LabelRange(allowed) if allowed else None
        if self.loss_shapes.traced and (read or "chance_loss" not in core.notes):
            labels = batch_lib.labels(batch[1])
            if self._label_range is not None:
                self._label_range.add(labels)
                found.append(self._label_range.judge(step))
            core.notes["weighted"] = core.notes.get("weighted") or batch[2] is not None
            weights = batch_lib.labels(batch[2])
            if weights is not None and weights.dtype != object and np.any(weights < 0):
                # Weights of both signs (an actor-critic's advantages): a policy-gradient
                # surrogate, whose value rises as often as it falls while the policy learns.
                core.ignore("loss-not-decreasing")
            self._no_chance_level |= core.notes["weighted"] or labels is None
            self._labels.add(labels)
            width = self.loss_shapes.output_width
            level = None if self._no_chance_level else self._labels.chance_loss(self.loss_fn, width)
            one_value = self._labels.one_value()
            if one_value is not None and not output_layer.learns_a_constant(self._model):
                # One class by construction (BPR): no level of 0, classes taken as balanced.
                one_value = None
                level = level if level is None else chance.chance_loss(self.loss_fn, width)
            core.notes["chance_loss"] = level
            core.notes["labels_one_value"] = one_value
        found += self.read_findings(step) if read else []
        if self.loss_shapes.pending:  # (a new trace: the output layer is read once for it)
            softmax = output_layer.softmax_width(self._model) is not None
            found += self.loss_shapes.judge(self.loss_fn, step, softmax)
        return [finding for finding in found if finding is not None]

    def read_findings(self, step: int, final: bool = False) -> list[Finding]:
        """What the batches and the model show so far (a host read; `final`: the run is over).

        `batches-one-class` if they came one class at a time; `normalization-not-adapted` if a
        Normalization layer never adapted read them raw; `frozen-untrained` (judged once).
        """
        found = self.frozen.judge([self._model], step, final) + self.input_scales.findings(step)
        one_class = self._counts.batches_one_class(step) if self._counts is not None else None
        return found + ([] if one_class is None else [one_class])
