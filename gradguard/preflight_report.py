"""What `preflight` tells the user: its report, and its findings as sentences.

`PreflightReport` is a `Report` that also holds what each check measured, and prints one line
per check. Each other function takes what a check measured and returns one `Finding` whose
message names the numbers and what to do (the checks themselves are in
`gradguard.preflighting`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import baseline
from gradguard import findings as findings_lib
from gradguard.findings import Finding, Severity, number

__all__ = [
    "PreflightReport",
    "cannot_overfit",
    "from_logits_mismatch",
    "initial_loss",
    "labels_uninformative",
    "learning_rate",
    "non_finite_start",
]


class PreflightReport(findings_lib.Report):
    """The findings of `preflight`, and what each check measured (`measured`).

    `measured` maps each check (``"initial_loss"``, ``"gradients"``, ``"learning_rate"``,
    ``"overfit"``, ``"labels"``) to its numbers, or to ``{"skipped": reason}``; `to_dict` and
    `to_json` add it under ``"preflight"``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.measured: dict[str, dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "preflight": copy.deepcopy(self.measured)}

    def __str__(self) -> str:
        lines = [super().__str__()]
        for check, values in self.measured.items():
            lines.append(f"  {check.replace('_', ' '):14s} {_summary(check, values)}")
        return "\n".join(lines)


def _summary(check: str, m: dict[str, Any]) -> str:
    """One line per check for `PreflightReport.__str__`."""
    if "skipped" in m:
        return f"skipped: {m['skipped']}"
    if check == "initial_loss":
        text = number(m["loss"])
        if "expected" in m:
            text += f" (untrained: about {number(m['expected'])}, {m['reason']})"
        if "mismatch" in m:
            text += f"; the outputs are {m['mismatch']['outputs']}, against from_logits"
        return text
    if check == "gradients":
        return f"{m['with_gradient']} of {m['variables']} trainable variables got a gradient"
    if check == "learning_rate":
        suggestion = m["suggestion"]
        advice = f"lr_find suggests {number(suggestion)}" if suggestion else "no suggestion"
        return f"{number(m['in_use'])} in use; {advice}"
    if check == "overfit":
        runs = ", ".join(
            f"{_percent(r['fitted'] / m['reference'])} at lr {number(r['lr'])}" for r in m["runs"]
        )
        return (
            f"one batch of {m['examples']} to {runs} of the {m['reference_is']} "
            f"({m['steps']} steps)"
        )
    constant = m.get("constant")
    against = f", {number(constant)} (constant prediction)" if constant is not None else ""
    return (
        f"held-out loss {number(m['real'])} (real pairing), {number(m['shuffled'])} (shuffled "
        f"labels){against}"
    )


def _percent(fraction: float) -> str:
    percent = 100 * fraction
    return "<0.1%" if percent < 0.1 else f"{percent:.2g}%"


def non_finite_start(loss: float, bad_data: dict[str, int], outputs: Any) -> Finding:
    """`non-finite` before training: NaN or Inf in the data, the outputs or the loss.

    Args:
      loss: The initial loss.
      bad_data: Examples holding NaN or Inf, by part (``{"x": 3}``); empty if none.
      outputs: The untrained model's outputs.
    """
    outputs_finite = all(
        bool(np.all(np.isfinite(np.asarray(a, dtype=np.float64)))) for a in tf.nest.flatten(outputs)
    )
    if bad_data:
        parts = " and ".join(f"{count} example(s) of {part}" for part, count in bad_data.items())
        stage = "data"
        cause = (
            f"{parts} hold NaN or Inf (the initial loss is {number(loss)}): clean or impute them"
        )
    elif not outputs_finite:
        stage, cause = "forward", "the untrained model's outputs are NaN or Inf: check its layers"
    else:
        stage = "loss"
        cause = f"the outputs are finite but the loss is {loss}: guard its log and division"
    message = f"Before training, {cause}; nothing else is judged until they are finite."
    return Finding("non-finite", message, details={"origin": {"stage": stage, "step": 0}})


def from_logits_mismatch(kind: baseline.LossKind, m: dict[str, Any], loss: float) -> Finding:
    """`from-logits-mismatch`, from `baseline.output_mismatch`'s evidence `m`.

    An error when the loss really reads the outputs wrongly; info when Keras takes the logits
    from the model's own softmax or sigmoid, so training works anyway.
    """
    activation = "sigmoid" if kind.name == baseline.BINARY_CE else "softmax"
    span = f"between {number(m['min'])} and {number(m['max'])}"
    if m["outputs"] == "logits":
        message = (
            f"The model's outputs are not probabilities ({span}) but the loss has "
            "from_logits=False, so it clips them into [0, 1] and learns from what is left: "
            f"set from_logits=True, or end the model with a {activation} activation."
        )
        severity = Severity.ERROR
    else:
        sums = ", each row summing to 1" if activation == "softmax" else ""
        head = f"The model's outputs are probabilities ({span}{sums}) but the loss has "
        if m["keras_compensates"]:
            message = head + (
                f"from_logits=True; Keras takes the logits from the model's {activation} "
                "itself here, so training works, but only in TensorFlow and only while the "
                f"{activation} is the model's last operation: remove the output activation "
                "(keep from_logits=True), or set from_logits=False."
            )
            severity = Severity.INFO
        else:
            message = head + (
                f"from_logits=True, so it applies {activation} a second time (the initial "
                f"loss {number(loss)} is that of the outputs taken as logits) and can never "
                "get near 0: remove the output activation (keep from_logits=True), or set "
                "from_logits=False."
            )
            severity = Severity.ERROR
    details = {**m, "loss": kind.name, "from_logits": kind.from_logits, "initial_loss": loss}
    return Finding("from-logits-mismatch", message, severity=severity, details=details)


