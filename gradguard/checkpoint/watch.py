"""Watching the restores an unmodified script makes (for `gradguard run`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from absl import logging

from gradguard import instrument
from gradguard.checkpoint import files, graph
from gradguard.checkpoint.compare import check
from gradguard.findings import Report

__all__ = ["watch_restores"]


def _objects_of(owner: Any) -> dict[str, Any]:
    """What a restore call restores into: a checkpoint's children, or the Keras model."""
    if isinstance(owner, tf.train.Checkpoint):
        return {k: v for k, v in graph.children(owner).items() if k != "save_counter"}
    return {"model": owner}


class _Watcher:
    """The hook `instrument.watching_restores` calls for each restore: validate, then restore."""

    def __init__(self, report: Report):
        self.report = report

    def __call__(self, owner: Any, path: Any, restore: Callable[[], Any]) -> Any:
        try:
            root = owner if isinstance(owner, tf.train.Checkpoint) else None
            checked = check(files.resolve(path), _objects_of(owner), build=False, root=root)
            for finding in checked.report.findings:
                if self.report.add(finding):
                    logging.warning("gradguard [%s]: %s", finding.code, finding.message)
        except Exception as e:  # noqa: BLE001 - the user's script must go on
            logging.warning("gradguard: could not validate checkpoint %s: %s", path, e)
        return restore()


def watch_restores(report: Report) -> Callable[[], None]:
    """Validates every checkpoint restore and `load_weights` call made from now on.

    `tf.train.Checkpoint.restore` / `read` and `keras.Model.load_weights` are wrapped: before each
    call the checkpoint is validated against the objects it restores into and the findings are
    added to `report` (and logged); the call itself then runs unchanged, so the script behaves
    exactly as without gradguard. A validation that fails is logged and never breaks the script.

    Args:
      report: Where the findings go.

    Returns:
      A function that removes the wrappers.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(instrument.watching_restores(_Watcher(report)))
    return stack.close
