"""`Patch`: one attribute of a class or module replaced while anyone needs it, then restored.

The mechanism under every process-wide change gradguard makes (`gradguard.instrument`) and the
restores a script makes (`gradguard.checkpoint.watch`).
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
        # The last attribute wrapped and its wrapper: a guard enters its patches around every
        # call, and `functools.wraps` copying a method's attributes each time cost tens of us.
        self._wrapped: tuple[Any, Any] = (_MISSING, None)

    @property
    def active(self) -> bool:
        """Whether the wrapper is installed now."""
        return self._users > 0

    def __enter__(self) -> Patch:
        if self._users == 0:
            self._own = vars(self.owner).get(self.name, _MISSING)
            original = getattr(self.owner, self.name)
            if self._wrapped[0] is not original:
                self._wrapped = (original, self._wrap(original))
            setattr(self.owner, self.name, self._wrapped[1])
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
