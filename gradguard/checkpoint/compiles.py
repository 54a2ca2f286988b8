"""The learning rate a restore made before `compile` puts into the optimizer `compile` attaches.

TensorFlow restores saved values into objects attached after the restore (deferred). A model
restored from the checkpoint of a compiled model before its own `compile` gets, as `compile`
attaches the optimizer, the saved optimizer's learning rate and iteration count, whatever rate
that optimizer was made with: stage 2 asks for `Adam(1e-4)` and trains at stage 1's 1e-3. Nothing
in the optimizer remembers the rate it was made with, so while restores are watched, `compile`
is watched too: for a model a restore reached before it had an optimizer, a learning rate that
`compile` itself changed is handed to the watcher (`gradguard.checkpoint.watch`), which judges it
at the end like a rate restored into an existing optimizer.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from absl import logging

from gradguard.checkpoint.values import is_optimizer
from gradguard.patching import Patch

__all__ = ["CompileWatch", "rate"]

# Keras' base trainer, which defines `compile`: patched there, not in a subclass, so Keras'
# own test of a custom `compile` (`type(model).compile != Trainer.compile`, which decides
# whether `load_model` compiles what it loads) still finds none.
_DEFINES_COMPILE = next(c for c in keras.Model.__mro__ if "compile" in vars(c))

# ``on_change(path, key, optimizer, asked, saved, iterations)``: `compile` of a model restored
# from `path` gave `optimizer` (named `key` in messages) the saved rate over the asked one.
OnChange = Callable[[str, str, Any, float, float, int], None]


def rate(optimizer: Any) -> float | None:
    """The optimizer's learning rate, if it is a value (not a schedule)."""
    learning_rate = optimizer.learning_rate
    return float(np.asarray(learning_rate)) if isinstance(learning_rate, keras.Variable) else None


class CompileWatch:
    """Models restored into before they had an optimizer, and the rate their `compile` changed.

    Args:
      on_change: Called for each `compile` that changed the given optimizer's rate.
    """

    def __init__(self, on_change: OnChange):
        self._on_change = on_change
        self._restored: list[tuple[weakref.ref[Any], str, str]] = []  # (model, path, key)
        self.patch = Patch(_DEFINES_COMPILE, "compile", self._wrap)

    def restored(self, objects: dict[str, Any], path: str) -> None:
        """Notes the models among what a restore restored into (by name) with no optimizer yet."""
        for name, obj in objects.items():
            if isinstance(obj, keras.Model) and getattr(obj, "optimizer", None) is None:
                self._restored.append((weakref.ref(obj), path, f"{name}/optimizer"))

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def compile(model: Any, *args: Any, **kwargs: Any) -> Any:
            given = args[0] if args else kwargs.get("optimizer")
            # (an optimizer given by name asked for no rate of its own)
            asked = rate(given) if is_optimizer(given) else None
            result = original(model, *args, **kwargs)
            if asked is not None:
                try:
                    self._compiled(model, asked)
                except Exception as e:  # noqa: BLE001 - the user's script must go on
                    logging.warning("gradguard: could not read the compiled learning rate: %s", e)
            return result

        return compile

    def _compiled(self, model: Any, asked: float) -> None:
        optimizer = model.optimizer
        now = rate(optimizer)
        if now is None or np.float32(now) == np.float32(asked):
            return
        for ref, path, key in reversed(self._restored):  # (the latest restore into the model)
            if ref() is model:
                iterations = int(np.asarray(optimizer.iterations))
                self._on_change(path, key, optimizer, asked, now, iterations)
                return
