"""Every process-wide change gradguard makes to TensorFlow and Keras, each undone on exit.

gradguard watches code it did not write (the guard decorator, ``gradguard run``) by wrapping a
few TensorFlow and Keras methods. Each wrapping is a `Patch`: a context manager that installs the
wrapper when its first user enters and puts the original back when its last user leaves, so
nested and repeated uses (a guarded function calling another, two guards stacked) compose and
nothing stays patched after gradguard is done.

Example:
  >>> calls = []
  >>> def wrap(original):
  ...     def gradient(tape, *args, **kwargs):
  ...         calls.append(1)
  ...         return original(tape, *args, **kwargs)
  ...     return gradient
  >>> with Patch(tf.GradientTape, "gradient", wrap):  # doctest: +SKIP
  ...     ...  # every tape.gradient call in the block goes through `gradient`
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["Patch"]

_MISSING = object()


class Patch:
    """Replaces ``owner.name`` by ``wrap(original)`` while at least one user is inside.

    Args:
      owner: The class (or module) whose attribute is replaced.
      name: The attribute.
      wrap: Returns the replacement, given the attribute as it was (the function to call on).

    The same `Patch` object may be entered several times, nested or from several guards: the
    wrapper is installed once and removed when the last one exits. The attribute is restored
    exactly: an inherited method is removed from `owner` again rather than copied onto it.
    """

    def __init__(self, owner: Any, name: str, wrap: Callable[[Any], Any]):
        self.owner = owner
        self.name = name
        self._wrap = wrap
        self._users = 0
        self._own: Any = _MISSING  # owner's own attribute before the patch, if it had one

    @property
    def active(self) -> bool:
        """Whether the wrapper is installed now."""
        return self._users > 0

    def __enter__(self) -> Patch:
        if self._users == 0:
            self._own = vars(self.owner).get(self.name, _MISSING)
            setattr(self.owner, self.name, self._wrap(getattr(self.owner, self.name)))
        self._users += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._users -= 1
        if self._users:
            return
        if self._own is _MISSING:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, self._own)
        self._own = _MISSING


# --- restores
# `tf.train.Checkpoint.restore` / `read` and `keras.Model.load_weights`, for watching the
# restores a script makes (`gradguard.checkpoint.watch_restores`, under `gradguard run`).
# Imported here, at the end, so that this section stays one block.

import contextlib  # noqa: E402
import functools  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402

__all__ += ["RestoreHook", "watching_restores"]

RestoreHook = Callable[[Any, Any, Callable[[], Any]], Any]
"""``hook(owner, path, restore)``, called instead of a restore: it must call ``restore()`` once
and return its result. `owner` is the `tf.train.Checkpoint` or Keras model restored into."""

_RESTORE_HOOKS: list[RestoreHook] = []
_RESTORE_PATCHES: list[Patch] = []
_restoring = threading.local()  # `Checkpoint.restore` calls `read`: one restore, seen once


def _through_hooks(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def restore(owner: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            return original(owner, *args, **kwargs)

        # `save_path` (Checkpoint.restore/read) or `filepath` (load_weights), however passed.
        path = args[0] if args else kwargs.get("save_path", kwargs.get("filepath"))
        if path is None or getattr(_restoring, "on", False) or not _RESTORE_HOOKS:
            return call()
        _restoring.on = True
        try:
            for hook in reversed(_RESTORE_HOOKS):  # the first hook installed runs innermost
                call = functools.partial(hook, owner, path, call)
            return call()
        finally:
            _restoring.on = False

    return restore


@contextlib.contextmanager
def watching_restores(hook: RestoreHook) -> Iterator[None]:
    """Routes every checkpoint restore and `load_weights` call through `hook` while inside.

    Example:
      >>> def hook(owner, path, restore):
      ...     print("restoring", path)
      ...     return restore()
      >>> with watching_restores(hook):  # doctest: +SKIP
      ...     model.load_weights("model.weights.h5")
    """
    if not _RESTORE_PATCHES:
        import keras  # here: importing this module must not import TensorFlow
        import tensorflow as tf

        _RESTORE_PATCHES.extend(
            Patch(owner, name, _through_hooks)
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
