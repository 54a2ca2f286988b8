"""A head trained to raise its own loss: an adversary without gradient reversal.

Domain-adversarial training (DANN) and adversarial debiasing train a head (a domain or
attribute classifier) to predict a label from shared features, and the features to defeat it.
The head itself minimizes its loss: only the gradient into the shared features is reversed (a
gradient-reversal layer), or the head is trained by an update of its own. Written as one loss
with the head's cross-entropy subtracted, ``loss = task_loss - lam * domain_loss``, minimizing
it trains the head to be wrong too: its loss grows without limit, the features learn to help
it, and the game is never played (CuthbertCai/pytorch_DANN#13; hunt29 b12: target-domain
accuracy 0.51 against 0.87 with a reversal layer).

Read from a traced loss (`lossgraph.graph_findings`), once per trace: a cross-entropy of the
labels that raises the loss (`losssign.terms`: their log-likelihood with direction -1, through
a minus or a negative constant), computed by a head (variables this update trains that no
other part of the loss reads) from features that another part does read
(`head-trained-to-lose`). Silent: the head's loss added behind a reversal layer; a head this
update does not train (the predictor's step of adversarial debiasing, a frozen classifier to
fool); a whole model trained to raise its loss (unlearning by gradient ascent: nothing shared);
a head that a term lowering the loss also reads (a complementary-label estimator, an entropy
bonus); a term weighted per example (a policy gradient's advantages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from gradguard import losssign
from gradguard.findings import Finding, listing
from gradguard.trainedreads import trained_names, trained_reads

__all__ = ["graph_head_trained_to_lose"]


def graph_head_trained_to_lose(
    loss: tf.Tensor,
    ops: set[tf.Operation],
    is_output: Callable[[tf.Operation], bool],
    variables: Sequence[Any],
    step: int,
) -> Finding | None:
    """`head-trained-to-lose` for the first cross-entropy whose own head maximizes it.

    Args:
      loss: The traced scalar loss.
      ops: The ops `loss` is computed from.
      is_output: Whether an op makes a trained layer's output (`losssign.trained_layer`).
      variables: The variables the gradient is taken of (the update trains them).
      step: The step the finding is dated.
    """
    paths: dict[tf.Operation, list[losssign.Term]] = {}
    for term in losssign.terms(loss, ops, is_output, constant_labels=True):
        if term.kind == "likelihood":
            paths.setdefault(term.op, []).append(term)
    # The labels' log-likelihood raising the loss on every path: their cross-entropy lowering it.
    raising = [
        op
        for op, found in paths.items()
        if all(t.labelled and not t.weighted and t.direction == 1 for t in found)
    ]
    if not raising:
        return None
    names = trained_names(loss.graph, variables)
    rest = trained_reads(loss, names, avoid=raising)
    for op in raising:
        reads = trained_reads(op.outputs[0], names)
        head, shared = reads - rest, reads & rest
        if head and shared:
            return _finding(op, sorted(names[p] for p in head), step)
    return None


def _finding(op: tf.Operation, head: list[str], step: int) -> Finding:
    message = (
        f"The loss subtracts a cross-entropy ({op.name}) computed by variables no other part of "
        f"the loss reads ({listing(head)}): minimizing it trains that head to be wrong, its own "
        "loss growing without limit, and the shared layers learn to help it (adversarial training "
        "such as DANN written as loss = task_loss - lam * domain_loss, with no gradient "
        "reversal). Reverse the gradient only into the shared features: add the head's loss "
        "behind a gradient-reversal layer (a tf.custom_gradient returning -lam * dy), or train "
        "the head on its own loss in an update of its own."
    )
    return Finding("head-trained-to-lose", message, step, details={"term": op.name, "head": head})
