"""What the batches of a Keras train step (`fit`) show, folded in-graph per model.

Keras' own train step hands its batch to the guard while it is traced (`Forensics.fit_batch`):
its labels and inputs are then read in-graph on every step, and judged on the host at reads.
Per model, what applies to it, decided at its first batch:

* its labels' range, where its loss and output layer bound them (`label_range`);
* their classes for a cross-entropy (`chance.LabelCounts`: the chance level, and batches of
  one class at a time);
* its inputs' padding, if a recurrent layer reads them unmasked (`padding`, a suspect);
* an input position equal to every label, one an example (`labelcolumn`: the target leaked);
* targets listed for dict outputs, which Keras matches in sorted-key order (`output_order`);
* pixels divided by 255 twice (`rescaled`), or never (a suspect);
* its sample weights' largest (`sampleweights`: far below 1, SGD's steps shrink).

Under ``gradguard run``, which wraps `fit`, its arrays are also read on the host as it starts
(`given`): examples of unit length (`rownorm`, a suspect too costly to fold per step), token
labels that are one of the inputs or padded elsewhere (`tokenlabels`), an embedding masking a
real token 0 (`maskzero`), a data set zipping inputs and labels shuffled apart (`unpaired`),
rows shuffled under a stateful recurrent layer (`statefulshuffle`), inputs and labels flipped or
cropped by random draws of their own (`augmentpair`), class-balancing sample weights left in
another order than the labels (`weightorder`), and the largest sample or class weight, whose
in-graph fold is then left out; and the inputs' scale, against that of the inputs later given
to `evaluate` and `predict` (`heldout_scale`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradguard import (
    _compat,
    augmentpair,
    batch,
    chance,
    frozenlate,
    label_range,
    labelcolumn,
    lookahead,
    lookupvocab,
    maskzero,
    normpooled,
    output_order,
    padding,
    rescaled,
    reshuffledsplit,
    rownorm,
    sampleweights,
    statefulshuffle,
    tokenlabels,
    unpaired,
    weightorder,
)
from gradguard.findings import Finding
from gradguard.heldout_scale import HeldoutScales

__all__ = ["FitBatches", "keras_own_step"]

_KERAS = ("train_step", "compute_loss")  # Keras' own: an override may change the labels


def keras_own_step(model: Any) -> bool:
    """Whether `model` trains by Keras' own train_step and compute_loss (see `_KERAS`)."""
    return all(getattr(type(model), f, 0) is getattr(_compat.KERAS_TRAINER, f) for f in _KERAS)


def _token_findings(model: Any, x: Any, y: Any, step: int) -> list[Finding]:
    """`maskzero`, `lookupvocab`, `normpooled`; `tokenlabels`, `lookahead` for Keras' own step."""
    found = maskzero.findings(model, x, step) + lookupvocab.findings(model, x, step)
    found += normpooled.findings(model, x, step)
    if keras_own_step(model):
        found += tokenlabels.findings(model, x, y, step) + lookahead.findings(model, x, y, step)
    return found


