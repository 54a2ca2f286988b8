"""Which of the variables an update trains a traced tensor is computed from.

Used where a finding names a part of a model by its variables (`adversary`'s head, the teacher
of `softtargets`): the reads of trained variables among a tensor's ancestors, on the paths a
gradient takes (not through `tf.stop_gradient`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from gradguard.diagnose import READS, variable_placeholders

__all__ = ["trained_names", "trained_reads"]


def trained_names(graph: Any, variables: Sequence[Any]) -> dict[Any, str]:
    """The placeholder op standing for each of `variables` in `graph`, to the variable's name."""
    placeholders = variable_placeholders(graph, list(variables))
    return {
        getattr(placeholder, "op", None): getattr(variable, "path", None) or variable.name
        for variable, placeholder in zip(variables, placeholders)
    }


def trained_reads(
    tensor: tf.Tensor, trained: dict[Any, str], avoid: Sequence[tf.Operation] = ()
) -> set[Any]:
    """The `trained` placeholders `tensor` is computed from with a gradient, not via `avoid`."""
    seen, stack, found = set(), [tensor.op], set()
    while stack:
        op = stack.pop()
        if op in seen or op in avoid or op.type == "StopGradient":
            continue
        seen.add(op)
        if op.type in READS and op.inputs[0].op in trained:
            found.add(op.inputs[0].op)
        stack += [t.op for t in op.inputs]
    return found
