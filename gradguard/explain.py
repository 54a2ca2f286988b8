"""The troubleshooting guide shipped in the package: its sections, and the pointer to them.

`gradguard explain CODE` prints a code's section (`guide_section`); every finding's message
ends with a pointer there (`with_pointer`).
"""

from __future__ import annotations

import re
from importlib import resources

__all__ = ["GUIDE", "guide_section", "pointer", "with_pointer"]

# The troubleshooting guide, shipped in the package: one section per code, headed by the code.
# `gradguard explain CODE` prints a section; every finding's message points there.
GUIDE = "guide.md"
_POINTER = re.compile(r" \(see: gradguard explain [a-z-]+\)")


def pointer(code: str) -> str:
    """The short pointer every finding's message ends with: ``(see: gradguard explain code)``."""
    return f"(see: gradguard explain {code})"


def guide_section(code: str) -> str:
    """The troubleshooting guide's section for `code` (what ``gradguard explain`` prints).

    Raises:
      KeyError: for a code the guide has no section for.
    """
    text = resources.files("gradguard").joinpath(GUIDE).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(code)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise KeyError(code)
    return match.group(0).rstrip() + "\n"


def with_pointer(message: str, code: str) -> str:
    """`message` ending with the pointer to its guide section, exactly once.

    A pointer already in the message (a finding rebuilt with `dataclasses.replace`, or one with
    text added after it) is moved to the end. It goes before a final period, so the message
    still reads as one sentence: ``... after tape.gradient (see: gradguard explain missing-apply).``
    """
    text = _POINTER.sub("", message).rstrip()
    if text.endswith("."):
        return f"{text[:-1]} {pointer(code)}."
    return f"{text} {pointer(code)}" if text else pointer(code)
