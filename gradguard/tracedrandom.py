"""Random draws that give the same values every time: made once at a trace, or seeded by an int.

`tf.data` traces a map (filter, flat_map...) function once, into a graph: its Python runs once,
and what it computes is a constant of that graph. A draw from ``np.random`` or ``random`` there
is made once, so every element of every epoch gets the same "random" shift, flip or crop, and
the augmentation does nothing (`random-frozen-at-trace`; hunt23 p11: one shift for every
image, accuracy on shifted test digits 0.25 against 1.00 with ``tf.random.uniform``). Nothing
fails, and the graph holds only a constant, which looks like any other.

Under ``gradguard run`` the module-level draws of NumPy's legacy API (`_NUMPY`) and of Python's
`random` (`_PYTHON`) are wrapped: one called from the script's own code while a `tf.data`
function is traced (its graph, or one it is nested in, is named ``Dataset_<transformation>_``)
is reported at once, per place in the code. Draws that run at each element are silent: inside
`tf.py_function` or `tf.numpy_function`, in a generator given to `from_generator`, in a
`keras.utils.PyDataset`; so are draws made while building arrays before the pipeline.

The same draws made while a training step is traced (a `tf.function` in which an optimizer
update is applied: the guard's `Forensics.trained_graphs`) are drawn once too (hunt33 b08,
tensorflow#36715: a random shift drawn with ``np.random.randint`` in the step, the same for every
batch): noted as the step is traced and reported at the end of the run, when the graphs that
applied updates are known. Silent: draws in the script's ``build`` or ``__init__`` (a layer's
initial values), and in a function that updated nothing (a one-off sample).

Keras 3's random functions (`keras.random.uniform`, `randint`, `normal`, ...) given an integer
seed are stateless: the seed fixes the values, so every call draws the same ones (a random-shift
layer ported from ``tf.random.uniform(..., seed=s)`` to ``keras.random.randint(..., seed=s)``
shifted every batch alike: accuracy on shifted test images 0.38 against 0.98 with a
`keras.random.SeedGenerator`). Under ``gradguard run`` they are wrapped too: such a draw from
the script's code is reported while any function is traced (each run of the graph repeats it),
or when the same place draws with the same seed a second time eagerly. Silent: a
`SeedGenerator` or no seed; a seed that changes from call to call; one eager draw (a fixed
noise batch made once).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import random
import sys
import sysconfig
from collections.abc import Callable, Container
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gradguard.activations import current_graph, enclosing_graphs
from gradguard.findings import Finding, Report
from gradguard.patching import Patch

__all__ = ["watch"]

_NUMPY = (
    "rand", "randn", "randint", "random", "random_sample", "uniform", "normal", "choice",
    "shuffle", "permutation", "standard_normal", "binomial", "poisson", "beta", "exponential",
)  # fmt: skip
_PYTHON = ("random", "uniform", "randint", "randrange", "choice", "shuffle", "sample", "gauss")
_KERAS = (
    "uniform", "normal", "truncated_normal", "randint", "categorical", "dropout", "shuffle",
    "binomial", "beta", "gamma",
)  # fmt: skip
# tf.data names a function's graph ``Dataset_<transformation>_<function>``.
_TRANSFORMATIONS = ("flat_map", "map", "filter", "interleave", "scan", "reduce")
_AUTOGRAPH = os.path.join("tensorflow", "python", "autograph") + os.sep
_GENERATED = "__autograph_generated_file"
# Code that is not the script's: the standard library, installed packages, gradguard itself.
_PATHS = sysconfig.get_paths()
_LIBRARIES = tuple(
    os.path.realpath(p) + os.sep
    for p in {
        *(_PATHS[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
        os.path.dirname(os.path.abspath(__file__)),
    }
)


def _library(frame: Any) -> bool:
    return os.path.realpath(frame.f_code.co_filename).startswith(_LIBRARIES)


def _script_frame(frame: Any) -> Any:
    """Where the script drew (past autograph's own calls); None for a draw a library made.

    A function autograph converted runs from a generated file: it is named by the line that
    handed it to tf.data instead.
    """
    while frame is not None and _AUTOGRAPH in frame.f_code.co_filename:
        frame = frame.f_back
    if frame is None or _library(frame):
        return None
    while frame is not None and (_GENERATED in frame.f_code.co_filename or _library(frame)):
        frame = frame.f_back
    return frame


def _dataset_function() -> str | None:
    """The name of the `tf.data` function being traced now, if one is."""
    names = (str(getattr(g, "name", "")) for g in enclosing_graphs(current_graph()))
    return next((name for name in names if name.startswith("Dataset_")), None)


class _Draws:
    """Notes draws made from the script's code while a `tf.data` function is traced."""

    def __init__(self, report: Report):
        self.report = report
        self._seen: set[tuple[str, int]] = set()
        self._seeds: dict[tuple[str, int], int] = {}  # the integer seed last drawn with, eagerly
        self._in_traces: dict[tuple[str, int], tuple[str, list[Any]]] = {}  # (call, graphs)

    def wrap(self, module: str) -> Callable[[Any], Any]:
        def wrapping(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def draw(*args: Any, **kwargs: Any) -> Any:
                if tf.inside_function():  # (cheap; the rest only while tracing)
                    try:
                        self._note(f"{module}.{original.__name__}", sys._getframe(1))
                    except Exception as e:  # noqa: BLE001 - the user's script must go on
                        logging.warning("gradguard: could not judge a random draw: %s", e)
                return original(*args, **kwargs)

            return draw

        return wrapping

    def seeded(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """`original`, a Keras random function, noting the draws given an integer seed."""
        signature = inspect.signature(original)

        @functools.wraps(original)
        def draw(*args: Any, **kwargs: Any) -> Any:
            try:
                seed = signature.bind(*args, **kwargs).arguments.get("seed")
            except TypeError:
                seed = None  # (the call raises its own error below)
            if isinstance(seed, int) and not isinstance(seed, bool):
                try:
                    self._note_seeded(f"keras.random.{original.__name__}", seed, sys._getframe(1))
                except Exception as e:  # noqa: BLE001 - the user's script must go on
                    logging.warning("gradguard: could not judge a random draw: %s", e)
            return original(*args, **kwargs)

        return draw

    def _note_seeded(self, call: str, seed: int, frame: Any) -> None:
        frame = _script_frame(frame)
        if frame is None:
            return
        where = (frame.f_code.co_filename, frame.f_lineno)
        traced = tf.inside_function()
        again = self._seeds.get(where) == seed
        self._seeds[where] = seed
        if where in self._seen or not (traced or again):
            return
        self._seen.add(where)
        when = "in a traced function, which repeats it at every call" if traced else "again"
        message = (
            f"{call}(..., seed={seed}) at {os.path.basename(where[0])}:{where[1]} draws the same "
            f"values at every call ({when}): Keras 3's random functions given an integer seed "
            "are stateless, the seed fixes the values, so every step gets the same 'random' "
            "shift, noise or mask. Make a keras.random.SeedGenerator once (in the layer's "
            f"__init__: self.seed_generator = keras.random.SeedGenerator({seed})) and pass it "
            "as the seed."
        )
        details = {"call": call, "seed": seed, "file": where[0], "line": where[1]}
        self._add(Finding("random-frozen-at-trace", message, 0, details=details))

    def _add(self, finding: Finding) -> None:
        if self.report.add(finding):
            logging.warning("gradguard [%s]: %s", finding.code, finding.message)

    def _note(self, call: str, frame: Any) -> None:
        function, frame = _dataset_function(), _script_frame(frame)
        if frame is None:
            return
        where = (frame.f_code.co_filename, frame.f_lineno)
        if where in self._seen:
            return
        if function is None:  # (another function's trace: a training step's? `judge_steps`)
            if not _building(frame):  # (the graphs of every trace it was drawn in, once each)
                known = self._in_traces.setdefault(where, (call, []))[1]
                traced = enclosing_graphs(current_graph())
                known += [g for g in traced if not any(g is k for k in known)]
            return
        self._seen.add(where)
        rest = function.removeprefix("Dataset_")
        transformation = next((t for t in _TRANSFORMATIONS if rest.startswith(f"{t}_")), "")
        name = rest.removeprefix(f"{transformation}_") if transformation else rest
        message = (
            f"{call}(...) in the tf.data {transformation or 'dataset'} function {name!r} (given at "
            f"{os.path.basename(where[0])}:{where[1]}) is drawn once, as tf.data traces the "
            "function into a graph: every element of every epoch gets the same value, and the "
            "augmentation does nothing. Draw inside the graph instead: tf.random.uniform, "
            "tf.image.random_* ops, or a tf.random.Generator made outside the function."
        )
        details = {"call": call, "function": name, "file": where[0], "line": where[1]}
        self._add(Finding("random-frozen-at-trace", message, 0, details=details))

    def judge_steps(self, trained: Container[Any]) -> None:
        """Reports the draws made while tracing a function that applied updates (a step)."""
        for (file, line), (call, graphs) in self._in_traces.items():
            step = next((g for g in graphs if g in trained), None)
            if step is None or (file, line) in self._seen:
                continue
            self._seen.add((file, line))
            message = (
                f"{call}(...) at {os.path.basename(file)}:{line} runs while the training step "
                f"{step.name!r} is traced, not each time it runs: its value is a constant of "
                "the graph, so every step gets the same 'random' value, and the augmentation "
                "or noise does nothing. Draw inside the graph instead: tf.random.uniform, "
                "tf.image.random_* ops, or a tf.random.Generator made outside the function."
            )
            details = {"call": call, "function": step.name, "file": file, "line": line}
            self._add(Finding("random-frozen-at-trace", message, 0, details=details))


def _building(frame: Any) -> bool:
    """Whether a layer is making its weights, or the script an object: an initial value's draw.

    A ``build`` or ``add_weight`` anywhere below (Keras' own layers call the script's
    initializers from theirs), or the script's own ``__init__``.
    """
    while frame is not None:
        name = frame.f_code.co_name
        if name in ("build", "add_weight") or (name == "__init__" and not _library(frame)):
            return True
        frame = frame.f_back
    return False


def watch(report: Report, trained: Callable[[], Container[Any]] = tuple) -> Callable[[], None]:
    """Reports random draws of the script's that repeat their values (module docstring).

    Args:
      report: Where the findings go (and are logged).
      trained: The graphs in which a traced step applied updates, asked at the end (the
        guard's `Forensics.trained_graphs`; none by default).

    Returns:
      A function that judges the draws made in traced steps, then removes the wrappers.
    """
    draws = _Draws(report)
    patches = [Patch(np.random, name, draws.wrap("np.random")) for name in _NUMPY]
    patches += [Patch(random, name, draws.wrap("random")) for name in _PYTHON]
    patches += [Patch(keras.random, name, draws.seeded) for name in _KERAS]
    stack = contextlib.ExitStack()
    for patch in patches:
        stack.enter_context(patch)

    def close() -> None:
        try:
            draws.judge_steps(trained())
        finally:
            stack.close()

    return close
