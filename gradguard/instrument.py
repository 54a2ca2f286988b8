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
