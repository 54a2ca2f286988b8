"""Routing every checkpoint restore through hooks, to validate it as it runs (`watch`).

`tf.train.Checkpoint.restore` / `read` and `keras.Model.load_weights` are each wrapped by an
`instrument.Patch` while a hook is installed (`watching_restores`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf

from gradguard import instrument

__all__ = ["RestoreHook", "watching_restores"]

RestoreHook = Callable[[Any, Any, Callable[[], Any], bool], Any]
"""``hook(owner, path, restore, skip_mismatch)``, called instead of a restore: it must call
``restore()`` once and return its result. `owner` is the `tf.train.Checkpoint` or Keras model
restored into; `path` may be None; `skip_mismatch`, what `load_weights` was asked."""

_RESTORE_HOOKS: list[RestoreHook] = []
_RESTORE_PATCHES: list[instrument.Patch] = []
_restoring = threading.local()  # `Checkpoint.restore` calls `read`: one restore, seen once


def _through_hooks(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def restore(owner: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            return original(owner, *args, **kwargs)

        # `save_path` (Checkpoint.restore/read) or `filepath` (load_weights), however passed.
        path = args[0] if args else kwargs.get("save_path", kwargs.get("filepath"))
        if getattr(_restoring, "on", False) or not _RESTORE_HOOKS:  # (a path None too)
            return call()
        # `load_weights(filepath, skip_mismatch=False)`: mismatched shapes skipped on request.
        skip_mismatch = isinstance(owner, keras.Model) and bool(
            args[1] if len(args) > 1 else kwargs.get("skip_mismatch", False)
        )
        _restoring.on = True
        try:
            for hook in reversed(_RESTORE_HOOKS):  # the first hook installed runs innermost
                call = functools.partial(hook, owner, path, call, skip_mismatch)
            return call()
        finally:
            _restoring.on = False

    return restore


@contextlib.contextmanager
def watching_restores(hook: RestoreHook) -> Iterator[None]:
    """Routes every checkpoint restore and `load_weights` call through `hook` while inside.

    Example: ``with watching_restores(hook): model.load_weights("model.weights.h5")``.
    """
    if not _RESTORE_PATCHES:
        _RESTORE_PATCHES.extend(
            instrument.Patch(owner, name, _through_hooks)
            for owner, name in (
                (tf.train.Checkpoint, "restore"),
                (tf.train.Checkpoint, "read"),
                (keras.Model, "load_weights"),
            )
        )
    with contextlib.ExitStack() as patches:
        for patch in _RESTORE_PATCHES:
            patches.enter_context(patch)
        _RESTORE_HOOKS.append(hook)
        try:
            yield
        finally:
            _RESTORE_HOOKS.remove(hook)