class FitBatches:
    """The in-graph readers of each model's batches, and what they find."""

    def __init__(self) -> None:
        self.label_counts: dict[int, chance.LabelCounts] = {}  # (also the chance level's)
        self._label_ranges: dict[int, label_range.LabelRange] = {}
        self._paddings: dict[int, padding.TrailingPadding | None] = {}
        self._pixels: dict[int, rescaled.InputPixels | None] = {}
        self._columns: dict[int, labelcolumn.LabelColumn] = {}
        self._listed: dict[int, output_order.ListedTargets | None] = {}
        self._weights: dict[int, sampleweights.LargestWeight] = {}
        self._given: dict[int, dict[str, Any]] = {}  # notes from fit's arrays (`given`)
        self._traced: dict[int, list[Any]] = {}  # the variables each train step updates
        self.heldout = HeldoutScales()  # (fit's inputs, against evaluate's and predict's)

    def heldout_given(self, model: Any, call: str, x: Any, step: int) -> list[Finding]:
        """`call` gives `model` the inputs `x`: scaled as `fit`'s were, in an order that holds?"""
        return self.heldout.given(model, call, x, step) + reshuffledsplit.predicted(call, x, step)

    def given(self, model: Any, arguments: Mapping[str, Any], step: int) -> list[Finding]:
        """On the host as `fit` starts: notes from its arguments (by name), and the findings.

        Of data `fit` draws batches from (a data set, a generator) only how a data set pairs
        its inputs and labels (`unpaired`), splits off its validation set (`reshuffledsplit`)
        and is shuffled (`statefulshuffle`), and the arrays it only batches and shuffles
        (`batch.sliced`: token labels and inputs); the rest tells in-graph.
        """
        x = arguments.get("x")
        stateful = statefulshuffle.finding(model, arguments, step)
        frozen = frozenlate.finding(model, self._traced.get(id(model), []), step)
        found = [f for f in (stateful, frozen) if f is not None]
        if batch.head(x) is None and not isinstance(x, (list, tuple, Mapping)):
            # (an override's train_step may read the zip as anything: two unpaired image sets)
            unpaired_finding = unpaired.finding(x, step) if keras_own_step(model) else None
            found += [unpaired_finding] if unpaired_finding is not None else []
            misaligned = augmentpair.finding(arguments, step)
            found += [misaligned] if misaligned is not None else []
            sliced = batch.sliced(x)  # (arrays only batched and shuffled: read as fit's)
            if sliced is not None:
                found += _token_findings(model, sliced[0], sliced[1], step)
                weighted = {"y": sliced[1], "sample_weight": sliced[2]}
                found += weightorder.shuffled_apart(weighted, step)
            return found + reshuffledsplit.findings(arguments, step)
        self.heldout.trained_on(model, x)
        weights = [  # (fit takes one or the other)
            sampleweights.largest(arguments.get("sample_weight")),
            sampleweights.largest_of_classes(arguments.get("class_weight"), arguments.get("y")),
        ]
        known = [w for w in weights if w is not None]
        self._given[id(model)] = {
            "rows_normalized": rownorm.first_batch_suspect(batch.head(x)),
            "sample_weight_largest": max(known, default=None),
        }
        found += weightorder.shuffled_apart(arguments, step)
        return found + _token_findings(model, x, arguments.get("y"), step)

    def observe(self, model: Any, x: Any, y: Any, sample_weight: Any) -> None:
        """In-graph, as a train step of `model` is traced: folds its inputs, labels and weights."""
        key, loss = id(model), getattr(model, "loss", None)
        self._traced[key] = list(model.trainable_variables)
        if key not in self._label_ranges and loss is not None:
            allowed = label_range.bounds(model, loss)
            if allowed is not None:
                self._label_ranges[key] = label_range.LabelRange(allowed)
        if key not in self.label_counts:
            outputs = getattr(model, "outputs", None) or []
            width = outputs[0].shape[-1] if len(outputs) == 1 and outputs[0].shape else None
            if width is not None and chance.LabelCounts.applies(loss, width):
                self.label_counts[key] = chance.LabelCounts(loss, width)
        if key not in self._paddings:
            self._paddings[key] = padding.TrailingPadding.of(model)
            self._pixels[key] = rescaled.InputPixels.of(model)
        for labels in (self._label_ranges.get(key), self.label_counts.get(key)):
            if labels is not None:
                labels.observe(y)
        for inputs in (self._paddings[key], self._pixels[key]):
            if inputs is not None:
                inputs.observe(x)
        self._columns.setdefault(key, labelcolumn.LabelColumn(model)).observe(x, y)
        if key not in self._listed:
            self._listed[key] = output_order.ListedTargets.of(model, y)
        if (listed := self._listed[key]) is not None:
            listed.observe(y)
        if key not in self._given:  # (fit's arrays told the weights on the host)
            self._weights.setdefault(key, sampleweights.LargestWeight()).observe(sample_weight)

    def findings(self, step: int) -> list[Finding]:
        """What the batches showed, judged (a host read).

        `labels-out-of-range`, `batches-one-class`, `inputs-rescaled-twice`, `labels-in-inputs`
        and `loss-misassigned`.
        """
        found = [labels.judge(step) for labels in self._label_ranges.values()]
        found += [columns.finding(step) for columns in self._columns.values()]
        found += [listed.finding(step) for listed in self._listed.values() if listed]
        found += [counts.batches_one_class(step) for counts in self.label_counts.values()]
        found += [pixels.finding(step) for pixels in self._pixels.values() if pixels]
        return [finding for finding in found if finding is not None]

    def input_notes(self, model: Any) -> dict[str, Any]:
        """What `model`'s inputs showed, as notes (a host read).

        The suspects `suspects.INPUTS`, and ``"sample_weight_largest"`` (`sampleweights`);
        what `fit`'s arrays told (`given`) in place of what its batches did.
        """
        padded, pixels = self._paddings.get(id(model)), self._pixels.get(id(model))
        weights = self._weights.get(id(model))
        notes = {
            "trailing_padding": None if padded is None else padded.suspect(),
            "raw_pixels": None if pixels is None else pixels.suspect(),
            "sample_weight_largest": None if weights is None else weights.value(),
        }
        return notes | self._given.get(id(model), {})
