"""Callbacks that keep the worst epoch (`monitor-mode-inverted`) or watch nothing logged.

Keras' `EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau` watch a logged quantity
(``monitor``) and are told whether lower or higher is better (``mode``). Copied from a
``val_loss`` example with ``mode="min"`` and switched to ``val_accuracy``, the callback takes
the least accurate epoch for the best: `EarlyStopping` stops while accuracy still rises and
``restore_best_weights`` puts the worst weights back (test accuracy 0.72 against 0.98),
`ModelCheckpoint(save_best_only=True)` keeps the worst epoch on disk, and `ReduceLROnPlateau`
lowers the rate while the model improves. Nothing fails.

Read under ``gradguard run`` when `fit` returns: the explicit ``mode`` ("min" or "max") of
Keras' three callbacks against the direction of what they watch, known exactly: the loss
(``loss``, ``val_loss``) is better lower; a compiled metric is better as its Keras class says
(``_direction``, what ``mode="auto"`` reads: accuracy, AUC, precision up; an error down). Not
judged: a metric of the user's own (a function, or a subclass, which may turn the direction
around: an error rate from an accuracy), an output's loss (an adversary's head is trained to
raise it: domain-adversarial training), and a user's own callback.

And a callback told to watch a name `fit` never logs (``monitor="val_mse"`` where the loss is
logged as ``val_loss``, a metric's name mistyped) does nothing at all: Keras warns each epoch
and goes on, `ReduceLROnPlateau` never lowers the rate, `EarlyStopping` never stops and
`ModelCheckpoint(save_best_only=True)` never saves (`monitor-not-logged`). Told when `fit`
returns, from its history: the name is not among the logged ones, and the callback never saw a
value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

import keras

from gradguard.findings import Finding, listing

__all__ = ["KEEP_BEST", "findings", "keeps_best", "metrics_of"]


def metrics_of(model: Any) -> Iterator[Any]:
    """The model's metrics, those `compile` wraps in its containers included."""
    for metric in getattr(model, "metrics", []):
        yield metric
        yield from getattr(metric, "metrics", [])  # (CompileMetrics, MetricsList)


def _better(model: Any, monitor: str) -> str | None:
    """Which way `monitor` (a name `fit` logs) gets better: "min", "max", or None if not known.

    The loss is better lower; a metric as its Keras class says, where that class is Keras' own
    (a subclass may turn it around: an error rate from an accuracy, a PSNR from an MSE). An
    output's loss is not judged: an adversary's head is trained to raise it.
    """
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    outputs = getattr(model, "output_names", None) or []  # (several: "<output>_<metric>")
    names = {name} | {name.removeprefix(f"{o}_") for o in outputs if name.startswith(f"{o}_")}
    metrics = [m for m in metrics_of(model) if m.name in names - {"loss"}]
    directions = {str(getattr(m, "_direction", "")) for m in metrics}
    if len(directions) != 1 or not all(_keras_own(m) for m in metrics):
        return None
    return {"up": "max", "down": "min"}.get(directions.pop())


def _keras_own(metric: Any) -> bool:
    return type(metric).__module__.split(".")[0] == "keras"


KEEP_BEST = (
    keras.callbacks.EarlyStopping,
    keras.callbacks.ModelCheckpoint,
    keras.callbacks.ReduceLROnPlateau,
)


def keeps_best(callback: Any) -> str | None:
    """Which of `KEEP_BEST` `callback` is, if it acts on its best epoch; else None.

    A `ModelCheckpoint` acts on it only with ``save_best_only`` (else it saves every epoch).
    """
    kinds = [kind for kind in KEEP_BEST if isinstance(callback, kind)]
    if not kinds or (kinds[0] is keras.callbacks.ModelCheckpoint and not callback.save_best_only):
        return None
    return kinds[0].__name__


