"""`gradguard.preflight`: the checks people make by hand before a long run, made in seconds.

Before training for hours, people check that the initial loss is what the loss predicts for an
untrained model, that every variable gets a gradient, that the model can overfit one small
batch, that the labels carry information the model can use, and that the learning rate is
sane. `preflight` makes each check with short trial runs of the user's own model, optimizer and
loss (`gradguard.trial`, which puts every value back afterwards) and returns a `Report`:

* `from-logits-mismatch`, `initial-loss-unexpected`: the outputs and the loss at
  initialization (`gradguard.baseline`);
* `none-gradient`, `zero-gradient` (and `loss-broadcast`, `loss-sign-flipped`): a few steps of
  the trial's `TrainStep`, with its own diagnosis of where a gradient chain breaks;
* `cannot-overfit-batch`: a few hundred steps on one batch of 16 examples;
* `labels-uninformative`: the same training on the real pairing and on labels shuffled against
  the inputs, compared on held-out examples;
* `learning-rate-far-from-suggestion` (info): the rate in use against `lr_find`'s suggestion.

A false alarm costs more than a miss: each check that cannot judge (an unknown loss, too few
examples, labels that shuffling barely changes) is skipped and says why in `report.measured`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import keras
import numpy as np

from gradguard import baseline, lr_range
from gradguard import batches as batches_lib
from gradguard import findings as findings_lib
from gradguard import preflight_report as messages
from gradguard import trial as trial_lib
from gradguard.findings import Finding, Severity, number
from gradguard.preflight_report import PreflightReport
from gradguard.preflight_thresholds import Thresholds

__all__ = ["Thresholds", "preflight"]

# Examples held for the checks (a random subset of arrays, the first batches of a dataset).
_MAX_EXAMPLES = 512
# A constant prediction scoring below this fraction of the initial loss is no reference.
_DEGENERATE = 0.01


def preflight(
    model: Any,
    optimizer: keras.optimizers.Optimizer,
    loss_fn: Any,
    data: Any,
    *,
    steps: int = 200,
    lr_find_steps: int = 100,
    batch_size: int | None = None,
    thresholds: Thresholds | None = None,
) -> PreflightReport:
    """Checks, before a long run, that the model, loss, data and learning rate can learn.

    Runs short trials on the model with the optimizer (at its own learning rate; a
    schedule at its peak) and the loss, then puts the model's weights and the optimizer's
    state back exactly (also when it raises). Checks, in order:

    1. the initial loss against what the loss predicts for an untrained model, and the
       outputs against the loss's `from_logits` (`initial-loss-unexpected`,
       `from-logits-mismatch`); a NaN/Inf initial loss is reported as `non-finite`, and ends
       the preflight;
    2. two steps: every trainable variable gets a gradient, and a non-zero one
       (`none-gradient`, `zero-gradient`, as `TrainStep` reports them; `loss-broadcast`,
       `loss-sign-flipped`);
       with no gradient at all, the preflight ends;
    3. `lr_find` (`lr_find_steps` steps), for the rate to compare with;
    4. `steps` steps on one batch of 16 examples: its loss must fall below half the best
       constant prediction's, at the rate in use or else at the suggested rate, and at the
       rate in use at least below 0.9 of it (`cannot-overfit-batch`);
    5. `steps` steps on the real pairing and `steps` on labels shuffled against the inputs,
       at the suggested rate (or the one in use without a suggestion): the held-out loss must
       get below the best constant prediction's, or well below the shuffled run's
       (`labels-uninformative`);
    6. the rate in use against the suggestion (`learning-rate-far-from-suggestion`, info).

    Every threshold, with why it is set where it is, is in `Thresholds`. Findings are logged
    (absl) as they are made and never raised: the report holds them all.

    Example:
      >>> report = gradguard.preflight(model, optimizer, loss_fn, (x, y))  # doctest: +SKIP
      >>> print(report)  # doctest: +SKIP
      gradguard: no findings in 702 steps.
        initial loss   2.31 (untrained: about 2.3, ln 10 for 10 classes)
        ...

    Args:
      model: A Keras model.
      optimizer: The Keras 3 optimizer the long run will use.
      loss_fn: A `keras.losses.Loss`, a Keras loss name or ``fn(y_true, y_pred)``; the
        initial-loss and output checks need a Keras cross-entropy, squared or absolute error.
      data: ``(x, y)`` arrays or tensors, a `tf.data.Dataset` of ``(x, y)`` batches or an
        iterable of ``(x, y)`` batches; up to 512 examples are used.
      steps: Steps of each trial run (the batch to overfit; each of the two label runs).
      lr_find_steps: Steps of the learning-rate range test.
      batch_size: Examples per step of the label runs and the range test (default: the data's
        own batches, 32 for arrays).
      thresholds: Where the checks draw their lines (default `Thresholds()`).

    Returns:
      A `PreflightReport`: the findings, and per check what it measured.

    Raises:
      TypeError: for data, a model, an optimizer or a loss of the wrong kind.
      ValueError: for `steps` below 20 or `lr_find_steps` below 10, or data the model cannot
        be called on.
    """
    for name, value, least in (("steps", steps, 20), ("lr_find_steps", lr_find_steps, 10)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"preflight needs {name} to be an int >= {least}; got {value!r}.")
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        raise TypeError(
            "thresholds must be a gradguard.preflighting.Thresholds; got "
            f"{type(thresholds).__name__}."
        )
    examples = batches_lib.pool(
        data, max_examples=_MAX_EXAMPLES, batch_size=batch_size, what="preflight"
    )
    report = PreflightReport()
    with trial_lib.trial(model, optimizer, loss_fn, examples) as trial:
        run = _Run(trial, examples, baseline.kind_of(loss_fn), thresholds or Thresholds())
        run.all(steps, lr_find_steps)
        report.measured = run.measured
        for finding in run.seen:  # made (and logged) by the trial's TrainStep
            report.add(finding)
        report.steps_observed = run.steps
    findings_lib.emit(report, run.found, findings_lib.resolve_policy(None), raise_errors=False)
    return report


class _Run:
    """One preflight: the checks in order, each recording what it measured and found."""

    def __init__(
        self,
        trial: trial_lib.Trial,
        examples: batches_lib.Examples,
        kind: baseline.LossKind | None,
        limits: Thresholds,
    ):
        self.trial = trial
        self.examples = examples
        self.kind = kind
        self.limits = limits
        self.measured: dict[str, dict[str, Any]] = {}
        self.found: list[Finding] = []  # made here, to be logged
        self.seen: list[Finding] = []  # made (and logged) by the trial's TrainStep
        self.steps = 0
        self.suggestion: float | None = None

    def all(self, steps: int, lr_find_steps: int) -> None:
        if not self.initial():
            return
        self.checks(steps, lr_find_steps)
        self.seen = list(self.trial.step.core.report.findings)

    def checks(self, steps: int, lr_find_steps: int) -> None:
        """The checks that train: gradients, the range test, one batch, the labels, the rate."""
        if not self.gradients():
            return
        self.learning_rate(lr_find_steps)
        rate = self.overfit(steps)
        codes = {f.code for f in self.found if f.severity is not Severity.INFO}
        if "from-logits-mismatch" in codes:
            self.measured["labels"] = {"skipped": "the loss reads the outputs wrongly"}
        elif "initial-loss-unexpected" in codes:
            # Held-out losses then measure the outputs' scale more than what was learned.
            self.measured["labels"] = {"skipped": "the initial loss is far off; fix that first"}
        elif rate is None:
            self.measured["labels"] = {"skipped": "the model did not overfit one batch"}
        else:
            # The check is about the data, not the rate: it runs where the model learns
            # fastest (the suggestion never failed to overfit the batch if it got here).
            self.labels(steps, self.suggestion or rate)
        if self.suggestion is not None and self.trial.rate.in_use > 0:
            ratio = self.trial.rate.in_use / self.suggestion
            if not 1 / self.limits.lr_tolerance <= ratio <= self.limits.lr_tolerance:
                self.found.append(messages.learning_rate(self.trial.rate.in_use, self.suggestion))

    def initial(self) -> bool:
        """The data, the initial loss and outputs; False (the end) for NaN/Inf in any of them.

        The data is checked itself: a NaN input can vanish in the forward pass (a ReLU on
        oneDNN turns it into 0) and leave the loss finite.
        """
        loss, outputs = self.trial.evaluate(self.examples)
        m: dict[str, Any] = {"loss": loss, "examples": len(self.examples)}
        self.measured["initial_loss"] = m
        bad_data = self.examples.non_finite()
        if bad_data or not math.isfinite(loss):
            self.found.append(messages.non_finite_start(loss, bad_data, outputs))
            m["skipped"] = "NaN or Inf in the data or the loss"
            return False
        kind, y = self.kind, self.examples.y
        if kind is None or not isinstance(outputs, np.ndarray) or not isinstance(y, np.ndarray):
            m["skipped"] = "not a Keras cross-entropy, squared or absolute error on one output"
            return True
        mismatch = baseline.output_mismatch(kind, y, outputs, loss)
        if mismatch is not None:
            self.found.append(messages.from_logits_mismatch(kind, mismatch, loss))
            m["mismatch"] = mismatch
            if mismatch["outputs"] == "logits" or not mismatch["keras_compensates"]:
                return True  # the loss's value says nothing more
        expectation = baseline.expect(kind, y, outputs)
        if expectation is None:
            m["skipped"] = "no prediction for these labels (one class, or constant targets)"
            return True
        factor = self.limits.initial_loss_factor or expectation.factor
        m.update(expected=expectation.loss, reason=expectation.reason, factor=factor)
        if loss > factor * expectation.loss:
            self.found.append(messages.initial_loss(kind, loss, expectation, factor, y, outputs))
        return True

    def gradients(self) -> bool:
        """Two steps of the trial's TrainStep; False (the end) when no variable got a gradient.

        `none-gradient` (with where the chain breaks) and `zero-gradient` are the step's own
        findings; two steps, as `ZeroGradient` judges "zero on every step seen": a weight
        initialized to zero (ReZero) moves at the first update, and gradients flow after it.
        """
        step = self.trial.step
        x, y = next(self.examples.batches(self.examples.batch_size, seed=0))
        for _ in range(2):
            step(x, y)
        self.steps += 2
        step.report()  # judges the checks now: the findings are kept in the step's report
        self.trial.reset()
        count = len(step.core.variables)
        with_gradient = count - len(step.core.none_indices)
        self.measured["gradients"] = {"variables": count, "with_gradient": with_gradient}
        return with_gradient > 0

    def learning_rate(self, lr_find_steps: int) -> None:
        result = lr_range.range_test(self.trial, self.examples, steps=lr_find_steps)
        self.steps += len(result.lrs)
        self.suggestion = result.suggestion
        self.measured["learning_rate"] = {
            "in_use": self.trial.rate.in_use,
            "suggestion": result.suggestion,
            "lr_find_steps": len(result.lrs),
            "stopped": result.stopped,
        }

    def overfit(self, steps: int) -> float | None:
        """Trains one small batch; returns a rate at which it was overfit (None: none)."""
        limits = self.limits
        batch = self.examples.spread(limits.overfit_examples)
        start, _ = self.trial.evaluate(batch)
        constant = baseline.constant_loss(self.kind, _array(batch.y))
        # A batch whose labels are all alike has a constant prediction scoring about 0.
        known = constant is not None and constant > _DEGENERATE * start
        reference = constant if known else start
        m: dict[str, Any] = {
            "examples": len(batch),
            "steps": steps,
            "start": start,
            "reference": reference,
            "reference_is": "constant prediction's loss" if known else "initial loss",
            "runs": [],
        }
        self.measured["overfit"] = m
        if not (reference is not None and reference > 0):
            m["skipped"] = "the batch's loss is already 0"
            return None
        in_use = self.trial.rate.in_use
        fitted = self._fit(batch, in_use, steps)
        m["runs"].append({"lr": in_use, "fitted": fitted})
        if fitted <= limits.overfit_ratio * reference:
            return in_use
        learned = fitted <= limits.progress_ratio * reference
        fitted_at, suggestion = None, self.suggestion
        if suggestion is not None and not (
            1 / limits.retry_factor <= in_use / suggestion <= limits.retry_factor
        ):
            retried = self._fit(batch, suggestion, steps)
            m["runs"].append({"lr": suggestion, "fitted": retried})
            if retried <= limits.overfit_ratio * reference:
                fitted_at = suggestion
        if fitted_at is None or not learned:
            others = any(f.severity is not Severity.INFO for f in self.found)
            self.found.append(
                messages.cannot_overfit(
                    m, limits.overfit_ratio, limits.progress_ratio, fitted_at, others
                )
            )
        return fitted_at

    def _fit(self, batch: batches_lib.Examples, rate: float, steps: int) -> float:
        """The lowest loss of the batch while training on it alone (training or inference)."""
        self.trial.rate.set(rate)
        x, y = batches_lib.tensors(batch.x), batches_lib.tensors(batch.y)
        losses = self.trial.train(itertools.repeat((x, y)), steps)
        end, _ = self.trial.evaluate(batch)
        self.trial.reset()
        self.steps += steps
        seen = [*losses[np.isfinite(losses)], *([end] if math.isfinite(end) else [])]
        return float(min(seen)) if seen else math.inf

    def labels(self, steps: int, rate: float) -> None:
        """Trains on the real pairing and on shuffled labels; judges on held-out examples."""
        examples, limits = self.examples, self.limits
        m: dict[str, Any] = {"steps": steps, "lr": rate, "examples": len(examples)}
        self.measured["labels"] = m
        if len(examples) < limits.label_min_examples:
            m["skipped"] = f"{len(examples)} examples; the check needs {limits.label_min_examples}"
            return
        order = np.random.default_rng(2).permutation(len(examples))
        held = len(examples) // 3
        heldout, train = examples.take(order[:held]), examples.take(order[held:])
        shuffled, changed = train.shuffled_labels(seed=3)
        classes = baseline.class_count(self.kind, train.y)
        m.update(changed=changed, classes=classes, held_out=held)
        if changed < limits.label_min_changed:
            m["skipped"] = f"shuffling changes only {changed:.0%} of the labels"
            return
        if classes and len(train) / classes < limits.label_min_per_class:
            m["skipped"] = f"{len(train)} training examples for {classes} classes"
            return
        start, _ = self.trial.evaluate(heldout)
        real = self._held_out(train, heldout, rate, steps)
        fake = self._held_out(shuffled, heldout, rate, steps)
        constant = baseline.constant_loss(self.kind, _array(heldout.y), _array(train.y))
        m.update(start=start, real=real, shuffled=fake, constant=constant)
        if not (math.isfinite(real) and math.isfinite(fake)):
            m["skipped"] = f"training diverged at lr {number(rate)}"
            return
        if constant is not None and constant > 0:
            informative = real < (1 - limits.label_margin) * constant or (
                real < (1 - limits.label_shuffled_margin) * fake
            )
        else:
            informative = not fake > 0 or real < (1 - limits.label_margin) * fake
        if not informative:
            self.found.append(messages.labels_uninformative(m, len(train)))

    def _held_out(
        self, train: batches_lib.Examples, heldout: batches_lib.Examples, rate: float, steps: int
    ) -> float:
        """The lowest held-out loss seen while training on `train` (measured 10 times).

        Infinite when every measurement was NaN or Inf (the run diverged).
        """
        self.trial.rate.set(rate)
        batches = train.batches(self.examples.batch_size, seed=4)
        best = math.inf
        every = max(1, steps // 10)
        for done in range(0, steps, every):
            self.trial.train(batches, min(every, steps - done))
            loss, _ = self.trial.evaluate(heldout)
            best = min(best, loss) if math.isfinite(loss) else best
        self.trial.reset()
        self.steps += steps
        return best


def _array(y: Any) -> np.ndarray | None:
    return y if isinstance(y, np.ndarray) else None
