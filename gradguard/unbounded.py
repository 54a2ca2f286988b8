"""A trained variable the loss falls with for ever: it has no minimum (`loss-has-no-minimum`).

Learned uncertainty weights (Kendall et al.) minimize ``exp(-s) * task_loss + s``: the first
term falls as ``s`` grows, the second rises, and they meet at the task's noise level. Without
the ``+ s`` ("the loss went negative, so I removed it": yaringal/multi-task-learning-example#6)
every step raises ``s``, every task's weight ``exp(-s)`` falls toward 0, and the network stops
learning while the reported loss falls to near 0, which looks like success (hunt29 b07:
held-out R^2 0.50 and 0.73 against 0.99 and 0.95). A loss weight trained as ``w * task_loss``
with nothing holding it is the same mistake: ``w`` runs to minus infinity.

Read from a traced loss (`lossgraph.graph_findings`), once per trace: a variable this update
trains whose every read reaches the loss through ops that move strictly with it (sums, means,
exp, log, a minus) and products with factors that are positive (an error squared, a
cross-entropy), all in one direction (`lossdirection.to_loss`, strict). Silent: the ``+ s``
term (a path the other way); a variable read by a layer (a product with the inputs, a
softmax); a factor of unknown sign (SAC's temperature times the entropy's error) or one that
is 0 by design (a Lagrange multiplier times its constraint's ReLU, still once it holds); a
variable with a Keras constraint, which bounds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from gradguard.diagnose import variable_placeholders
from gradguard.findings import Finding
from gradguard.lossdirection import UNKNOWN, to_loss

__all__ = ["graph_loss_has_no_minimum"]

_READS = ("ReadVariableOp", "ResourceGather")


def graph_loss_has_no_minimum(
    loss: tf.Tensor, ops: set[tf.Operation], variables: Sequence[Any], step: int
) -> Finding | None:
    """`loss-has-no-minimum` for the first of `variables` the loss falls with for ever."""
    placeholders = variable_placeholders(loss.graph, list(variables))
    for variable, placeholder in zip(variables, placeholders):
        if getattr(placeholder, "graph", None) is not loss.graph:
            continue
        if getattr(variable, "constraint", None) is not None:
            continue  # (bounded by it after every update)
        reads = [op for op in placeholder.consumers() if op.type in _READS and op in ops]
        start = (1, False, False)  # (the direction of the variable itself)
        directions = {
            path[0]
            for read in reads
            for path in to_loss(read.outputs[0], start, loss, ops, _no_labels, strict=True)
        }
        if len(directions) == 1 and UNKNOWN not in directions:
            return _finding(variable, directions.pop(), step)
    return None


def _no_labels(tensor: tf.Tensor) -> bool:
    return False  # (a strict walk takes no labels)


def _finding(variable: Any, direction: int, step: int) -> Finding:
    name = getattr(variable, "path", None) or variable.name
    way, to = ("grows", "up") if direction == -1 else ("shrinks", "down")
    message = (
        f"The loss falls without limit as {name} {way}: it reaches the loss only through sums, "
        f"exp or log and positive factors (an error squared), each lowering the loss as it "
        f"{way}, so the loss has no minimum in it. The optimizer drives it {to} for ever, and "
        "whatever it weights toward 0, while the loss falls and "
        "looks like success (learned uncertainty weights exp(-s) * loss without their + s "
        "term, or a loss weight trained as w * loss). Add the term that bounds it "
        "(exp(-s) * loss + s), give it a constraint, or do not train it."
    )
    details = {"variable": name, "direction": way}
    return Finding("loss-has-no-minimum", message, step, variables=(name,), details=details)
