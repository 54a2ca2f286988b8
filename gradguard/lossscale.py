"""A LossScaleOptimizer handed the gradients of a loss it never scaled (`loss-not-scaled`).

Keras 3's `LossScaleOptimizer` divides every gradient by its loss scale (2**15 at first) before
its inner optimizer's update: it expects the gradient of ``optimizer.scale_loss(loss)``. `fit`
scales the loss itself; a hand-written step must, and one that takes the gradient of the loss
as it is makes updates 2**15 times too small under SGD (hunt18, keras#19244: 0.06 held-out
accuracy on 10 classes, against 1.00 with the loss scaled). Under Adam, which divides the
scale out again, training looks fine, but float16 gradients are left unprotected from the
underflow the scaling is there to prevent.

Noted as a loss scaler's `scale_loss` and `apply` are called (`instrument`), traced or eager;
judged at each read for the loss scalers that made updates of a traced loss and never scaled a
loss. A traced loss multiplied by the scaler's `dynamic_scale` by hand counts as scaled; an
eager step's loss, a number, cannot be told from one scaled by hand. For those, the scale is
noted instead (``"loss_scale_unseen"``): an SGD whose every step is below the bar then gets
`update-too-small` naming it (`UpdateRatio`), and a loss scaled by hand moves the weights as
it should and stays silent (hunt26 b13: accuracy 0.35 against 0.90 with the loss scaled).
"""

from __future__ import annotations

from typing import Any

from gradguard import _compat
from gradguard.diagnose import ancestors, variable_placeholders
from gradguard.findings import Finding

__all__ = ["LossScaling"]


class LossScaling:
    """The loss scalers seen updating, and those seen scaling a loss."""

    def __init__(self) -> None:
        self._applied: dict[int, Any] = {}  # by the id of the optimizer each one wraps
        self._scaled: set[int] = set()  # the ids of those that scaled a loss
        self._eager: set[int] = set()  # ... and of those given an eager loss (a number)
        self._reported: set[int] = set()
        # The latest loss scaled: a gradient of `scaled` is taken for `loss`.
        self.latest: tuple[Any, Any] = (None, None)  # (scaled, loss)

    def on_apply(self, optimizer: Any, loss: Any) -> None:
        """`optimizer`, a loss scaler, is asked for an update of the gradients of `loss`.

        Only a traced loss is judged: one that reads the scaler's `dynamic_scale` was scaled by
        hand, and an eager one cannot be read (``loss * optimizer.dynamic_scale`` is a number).
        """
        self._applied[id(_compat.inner_optimizer(optimizer))] = optimizer
        scale = getattr(optimizer, "dynamic_scale", None)
        if not hasattr(loss, "graph"):
            self._eager.add(id(optimizer))
        elif scale is not None:
            (handle,) = variable_placeholders(loss.graph, [scale])
            if any(op is getattr(handle, "op", None) for op in ancestors(loss)):
                self._scaled.add(id(optimizer))

    def on_scale(self, optimizer: Any, loss: Any, scaled: Any) -> None:
        """`optimizer`, a loss scaler, scaled `loss` into `scaled`."""
        self._scaled.add(id(optimizer))
        self.latest = (scaled, loss)

    def note(self, key: int, notes: dict[str, Any]) -> None:
        """The notes of the core of the optimizer whose `id` is `key`, if a loss scaler wraps it.

        ``"float16_unscaled"`` is cleared (a scaler is there); ``"loss_scale_unseen"`` is its
        scale when it was given eager losses only and never scaled one.
        """
        scaler = self._applied.get(key)
        if scaler is None:
            return
        notes["float16_unscaled"] = False
        unseen = id(scaler) in self._eager and id(scaler) not in self._scaled
        notes["loss_scale_unseen"] = float(scaler.dynamic_scale) if unseen else None

    def findings(self, step: int) -> list[Finding]:
        """`loss-not-scaled`, once per loss scaler that updated and never scaled a loss."""
        found = []
        for scaler in self._applied.values():
            key = id(scaler)  # (scaled, eager and not judged here, or told already)
            if key in self._scaled or key in self._eager or key in self._reported:
                continue
            self._reported.add(key)
            message = (
                f"The LossScaleOptimizer wrapping {type(_compat.inner_optimizer(scaler)).__name__} "
                "divides every gradient by its loss scale (2**15 at first), but no loss was "
                "scaled by it: the gradients are of the loss as it is, so each update is that "
                "many times too small (under Adam the scale cancels, but float16 gradients are "
                "left to underflow). Take the gradient of the scaled loss: "
                "grads = tape.gradient(optimizer.scale_loss(loss), variables)."
            )
            found.append(Finding("loss-not-scaled", message, step))
        return found
