"""Whether an applied gradient is one a tape gave, or made from it value by value.

Checks that follow a gradient from the `tape.gradient` call that gave it to the update that
applies it (`gradient-of-predictions`, `tape-reused-after-update`) meet it clipped, scaled or
cast on the way (`tf.clip_by_global_norm` before `apply_gradients`). In a traced step the
graph shows that history; an eager tensor has none, and is matched as itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["carries"]


# Ops that pass a gradient on value by value: clipped (`tf.clip_by_global_norm`, `clip_by_norm`,
# `clip_by_value`), scaled, cast, masked, summed with another (accumulated, decayed).
_ELEMENTWISE = {
    "Identity", "IdentityN", "Mul", "RealDiv", "Cast", "ClipByValue", "Maximum", "Minimum",
    "Neg", "Select", "SelectV2", "AddV2", "AddN",
}  # fmt: skip


def carries(gradient: Any, taken: Sequence[Any], depth: int = 8) -> bool:
    """Whether `gradient` is one of `taken`, or, in a traced step, made from one value by value.

    Followed only through `_ELEMENTWISE` ops and their operands of the gradient's own shape
    (the clipped tensor, not the norm that scales it). An eager tensor has no history.
    """
    if any(gradient is t for t in taken):
        return True
    op = getattr(gradient, "op", None)
    if depth == 0 or op is None or op.type not in _ELEMENTWISE:
        return False
    return any(
        carries(operand, taken, depth - 1)
        for operand in op.inputs
        if operand.shape == gradient.shape
    )
