"""Restores that put nothing into a model, which is then used untrained.

``tf.train.CheckpointManager(...).latest_checkpoint`` and ``tf.train.latest_checkpoint(dir)``
are None when the directory holds no checkpoint (a typo in it, another run's directory), and
``checkpoint.restore(None)`` then restores nothing, silently: it is how a first run starts from
scratch. A script that trains afterwards is that first run. One whose models are never trained
after it, nor restored from a checkpoint found, and whose weights are still those they had then,
evaluates or predicts with random initial weights (hunt27 b05: held-out MSE 0.96, against 0.02
with the right directory).

A Keras 3 model restored before it is built (a subclassed model has no variables until first
called) never gets the saved values either: TensorFlow defers them for variables made later,
but Keras 3 makes its own, which the deferral does not reach (hunt27 b09, hunt22 p05). Once
built, its weights are read back against the checkpoint: different, with no update since, they
never arrived. A model trained since cannot be read back; it trained from its initial values.

Both are `checkpoint-missing-variables`, judged when `gradguard run` ends (`watch`).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
from absl import logging

from gradguard import _compat, updating
from gradguard.checkpoint import files
from gradguard.checkpoint.compare import check
from gradguard.findings import Finding, Severity, listing

__all__ = ["RestoredNothing"]

# What each restore was, and the fix.
_NO_CHECKPOINT = (
    "given no checkpoint (restore(None)): CheckpointManager.latest_checkpoint and "
    "tf.train.latest_checkpoint are None when the directory holds none (a typo in it, another "
    "run's directory), so it restored nothing into {name}",
    "Point the manager at the directory the checkpoints were saved in, and check that the "
    "path is not None before restoring.",
)
_UNBUILT = (
    "made before {name} was built: a model has no variables until it is first called, and "
    "Keras 3 makes them where TensorFlow's deferred restore does not reach, so the saved "
    "values never arrived",
    "Build it first, model(batch) or model.build(input_shape), then restore.",
)


@dataclasses.dataclass
class _Restore:
    model: weakref.ref[Any]
    updates: dict[int, int]  # the update counts of its optimizer and the trainers then, by id
    weights: list[np.ndarray]  # its weights then (none when it was not built)


class RestoredNothing:
    """Restores of no checkpoint, or into unbuilt models: judged at the end (`finish`).

    Args:
      trainers: The optimizers that have trained so far (`gradguard run`'s guard knows them;
        a model's compiled one is looked at anyway).
    """

    def __init__(self, trainers: Callable[[], Iterable[Any]] = tuple) -> None:
        self._trainers = trainers
        self._restores: list[list[_Restore]] = []  # ``restore(None)``: the models it reached
        self._unbuilt: list[tuple[str, _Restore, dict[str, weakref.ref[Any]]]] = []

    def restored(self, path: Any, objects: dict[str, Any]) -> bool:
        """A restore of `path` into `objects`; whether it can restore nothing (not validated).

        A later restore into a model (of a checkpoint found, the model built) voids what the
        earlier ones left it: it is restored now. Never raises: the user's script goes on.
        """
        try:
            return self._restored(path, objects)
        except Exception as e:  # noqa: BLE001 - the user's script must go on
            logging.warning("gradguard: could not note the restore of %s: %s", path, e)
            return False

    def _restored(self, path: Any, objects: dict[str, Any]) -> bool:
        models = [obj for obj in objects.values() if isinstance(obj, keras.Model)]
        if path is None:
            self._restores.append([self._snapshot(m) for m in models if m.built and m.weights])
            return True
        ids = {id(obj) for obj in objects.values()}
        self._restores = [r for r in self._restores if not ids & {id(m.model()) for m in r}]
        self._unbuilt = [u for u in self._unbuilt if id(u[1].model()) not in ids]
        unbuilt = [m for m in models if not m.built]
        resolved = files.resolve(path) if unbuilt else ""  # (missing: validation says so)
        refs = {key: weakref.ref(obj) for key, obj in objects.items()}
        self._unbuilt += [(resolved, self._snapshot(m), refs) for m in unbuilt]
        return bool(unbuilt)

    def finish(self, add: Callable[[Finding], None]) -> None:
        """Adds the findings for models the restores never reached and nothing trained since.

        Of a ``restore(None)``, one model trained makes it a first run's (a model beside it may
        be fixed on purpose: random network distillation's random target).
        """
        for restores in self._restores:
            models = [(m, r) for r in restores if (m := r.model()) is not None]
            if len(models) == len(restores) and not any(self._trained(*mr) for mr in models):
                for model, _ in models:
                    add(_finding(model, [v.path for v in model.weights], _NO_CHECKPOINT))
        for path, restore, refs in self._unbuilt:
            model = restore.model()
            if model is None or not model.built:
                continue
            trained = self._trained(model, restore)
            objects = {key: obj for key, ref in refs.items() if (obj := ref()) is not None}
            try:
                lost = _not_arrived(path, objects, trained)
            except Exception as e:  # noqa: BLE001 - never break the end of the run
                logging.warning("gradguard: could not read back %s against %s: %s", model, path, e)
                continue
            if lost:
                add(_finding(model, lost, _UNBUILT, trained))
        self._restores, self._unbuilt = [], []

    def _optimizers(self, model: Any) -> list[Any]:
        compiled = getattr(model, "optimizer", None)
        return [*self._trainers(), *([compiled] if compiled is not None else [])]

    def _snapshot(self, model: Any) -> _Restore:
        updates = {id(o): updating.updates_made(o) for o in self._optimizers(model)}
        weights = [np.array(w) for w in model.get_weights()] if model.built else []
        return _Restore(weakref.ref(model), updates, weights)

    def _trained(self, model: Any, restore: _Restore) -> bool:
        return _trained_since(model, restore, self._optimizers(model))


def _not_arrived(path: str, objects: dict[str, Any], trained: bool) -> list[str]:
    """The names of the model variables among `objects` whose values differ from `path`'s.

    All of those `path` holds, once `trained` since: their values cannot be compared any more,
    and Keras 3 gives none of them the saved value (TF 2.21, Keras 3.15: dense, convolutional
    and batch-normalization layers alike).
    """
    checked = check(path, objects, build=False, plain=True, learning_rate=False)
    assert checked.read is not None
    return [
        value.name
        for value in checked.values
        if value.variable is not None
        and value.saved is not None
        and not value.optimizer
        and (trained or not np.array_equal(checked.read(value.key), np.asarray(value.variable)))
    ]


def _finding(
    model: Any, names: list[str], restore: tuple[str, str], trained: bool = False
) -> Finding:
    """`checkpoint-missing-variables` for variables of `model` (`names`) a restore never filled."""
    what, fix = restore
    what = what.format(name=model.name)
    variables = f"{len(names)} variables ({listing(names)})"
    if trained:
        told = f"{model.name} then trained from the initial values of its {variables}"
    else:
        told = f"{model.name} was not trained after it: its {variables} keep their initial values"
    message = f"A checkpoint restore was {what}; {told}. {fix}"
    return Finding("checkpoint-missing-variables", message, -1, tuple(names), Severity.ERROR)


def _trained_since(model: Any, restore: _Restore, optimizers: list[Any]) -> bool:
    """Whether `model` was updated, or its weights set otherwise, since the restore."""
    variables = {id(v) for v in model.trainable_variables}
    for optimizer in optimizers:
        trains = optimizer is getattr(model, "optimizer", None) or variables & {
            id(v) for v in _compat.optimizer_variables(optimizer)
        }
        if trains and updating.updates_made(optimizer) > restore.updates.get(id(optimizer), 0):
            return True
    if not restore.weights:  # (not built then: the optimizers alone tell)
        return False
    now = model.get_weights()
    return len(now) != len(restore.weights) or any(
        not np.array_equal(a, b) for a, b in zip(now, restore.weights)
    )
