"""A policy gradient whose advantage trains the critic (`advantage-not-stopped`).

An actor-critic's policy term is ``-log pi(a|s) * (R - V(s))``: the advantage weighs how much
each action taken is reinforced, and is meant as a number. Computed from the value head without
`tf.stop_gradient`, it is differentiated too: the actor term's gradient with respect to V is
``log pi(a|s)``, always negative, so it pushes V above the returns by the policy's surprise;
every advantage turns negative and each action taken is pushed down, the right ones too. The
critic's own loss still falls (keras-io#194 on the Keras actor-critic example, async-rl#8;
hunt31 b05: greedy reward 0.74 against 0.94 with the advantage stopped).

Read from a traced loss (`lossgraph.graph_findings`), once per trace: a product of the
log-probability of the actions taken (a sparse softmax cross-entropy of action ids from the
data, or a `log` of the policy's probabilities) and a difference of the step's data (returns,
rewards) and a value the update trains, reached without `tf.stop_gradient`. Silent: the value
stopped, or the advantages computed outside the tape and passed in; an entropy bonus
(``p * log p``); a ratio of probabilities (PPO's); a cross-entropy weighted by data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from gradguard.diagnose import VIEWS, before_views, is_data, reads_variables
from gradguard.findings import Finding, listing
from gradguard.trainedreads import trained_names, trained_reads

__all__ = ["graph_advantage_not_stopped"]

_SIGNS = VIEWS | {"Neg"}  # between a log-probability or an advantage and the product


def graph_advantage_not_stopped(
    loss: tf.Tensor, ops: set[tf.Operation], variables: Sequence[Any], step: int
) -> Finding | None:
    """`advantage-not-stopped` for the first policy term whose advantage the update trains."""
    names = trained_names(loss.graph, variables)
    for product in sorted((op for op in ops if op.type == "Mul"), key=lambda op: op.name):
        for log_probability, advantage in (product.inputs, product.inputs[::-1]):
            if not _log_probability_of_actions(log_probability):
                continue
            difference = before_views(advantage, _SIGNS)
            if difference.op.type != "Sub" or not _returns(difference.op.inputs[0]):
                continue
            critic = trained_reads(difference, names)
            # (named by the value head's own variables, not the trunk it shares with the policy)
            head = critic - trained_reads(log_probability, names)
            if critic:
                return _finding(product, sorted(names[p] for p in head or critic), step)
    return None


def _returns(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is the data's returns or rewards, bootstrapped at most (``r + g V(s')``)."""
    op = before_views(tensor, _SIGNS).op
    if op.type in ("AddV2", "Add"):
        return any(map(is_data, op.inputs))
    return is_data(tensor)


def _log_probability_of_actions(tensor: tf.Tensor) -> bool:
    """Whether `tensor` is the log-probability the policy gives actions the data names.

    ``-sparse_softmax_cross_entropy_with_logits(actions, logits)``; the log of the probability
    picked by the actions (``log(gather(probs, a))``, ``log(sum(one_hot(a) * probs))``); or the
    log-probabilities picked so (``sum(one_hot(a) * log_softmax(logits))``).
    """
    op = before_views(tensor, _SIGNS).op
    if op.type == "SparseSoftmaxCrossEntropyWithLogits":  # (-log pi(a|s) of action ids a)
        return is_data(op.inputs[1]) and reads_variables(op.inputs[0])
    if op.type == "Log":
        return _picked(_past_epsilon(op.inputs[0]), ("Softmax", "Sigmoid"))
    return _picked(op.outputs[0], ("LogSoftmax", "Log"))


def _past_epsilon(tensor: tf.Tensor) -> tf.Tensor:
    """`tensor` before an epsilon added or a clip (``log(p + 1e-8)``, ``clip_by_value``)."""
    op = tensor.op
    if op.type in ("AddV2", "Add", "Maximum") and tf.get_static_value(op.inputs[1]) is not None:
        return op.inputs[0]
    return op.inputs[0] if op.type == "ClipByValue" else tensor


def _picked(tensor: tf.Tensor, policy: tuple[str, ...]) -> bool:
    """Whether `tensor` picks, by the data's actions, from a `policy` op's output."""
    op = before_views(tensor, _SIGNS).op
    if op.type == "Sum":
        op = before_views(op.inputs[0], _SIGNS).op
    if op.type not in ("Mul", "GatherV2", "GatherNd"):
        return False
    pairs = [op.inputs[:2]] if op.type != "Mul" else [op.inputs[:2], op.inputs[1::-1]]
    # (the op types first: a graph walk per product of a large model costs a trace seconds)
    return any(
        before_views(values, _SIGNS).op.type in policy
        and is_data(picks)
        and reads_variables(values)
        for values, picks in pairs
    )


def _finding(product: tf.Operation, critic: list[str], step: int) -> Finding:
    message = (
        f"The policy term {product.name} multiplies the log-probability of the actions taken by "
        f"an advantage computed from values this update trains ({listing(critic)}) without "
        "tf.stop_gradient: the actor loss trains the critic too, pushing each value above the "
        "returns by -log pi(a|s), so the advantages turn negative and every action taken is "
        "pushed down, the right ones too. Hold the value in the actor term: advantage = "
        "returns - tf.stop_gradient(values) (the critic's own loss still trains it)."
    )
    details = {"term": product.name, "critic": critic}
    return Finding("advantage-not-stopped", message, step, details=details)
