"""A restore given no checkpoint (``restore(None)``), and a model then used untrained.

``tf.train.CheckpointManager(...).latest_checkpoint`` and ``tf.train.latest_checkpoint(dir)``
are None when the directory holds no checkpoint (a typo in it, another run's directory), and
``checkpoint.restore(None)`` then restores nothing, silently: it is how a first run starts from
scratch. A script that trains afterwards is that first run. One whose model is never trained
after it, nor restored from a checkpoint found, and whose weights are still those it had then,
evaluates or predicts with its random initial weights (hunt27 b05: held-out MSE 0.96, against
0.02 with the right directory): `checkpoint-missing-variables`, judged when `gradguard run`
ends (`watch`).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from gradguard import updating
from gradguard.findings import Finding, Severity, listing

__all__ = ["RestoredNothing"]


@dataclasses.dataclass
class _Restore:
    model: weakref.ref[Any]
    updates: int  # its optimizer's update count at the restore (0: none)
    weights: list[np.ndarray]  # its weights then


class RestoredNothing:
    """The models a ``restore(None)`` reached, judged at the end (`finish`)."""

    def __init__(self) -> None:
        self._restores: list[list[_Restore]] = []  # per restore, the models it reached

    def restored(self, objects: dict[str, Any]) -> None:
        """``restore(None)`` on a checkpoint of `objects` (its children)."""
        restores = []
        for model in objects.values():
            if isinstance(model, keras.Model) and model.built and model.weights:
                updates = updating.updates_made(getattr(model, "optimizer", None))
                weights = [np.array(w) for w in model.get_weights()]
                restores.append(_Restore(weakref.ref(model), updates, weights))
        self._restores.append(restores)

    def filled(self, objects: dict[str, Any]) -> None:
        """A restore of a checkpoint found, into `objects`: their models are restored now."""
        models = {id(obj) for obj in objects.values()}
        self._restores = [r for r in self._restores if not models & {id(m.model()) for m in r}]

    def finish(self, add: Callable[[Finding], None]) -> None:
        """Adds the finding for the models of each restore none of which changed since.

        One that trained makes the restore a first run's (a model beside it may be fixed on
        purpose: random network distillation's random target).
        """
        for restores in self._restores:
            models = [(r.model(), r) for r in restores]
            if any(m is None or _trained_since(m, r) for m, r in models):
                continue
            for model, _ in models:
                add(_finding(model))
        self._restores = []


def _finding(model: Any) -> Finding:
    """`checkpoint-missing-variables` for `model`, restored from no checkpoint, untrained."""
    names = [w.path for w in model.weights]
    message = (
        "A checkpoint restore was given no checkpoint (restore(None)): "
        "CheckpointManager.latest_checkpoint and tf.train.latest_checkpoint are None when the "
        "directory holds none (a typo in it, another run's directory). It restored nothing "
        f"into {model.name}, which was not trained after it: its {len(names)} variables "
        f"({listing(names)}) keep their random initial values. Point the manager at the "
        "directory the checkpoints were saved in, and check that the path is not None before "
        "restoring."
    )
    return Finding("checkpoint-missing-variables", message, -1, tuple(names), Severity.ERROR)


def _trained_since(model: Any, restore: _Restore) -> bool:
    """Whether `model` was updated, or its weights set otherwise, since the restore."""
    if updating.updates_made(getattr(model, "optimizer", None)) > restore.updates:
        return True
    now = model.get_weights()
    return len(now) != len(restore.weights) or any(
        not np.array_equal(a, b) for a, b in zip(now, restore.weights)
    )