_EFFECTS = {  # what the worst epoch taken for the best does, by callback
    "EarlyStopping": "stops training while the model still improves",
    "ModelCheckpoint": "saves the worst epoch as the best (save_best_only)",
    "ReduceLROnPlateau": "cuts the learning rate while the model improves",
}


_NEVER = {  # what a callback whose quantity never came does, by callback
    "EarlyStopping": "never stops early, nor keeps a best epoch's weights",
    "ModelCheckpoint": "never saves a best epoch (save_best_only)",
    "ReduceLROnPlateau": "never lowers the learning rate",
}


def findings(model: Any, callbacks: Any, history: Any, step: int) -> list[Finding]:
    """`monitor-mode-inverted` and `monitor-not-logged` for `fit`'s `callbacks`."""
    found = []
    logged = sorted(getattr(history, "history", None) or {})
    for callback in getattr(callbacks, "callbacks", callbacks) or ():
        loss = getattr(model, "loss", None)
        if logged and (missing := _not_logged(callback, loss, logged, step)) is not None:
            found.append(missing)
            continue
        # (Keras' callbacks that keep a best epoch: a user's own may mean other things by these)
        keeps = [kind for kind in KEEP_BEST if isinstance(callback, kind)]
        monitor, mode = getattr(callback, "monitor", None), getattr(callback, "mode", None)
        if not keeps or not isinstance(monitor, str) or mode not in ("min", "max"):
            continue
        better = _better(model, monitor)
        if better is None or better == mode:
            continue
        kind, effect = type(callback).__name__, _EFFECTS[keeps[0].__name__]
        if getattr(callback, "restore_best_weights", False):
            effect += ", and puts the worst epoch's weights back at the end"
        message = (
            f"{kind}(monitor={monitor!r}, mode={mode!r}) takes the epoch with the "
            f"{'lowest' if mode == 'min' else 'highest'} {monitor} for the best, but "
            f"{monitor} is better {'higher' if better == 'max' else 'lower'}: it {effect}. "
            f"Pass mode={better!r}, or leave mode='auto': Keras infers it from the metric."
        )
        details = {"callback": kind, "monitor": monitor, "mode": mode}
        found.append(Finding("monitor-mode-inverted", message, step, details=details))
    return found


# Names a metric is asked for by, and the name Keras 3 logs it under.
_ALIASES = {"acc": "accuracy", "mse": "mean_squared_error", "mae": "mean_absolute_error"}


def _not_logged(callback: Any, loss: Any, logged: list[str], step: int) -> Finding | None:
    """`monitor-not-logged` if a Keras callback watched a name `fit` never logged.

    Keras warns at each epoch and goes on: the callback never saw a value (its ``best`` is still
    None; a user's callback that adds the name to the logs would have given it one).
    """
    keeps, monitor = keeps_best(callback), getattr(callback, "monitor", None)
    if keeps is None or not isinstance(monitor, str) or monitor in logged:
        return None
    if getattr(callback, "best", 0) is not None:
        return None
    kind = type(callback).__name__
    prefix = "val_" if monitor.startswith("val_") else ""
    name = monitor.removeprefix(prefix)
    same_data = [n.removeprefix(prefix) for n in logged if n.startswith(prefix)]
    if loss in (name, _ALIASES.get(name)):  # the compiled loss, asked for by its own name
        name = "loss"
    name = name if name in same_data else _ALIASES.get(name, name)
    close = [name] if name in same_data else difflib.get_close_matches(name, same_data, 1, 0.5)
    hint = f"monitor={prefix + close[0]!r}, probably" if close else "one of the names fit logs"
    message = (
        f"{kind}(monitor={monitor!r}) watches a name fit never logged (it logged "
        f"{listing(logged, 6)}): it {_NEVER[keeps]}, and Keras only warns. "
        f"Pass {hint}: a compiled loss is logged as 'loss' and 'val_loss', a metric by its "
        "name, with 'val_' for the validation data."
    )
    details = {"callback": kind, "monitor": monitor, "logged": logged}
    return Finding("monitor-not-logged", message, step, details=details)
