"""The catalog of finding codes: each code's default severity, the error it raises, its meaning.

`findings` re-exports `CODES` and `Severity`; DESIGN.md holds the contract they follow, and the
guide (``gradguard explain CODE``) a section per code.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from gradguard.errors import (
    ActivationError,
    CheckpointError,
    GradGuardError,
    GradientError,
    LossError,
    NonFiniteError,
    UpdateError,
)

__all__ = ["CODES", "CodeInfo", "Severity"]


class Severity(str, enum.Enum):
    """How bad a finding is; the default policy follows from it."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclasses.dataclass(frozen=True)
class CodeInfo:
    """Catalog entry: default severity, the error class raised, and what the code means."""

    severity: Severity
    error: type[GradGuardError]
    meaning: str


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO
CODES: Mapping[str, CodeInfo] = {
    "none-gradient": CodeInfo(_E, GradientError, "a trainable variable got a None gradient"),
    "zero-gradient": CodeInfo(_E, GradientError, "the gradient is exactly zero on every step"),
    "missing-apply": CodeInfo(_E, UpdateError, "gradients computed but no update applied"),
    "weights-unchanged": CodeInfo(_E, UpdateError, "an update was applied, weights unchanged"),
    "update-too-small": CodeInfo(_W, UpdateError, "update-to-weight ratio far below healthy"),
    "update-too-large": CodeInfo(_W, UpdateError, "update-to-weight ratio far above healthy"),
    "exploding-gradient": CodeInfo(_W, GradientError, "gradient norm very large or growing"),
    "vanishing-gradient": CodeInfo(_W, GradientError, "early-layer gradients far below later"),
    "non-finite": CodeInfo(_E, NonFiniteError, "NaN or Inf in the loss, a gradient or a weight"),
    "dead-units": CodeInfo(_W, ActivationError, "units that never activate"),
    "units-identical": CodeInfo(_W, ActivationError, "a layer's units stay copies of each other"),
    "loss-not-decreasing": CodeInfo(_W, LossError, "the loss has not improved"),
    "variable-not-trained": CodeInfo(_W, UpdateError, "a trainable variable is never updated"),
    "loss-broadcast": CodeInfo(_W, LossError, "y_true and y_pred broadcast in the loss"),
    "labels-out-of-range": CodeInfo(_W, LossError, "labels beyond what the output or loss take"),
    "batches-one-class": CodeInfo(_W, LossError, "batch after batch of one class: data unshuffled"),
    "optimizer-recreated": CodeInfo(_W, UpdateError, "a new optimizer made for every update"),
    "class-weights-inverted": CodeInfo(_W, LossError, "class_weight favours the frequent classes"),
    "class-weights-misnumbered": CodeInfo(
        _W, LossError, "class_weight keyed one above the labels: each class another's weight"
    ),
    "sample-weights-misaligned": CodeInfo(
        _W, LossError, "class-balancing sample_weight in another order than the labels"
    ),
    "vocabulary-misses-data": CodeInfo(
        _W, LossError, "a lookup's vocabulary misses most of the values fit trains on"
    ),
    "normalization-features-pooled": CodeInfo(
        _W, ActivationError, "one mean and variance for features of very different scales"
    ),
    "training-flag-missing": CodeInfo(_W, ActivationError, "normalization run in inference mode"),
    "normalization-not-adapted": CodeInfo(
        _W, ActivationError, "a Normalization layer never adapted, before unscaled inputs"
    ),
    "inputs-rescaled-twice": CodeInfo(
        _W, ActivationError, "pixels divided by 255 twice: inputs 255 times smaller than meant"
    ),
    "loss-sign-flipped": CodeInfo(
        _W,
        LossError,
        "a minus sign missing: the loss grows with the labels' likelihood, or falls without floor",
    ),
    "gradient-misassigned": CodeInfo(
        _E, GradientError, "a variable was updated with another variable's gradient"
    ),
    "loss-misassigned": CodeInfo(
        _W, LossError, "losses listed, or weights keyed off, for dict outputs land elsewhere"
    ),
    "epsilon-dominates": CodeInfo(
        _W, UpdateError, "Adam's epsilon outweighs the gradients: steps lr * g / epsilon"
    ),
    "frozen-untrained": CodeInfo(
        _W, UpdateError, "frozen layers still hold their initializers' draws: never loaded"
    ),
    "padding-misaligned": CodeInfo(
        _W, LossError, "token labels padded elsewhere than their inputs: tags off their tokens"
    ),
    "data-exhausted": CodeInfo(
        _W, LossError, "fit's data ran out: far fewer steps than steps_per_epoch * epochs"
    ),
    "labels-in-inputs": CodeInfo(
        _W, LossError, "the labels are one of the inputs, position by position (no shift)"
    ),
    "attention-mask-inverted": CodeInfo(_W, LossError, "attention keeps only the padding"),
    "future-tokens-visible": CodeInfo(
        _W, LossError, "next-token labels, and the model sees the tokens ahead (no causal mask)"
    ),
    "accumulators-not-reset": CodeInfo(_W, UpdateError, "gradients accumulated, never reset"),
    "zero-token-masked": CodeInfo(_W, LossError, "mask_zero hides 0, a real token in the data"),
    "reshape-transposes": CodeInfo(_W, LossError, "a reshape reorders axes: the data scrambled"),
    "channels-first-input": CodeInfo(
        _W, LossError, "channels-first images read by a channels-last convolution"
    ),
    "messages-to-sender": CodeInfo(
        _W, LossError, "graph messages summed back at the nodes they came from"
    ),
    "term-cancels-itself": CodeInfo(
        _W, GradientError, "a loss term subtracts or divides out its own copy: no gradient"
    ),
    "repeated-columns": CodeInfo(
        _W, LossError, "the loss reads a stack of copies of one computation: a loop index unused"
    ),
    "head-trained-to-lose": CodeInfo(
        _W, LossError, "a subtracted cross-entropy trains its own head to be wrong: no reversal"
    ),
    "loss-has-no-minimum": CodeInfo(
        _W, LossError, "the loss falls for ever as a variable or log-scale moves: a log term lost"
    ),
    "advantage-not-stopped": CodeInfo(
        _W, GradientError, "a policy gradient's advantage not stopped: the actor trains the critic"
    ),
    "posterior-collapsed": CodeInfo(
        _W, LossError, "a VAE's posterior is the prior for every input: z carries nothing"
    ),
    "contrastive-labels-inverted": CodeInfo(
        _W, LossError, "a contrastive loss pulls the dissimilar pairs together: labels inverted"
    ),
    "teacher-trained": CodeInfo(
        _W, UpdateError, "a distillation's teacher trained by the update: pulled to the student"
    ),
    "weights-half-precision": CodeInfo(
        _W, UpdateError, "trained weights stored in float16 (set_floatx): updates rounded away"
    ),
    "heldout-scale-mismatch": CodeInfo(_W, LossError, "held-out inputs scaled unlike fit's"),
    "batch-frozen-at-trace": CodeInfo(_W, LossError, "the same examples every step: drawn once"),
    "softmax-over-one": CodeInfo(_W, GradientError, "softmax weights over one position: all 1"),
    "monitor-mode-inverted": CodeInfo(_W, LossError, "a callback keeps the worst epoch as best"),
    "monitor-not-logged": CodeInfo(
        _W, LossError, "a callback watches a name fit never logs: it never acts"
    ),
    "loss-not-logged": CodeInfo(
        _W, LossError, "a custom train_step logs a loss tracker it never updates: 0.0"
    ),
    "random-frozen-at-trace": CodeInfo(
        _W, LossError, "a random draw that repeats: made once at a tf.data trace, or an int seed"
    ),
    "loop-variable-late-bound": CodeInfo(
        _W, LossError, "Lambda layers or losses made in a loop all read its last value"
    ),
    "learning-rate-frozen-at-trace": CodeInfo(
        _W, UpdateError, "a traced step sets the learning rate to a Python value read at trace"
    ),
    "regularization-ignored": CodeInfo(_W, LossError, "regularizers never added to the loss"),
    "sample-weights-ignored": CodeInfo(
        _W, LossError, "fit's class or sample weights never reach a train_step's loss"
    ),
    "augmentation-repeated": CodeInfo(_W, LossError, "random augmentation repeats every epoch"),
    "activation-missing": CodeInfo(
        _W, ActivationError, "hidden Dense layers without activation: one linear map"
    ),
    "optimizer-setting-ignored": CodeInfo(
        _W, UpdateError, "a tf.keras 2 name set on a Keras 3 optimizer: never read"
    ),
    "validation-split-ordered": CodeInfo(
        _W, LossError, "validation_split cut one end off targets sorted by value"
    ),
    "batchnorm-statistics-stale": CodeInfo(
        _W, LossError, "BatchNormalization's moving statistics lag the batches'"
    ),
    "optimizer-build-lost": CodeInfo(
        _W, UpdateError, "an optimizer's build writes its slots in a trace that never runs"
    ),
    "split-reshuffled": CodeInfo(
        _W, LossError, "training and validation split after a shuffle redrawn every epoch"
    ),
    "predictions-reshuffled": CodeInfo(
        _W, LossError, "predict given a data set that reshuffles every pass: no order to pair"
    ),
    "accuracy-exact-match": CodeInfo(
        _W, LossError, "keras.metrics.Accuracy on probabilities: 0 at every epoch"
    ),
    "embedding-ids-fractional": CodeInfo(
        _W, LossError, "an Embedding fed float ids that are not whole: truncated to int"
    ),
    "augmentation-misaligned": CodeInfo(
        _W, LossError, "inputs and labels flipped or cropped by random draws of their own"
    ),
    "loss-averaged-per-replica": CodeInfo(
        _W, UpdateError, "a replica's loss averaged over its own examples: N replicas' sum"
    ),
    "weights-copied-as-constant": CodeInfo(
        _W, UpdateError, "a layer computes with a constant copy of a variable, never updated"
    ),
    "loss-summed-per-replica": CodeInfo(
        _W, UpdateError, "a replica's loss summed over its examples, never divided by the batch"
    ),
    "loss-averaged-twice": CodeInfo(
        _W, UpdateError, "the batch's mean loss summed as one number and divided by the batch"
    ),
    "gradient-of-predictions": CodeInfo(
        _W, GradientError, "the gradients applied are of the model's outputs, not of a loss"
    ),
    "hinge-on-batch-total": CodeInfo(
        _W, LossError, "a margin's hinge taken of sums over the whole batch, not per example"
    ),
    "loss-not-scaled": CodeInfo(
        _W, UpdateError, "a LossScaleOptimizer unscales gradients of a loss it never scaled"
    ),
    "tape-reused-after-update": CodeInfo(
        _W, UpdateError, "gradients of a tape recorded before an earlier update, applied"
    ),
    "frozen-still-trained": CodeInfo(
        _W, UpdateError, "layers frozen after fit, fit again without compile: still updated"
    ),
    "stateful-shuffled": CodeInfo(
        _W, LossError, "a stateful RNN trained on rows fit shuffles: its state is another row's"
    ),
    "ema-weights-stale": CodeInfo(
        _W, UpdateError, "a weights' average (use_ema, a target network) stays at its first"
    ),
    "predictions-constant": CodeInfo(
        _W, LossError, "once fit ends, every training example gets the same prediction"
    ),
    # Before the long run (`gradguard.preflight`).
    "initial-loss-unexpected": CodeInfo(
        _W, LossError, "the initial loss is far above what an untrained model measures"
    ),
    "from-logits-mismatch": CodeInfo(
        _E, LossError, "outputs are probabilities/logits against the loss's from_logits"
    ),
    "cannot-overfit-batch": CodeInfo(_W, LossError, "the model cannot overfit one small batch"),
    "labels-uninformative": CodeInfo(
        _W, LossError, "labels paired with their inputs score no better than shuffled ones"
    ),
    "learning-rate-far-from-suggestion": CodeInfo(
        _I, UpdateError, "the learning rate is far from lr_find's suggestion"
    ),
    "checkpoint-shape-mismatch": CodeInfo(_E, CheckpointError, "saved shape differs"),
    "checkpoint-dtype-mismatch": CodeInfo(_E, CheckpointError, "saved dtype differs"),
    "checkpoint-missing-variables": CodeInfo(_E, CheckpointError, "variables with no value"),
    "checkpoint-unexpected-variables": CodeInfo(_W, CheckpointError, "values with no variable"),
    "checkpoint-corrupt": CodeInfo(_E, CheckpointError, "the checkpoint cannot be read whole"),
    "checkpoint-optimizer-config-changed": CodeInfo(
        _W, CheckpointError, "optimizer hyperparameters differ from save time"
    ),
    "checkpoint-optimizer-state-not-restored": CodeInfo(
        _E, CheckpointError, "saved optimizer slots did not reach the optimizer"
    ),
}
