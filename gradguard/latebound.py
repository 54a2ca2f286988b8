"""Functions made in a loop that all read its variable's last value (`loop-variable-late-bound`).

A Python closure reads the variables of the scope that made it when it is called, not when it
is made. Lambdas made in a loop over quantiles, ``[lambda y, f: pinball(q, y, f) for q in qs]``,
are called by `fit` after the loop ended: every one reads the last ``q``, so every output
learns the same quantile (keras#12939: "the model is not getting the correct result if feed
the loss list"). `Lambda` layers made in a loop over slices, ``Lambda(lambda x: x[..., s:e])``,
all take the last slice (tensorflow#62060). Nothing fails: the model trains, on the wrong task.

Read from the model as it first trains (with `linearstack`): its `Lambda` layers' functions and
its compiled losses (a list or a dict of them). Two or more made by one `lambda` or `def` that
share their enclosing variables (the same cells) and defaults are one function; found when
their source shows them made inside a loop that assigns a variable they read (its target, or
a name set in its body). Bound when made (``lambda y, f, q=q: ...``, `functools.partial`), or
reading no variable of the loop, they stay silent; so do functions whose source cannot be read.
"""

from __future__ import annotations

import ast
import functools
import linecache
from collections.abc import Iterator
from typing import Any

import keras

from gradguard import _compat
from gradguard.findings import Finding, listing

__all__ = ["finding"]

_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp)
_FUNCTIONS = (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)


def finding(model: Any, step: int) -> Finding | None:
    """`loop-variable-late-bound` for `model`'s Lambda layers or losses made so."""
    for role, named in _functions(model):
        groups: dict[Any, list[str]] = {}
        for name, fn in named:
            code = getattr(fn, "__code__", None)
            if code is not None and fn.__closure__:
                defaults = (fn.__defaults__, tuple(sorted((fn.__kwdefaults__ or {}).items())))
                key = (code, tuple(map(id, fn.__closure__)), repr(defaults))
                groups.setdefault(key, []).append(name)
        for (code, _, _), names in groups.items():
            fn = dict(named)[names[0]]
            late = _loop_assigned(code) & set(code.co_freevars) if len(names) > 1 else set()
            if late:
                return _finding(role, names, fn, sorted(late), step)
    return None


def _functions(model: Any) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """(role, [(name, function)]): the model's Lambda layers, its compiled losses."""
    layers = [
        layer for layer in _compat.flatten_layers(model) if isinstance(layer, keras.layers.Lambda)
    ]
    yield "Lambda layers", [(layer.name, layer.function) for layer in layers]
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        yield "losses", [(f"{name!r}", fn) for name, fn in loss.items() if callable(fn)]
    elif isinstance(loss, (list, tuple)):
        names = list(getattr(model, "output_names", None) or [])
        names = names if len(names) == len(loss) else [f"output {i}" for i in range(len(loss))]
        yield "losses", [(name, fn) for name, fn in zip(names, loss) if callable(fn)]


def _loop_assigned(code: Any) -> set[str]:
    """Names assigned by the loops around the `lambda` or `def` that made `code` (its source)."""
    made = [node for node in _parents(code.co_filename) if _made(node, code)]
    if len(made) != 1:
        return set()  # (no source, or two functions on one line: not told apart)
    names: set[str] = set()
    for loop in _parents(code.co_filename)[made[0]]:
        for node in ast.walk(loop):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _made(node: ast.AST, code: Any) -> bool:
    if not isinstance(node, _FUNCTIONS) or node.lineno != code.co_firstlineno:
        return False
    return isinstance(node, ast.Lambda) == (code.co_name == "<lambda>")


@functools.lru_cache(maxsize=16)
def _parents(filename: str) -> dict[ast.AST, list[ast.AST]]:
    """Each function node of the file's source -> the loops it is made in, inner last."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return {}
    loops: dict[ast.AST, list[ast.AST]] = {}

    def visit(node: ast.AST, around: list[ast.AST]) -> None:
        if isinstance(node, _FUNCTIONS):
            loops[node] = around
            around = []  # (a loop outside a function it makes is not the function's)
        elif isinstance(node, _LOOPS + (ast.GeneratorExp,)):
            around = [*around, node]
        for child in ast.iter_child_nodes(node):
            visit(child, around)

    visit(tree, [])
    return loops


def _finding(role: str, names: list[str], fn: Any, late: list[str], step: int) -> Finding:
    values = {}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
        if name in late:
            try:
                values[name] = repr(cell.cell_contents)
            except ValueError:  # (an empty cell)
                values[name] = "unset"
    read = " and ".join(f"{name} ({value} now)" for name, value in values.items())
    bound = ", ".join(f"{name}={name}" for name in late)
    message = (
        f"The {role} {listing(names)} are one function, made in a loop at "
        f"{fn.__code__.co_filename}:{fn.__code__.co_firstlineno}, that reads {read} when it is "
        "called, after the loop ended: every one uses the loop's last value, so they all "
        "compute the same thing (one quantile, one slice). Bind the value as each is made: "
        f"a default argument (lambda ..., {bound}: ...) or functools.partial."
    )
    details = {"role": role, "names": names, "variables": late}
    return Finding("loop-variable-late-bound", message, step, details=details)
