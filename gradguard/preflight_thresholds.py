"""`Thresholds`: where `gradguard.preflight` draws its lines, each with why it is set there.

Importable as `gradguard.preflighting.Thresholds`, where `preflight` takes it.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Thresholds"]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Where `preflight` draws its lines, and why.

    Attributes:
      overfit_examples: The batch the model must overfit (16 examples, spread over the labels:
        a model with a few hundred parameters or more can memorize it; batch normalization
        still works).
      overfit_ratio: The batch counts as fitted once its loss falls below this fraction of the
        best constant prediction's loss on it (the labels' entropy, variance or mean absolute
        deviation; for other losses, of the batch's initial loss). 0.5 is far from both what a
        healthy model reaches (0.01-0.1 of it) and what a broken one does: a rate of 1e-10
        leaves it at 1, softmax applied twice holds 10 classes at 0.63 of ln 10.
      progress_ratio: At the rate in use, the batch's loss must at least fall below this
        fraction of the reference, even if it does not get below `overfit_ratio`: a rate that
        learns slowly (SGD at 0.01, Adam at 1e-4) is not reported when the batch is fitted at
        `lr_find`'s suggestion; a rate at which nothing is learned (1e-10) is.
      retry_factor: When the batch is not fitted at the rate in use and `lr_find`'s suggestion
        differs from it by more than this factor, the batch is tried at the suggestion, to
        tell a learning-rate problem from a wiring or loss one.
      label_min_examples: The label check needs this many examples (a third held out).
      label_min_changed: ... and labels that shuffling changes for at least this fraction of
        the examples (one dominant class leaves most labels as they were).
      label_min_per_class: ... and, for classifiers, this many training examples per class on
        average: with fewer, nothing generalizes in a few hundred steps, labels or not.
      label_margin: The labels count as informative when training on the real pairing brings
        the held-out loss this fraction below the best constant prediction's (fitted on the
        training part's labels), as a model that learned only the labels' frequencies would
        score. On random pairings a model never beats it (measured: at most 0.6% in 28
        trials, usually worse, from memorizing noise); on weak but real signal it does by 2%
        or more. For losses without a known constant prediction, the same margin applies
        against training on shuffled labels (noisier: two random pairings differ by up to 12%
        for a regressor, so such a miss is likelier).
      label_shuffled_margin: ... or when it brings the held-out loss this fraction below what
        training on labels shuffled against the inputs does: a run too short for the model to
        learn even the labels' frequencies can still show that the real pairing helps.
      lr_tolerance: The rate in use is reported when it is more than this factor away from
        `lr_find`'s suggestion (the suggestion itself is good to about half a decade).
      initial_loss_factor: How many times the untrained model's expected loss the initial loss
        may be; None: 3 for cross-entropies, 10 for the squared error (see `baseline`).
    """

    overfit_examples: int = 16
    overfit_ratio: float = 0.5
    progress_ratio: float = 0.9
    retry_factor: float = 3.0
    label_min_examples: int = 96
    label_min_changed: float = 0.4
    label_min_per_class: float = 5.0
    label_margin: float = 0.01
    label_shuffled_margin: float = 0.2
    lr_tolerance: float = 10.0
    initial_loss_factor: float | None = None