def initial_loss(
    kind: baseline.LossKind,
    loss: float,
    expectation: baseline.Expectation,
    factor: float,
    y: np.ndarray,
    outputs: np.ndarray,
) -> Finding:
    """`initial-loss-unexpected`: the initial loss is `factor` times the expected or more.

    The message says what makes it large: for a regression, targets far from 0 or outputs far
    larger than the targets; for a classifier, confident (large) initial outputs.
    """
    head = (
        f"The initial loss is {number(loss)}, {number(loss / expectation.loss)}x what an "
        f"untrained model should measure ({number(expectation.loss)}, {expectation.reason})"
    )
    details: dict[str, Any] = {
        "loss": loss,
        "expected": expectation.loss,
        "factor": factor,
        "reason": expectation.reason,
    }
    rows = outputs.reshape(len(outputs), -1).astype(np.float64)
    if kind.name in (baseline.MSE, baseline.MAE):
        targets = y.reshape(len(y), -1).astype(np.float64)
        offset = float(np.sqrt(np.mean(targets.mean(axis=0) ** 2)))
        spread = float(np.sqrt(np.mean(targets.var(axis=0))))
        scale = float(np.sqrt(np.mean(rows**2)))
        details.update(target_mean=offset, target_std=spread, output_rms=scale)
        if offset >= scale:
            cause = (
                f"the targets are not centered (mean {number(offset)}, "
                f"{number(offset / spread)} standard deviations from 0, where an untrained "
                "model predicts): standardize them, or set the output layer's bias to their mean"
            )
        else:
            cause = (
                f"the untrained model's outputs are large (rms {number(scale)} against the "
                f"targets' standard deviation {number(spread)}): normalize the inputs, and "
                "check the output layer's initialization and activation"
            )
    else:
        spread = float(rows.std(axis=-1).mean())
        details["output_std"] = spread
        cause = (
            f"the untrained model is confidently wrong (its outputs spread {number(spread)} "
            "within each example): normalize the inputs (e.g. pixels / 255), or initialize "
            "the output layer smaller"
        )
    return Finding("initial-loss-unexpected", f"{head}: {cause}.", details=details)


def cannot_overfit(
    m: dict[str, Any],
    overfit_ratio: float,
    progress_ratio: float,
    fitted_at: float | None,
    others: bool = False,
) -> Finding:
    """`cannot-overfit-batch`, from the overfit check's measurements `m`.

    With `fitted_at` (the rate that fitted the batch after the rate in use learned nothing),
    the learning rate is named as the cause; otherwise the model, the loss or the labels.
    `others`: other findings were made before, which may be why.
    """
    first = m["runs"][0]
    reference = f"{number(m['reference'])} (the {m['reference_is']})"
    if fitted_at is not None:
        message = (
            f"At the learning rate in use ({number(first['lr'])}) the model learned nothing "
            f"from one batch of {m['examples']} examples in {m['steps']} steps: its loss got "
            f"to {number(first['fitted'])}, not below {progress_ratio} of {reference}; at "
            f"lr_find's suggestion {number(fitted_at)} it overfit the batch, so the model "
            "learns far too slowly at this rate: use a rate near the suggestion"
            + (", or fix what the other findings name, which may be why." if others else ".")
        )
    else:
        rates = " or ".join(number(r["lr"]) for r in m["runs"])
        best = min(r["fitted"] for r in m["runs"])
        message = (
            f"The model cannot overfit one batch of {m['examples']} examples: after "
            f"{m['steps']} steps at learning rate {rates} its loss got to {number(best)}, not "
            f"below {overfit_ratio} of {reference}. The model, the loss or the labels are "
            "wired wrong (see the other findings): check that the loss compares the model's "
            "output with y, that the output activation fits the targets, and that the model "
            "is not too small or too regularized to memorize a few examples."
        )
    return Finding("cannot-overfit-batch", message, details={**m, "fitted_at": fitted_at})


def labels_uninformative(m: dict[str, Any], train_examples: int) -> Finding:
    """`labels-uninformative`, from the label check's measurements `m`."""
    constant = m.get("constant")
    if constant is not None:
        against = f"the best constant prediction's {number(constant)}"
    else:
        against = f"what training on shuffled labels brings it to ({number(m['shuffled'])})"
    message = (
        f"Training on the real pairing of inputs and labels brought the held-out loss to "
        f"{number(m['real'])}, no lower than {against}, after {m['steps']} steps on "
        f"{train_examples} examples: the labels carry no information the model can use. "
        "Check that inputs and labels are shuffled together and that each y belongs to its x "
        "(file order, a join, an augmentation that moves the object); if the task is hard, "
        "confirm with preflight(..., steps=1000)."
    )
    details: dict[str, Any] = {
        k: m[k] for k in ("real", "shuffled", "constant", "steps", "lr") if k in m
    }
    return Finding("labels-uninformative", message, details=details)


def learning_rate(in_use: float, suggestion: float) -> Finding:
    """`learning-rate-far-from-suggestion` (info), with both rates."""
    ratio = in_use / suggestion
    direction = "above" if ratio > 1 else "below"
    message = (
        f"The learning rate in use, {number(in_use)}, is {number(max(ratio, 1 / ratio))}x "
        f"{direction} lr_find's suggestion {number(suggestion)} (the steepest descent of the "
        "range test): a rate between a tenth of the suggestion and the suggestion is the usual "
        "choice; plot gradguard.lr_find(...) to see the curve."
    )
    details = {"lr": in_use, "suggestion": suggestion, "ratio": ratio}
    return Finding("learning-rate-far-from-suggestion", message, details=details)
