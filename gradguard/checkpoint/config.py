"""Optimizer configuration: recorded beside a checkpoint, compared when it is restored.

What the configuration was at save time comes from gradguard's sidecar
(``<prefix>.gradguard.json``, written with the checkpoint by `save` and `Manager.save`), from a
`.keras` archive's own ``config.json``, and, for any TF checkpoint, from what the checkpoint
itself holds: the learning rate and iteration count (saved variables, which a restore puts
back) and the kinds of slot the optimizer had (which tell its class apart: SGD's ``momentums``
are not Adam's ``_momentums`` and ``_velocities``).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from gradguard.checkpoint import graph
from gradguard.checkpoint.values import OptimizerState, is_optimizer
from gradguard.findings import Finding, Severity

__all__ = [
    "SIDECAR",
    "archive_config",
    "config_findings",
    "optimizer_config",
    "read_sidecar",
    "sidecar_text",
]

SIDECAR = ".gradguard.json"
_SIDECAR_FORMAT = "gradguard.checkpoint/1"


def optimizer_config(optimizer: Any) -> dict[str, Any]:
    """The configuration as flat fields: ``beta_1``, ``learning_rate.decay_steps``, ..."""
    # Through JSON so that saved and current compare alike (tuples, numpy scalars).
    config = json.loads(json.dumps(optimizer.get_config(), default=str))
    return {"class": type(optimizer).__name__, **_flatten(config)}


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested Keras configs (a schedule, a wrapped optimizer) into dotted fields."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("name", "module", "registered_name"):
            continue  # names are auto-generated (adam, adam_1) and differ between runs
        if key == "config" and isinstance(value, Mapping):
            flat.update(_flatten(value, prefix))
        elif isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{'class' if key == 'class_name' else key}"] = value
    return flat


def sidecar_text(objects: Mapping[str, Any]) -> str | None:
    """The sidecar's content for `objects`; None if no optimizer is among them."""
    optimizers = {k: optimizer_config(v) for k, v in objects.items() if is_optimizer(v)}
    if not optimizers:
        return None
    return json.dumps({"format": _SIDECAR_FORMAT, "optimizers": optimizers}, indent=2) + "\n"


def read_sidecar(prefix: str) -> tuple[dict[str, Any] | None, Finding | None]:
    """The configurations recorded beside a TF checkpoint, by object key.

    Returns:
      The configurations (None when there are none to compare with) and, when gradguard's record
      should be there but is missing or unreadable, a `checkpoint-corrupt` warning saying that
      the configuration cannot be compared. A checkpoint not written through gradguard has no
      record, and none is expected: then both are None.
    """
    path = prefix + SIDECAR
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        configs = saved["optimizers"]
        if not isinstance(configs, dict):
            raise ValueError(f"'optimizers' is a {type(configs).__name__}, not a mapping")
        return configs, None
    except FileNotFoundError:
        siblings = glob.glob(os.path.join(glob.escape(os.path.dirname(path) or "."), "*" + SIDECAR))
        if os.path.exists(path + ".tmp"):
            why = f"is missing: its write did not finish ({path}.tmp is left)"
        elif siblings:
            why = f"is missing, while {os.path.basename(siblings[0])} beside it is there"
        else:
            return None, None  # not saved through gradguard: nothing to compare with
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = f"cannot be read ({type(e).__name__}: {str(e).strip()[:200]})"
    return None, Finding(
        "checkpoint-corrupt",
        f"{path}, gradguard's record of the optimizer configuration at save time, {why}: the "
        "configuration cannot be compared, so a changed class, learning rate or beta would go "
        "unreported; the checkpoint's values are not affected.",
        variables=(path,),
        severity=Severity.WARNING,
        details={"path": prefix, "file": path},
    )


def archive_config(path: str) -> dict[str, Any] | None:
    """The optimizer configuration a `.keras` archive was saved with (its compile config)."""
    try:
        with zipfile.ZipFile(path) as archive:
            compiled = json.loads(archive.read("config.json")).get("compile_config") or {}
        optimizer = compiled.get("optimizer")
        return _flatten(optimizer) if isinstance(optimizer, Mapping) else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


# Optimizers built once on a probe variable, to tell which classes leave which slot lists.
_PROBES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("SGD", "SGD with momentum", {"momentum": 0.9}),
    ("SGD", "SGD", {}),
    ("Adam", "Adam", {}),
    ("Adam", "Adam(amsgrad=True)", {"amsgrad": True}),
    ("AdamW", "AdamW", {}),
    ("Adamax", "Adamax", {}),
    ("Nadam", "Nadam", {}),
    ("RMSprop", "RMSprop", {}),
    ("RMSprop", "RMSprop with momentum", {"momentum": 0.9}),
    ("RMSprop", "RMSprop(centered=True)", {"centered": True}),
    ("Adagrad", "Adagrad", {}),
    ("Adadelta", "Adadelta", {}),
    ("Ftrl", "Ftrl", {}),
    ("Lion", "Lion", {}),
    ("Lamb", "Lamb", {}),
)


@functools.cache
def _slot_signatures() -> dict[frozenset[str], list[tuple[str, str]]]:
    """Slot lists -> the (class, description) of the Keras optimizers that leave them."""
    probe = keras.Variable(np.zeros((2, 2), "float32"), name="gradguard_probe")
    table: dict[frozenset[str], list[tuple[str, str]]] = {}
    for class_name, label, kwargs in _PROBES:
        cls: Any = getattr(keras.optimizers, class_name, None)
        try:
            optimizer = cls(name="gradguard_probe", **kwargs)  # named: no global name count
            optimizer.build([probe])
        except Exception:  # noqa: BLE001 - a class this Keras does not have, or builds otherwise
            continue
        table.setdefault(frozenset(graph.slot_lists(optimizer)), []).append((class_name, label))
    return table


def _slot_names(slots: frozenset[str]) -> str:
    return ", ".join(sorted(graph.slot_name(s) for s in slots)) or "none"


def _class_change(state: OptimizerState) -> dict[str, str] | None:
    """The class change the saved slot lists show, if they differ from the live optimizer's."""
    if state.slots is None or not state.built.built:
        return None
    live = frozenset(graph.slot_lists(state.built))
    if live == state.slots:
        return None
    live_class = type(state.optimizer).__name__
    candidates = _slot_signatures().get(state.slots, [])
    if any(class_name == live_class for class_name, _ in candidates):
        saved = f"{live_class} configured otherwise"  # same class, other slots (amsgrad, ...)
    elif candidates:
        saved = " or ".join(dict.fromkeys(label for _, label in candidates))
    else:
        saved = "another optimizer"
    return {
        "saved": f"{saved} (slots: {_slot_names(state.slots)})",
        "current": f"{live_class} (slots: {_slot_names(live)})",
    }


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _live_learning_rate(optimizer: Any) -> float | None:
    rate = optimizer.learning_rate
    return float(np.asarray(rate)) if isinstance(rate, keras.Variable) else None


def changes(state: OptimizerState, learning_rate: bool = True) -> dict[str, dict[str, Any]]:
    """What differs between the optimizer as saved and as it is now, field by field.

    Args:
      state: The optimizer and what the checkpoint holds for it.
      learning_rate: Also compare the learning rate.
    """
    changed: dict[str, dict[str, Any]] = {}
    if state.config is not None:
        current = optimizer_config(state.optimizer)
        changed = {
            field: {"saved": state.config.get(field), "current": current.get(field)}
            # Fields of one side only come from another class or Keras version: not changes.
            for field in sorted(set(state.config) & set(current))
            if state.config[field] != current[field]
        }
    if "class" not in changed and (state.config is None or "class" not in state.config):
        by_slots = _class_change(state)
        if by_slots:
            changed["class"] = by_slots
    live_rate = _live_learning_rate(state.optimizer)
    saved_rate = state.learning_rate
    if (
        "learning_rate" not in changed
        and saved_rate is not None
        and live_rate is not None
        and np.float32(saved_rate) != np.float32(live_rate)
    ):
        changed["learning_rate"] = {"saved": saved_rate, "current": live_rate}
    if not learning_rate:
        changed.pop("learning_rate", None)
    return dict(sorted(changed.items(), key=lambda kv: kv[0] != "class"))


def config_findings(
    path: str, states: list[OptimizerState], learning_rate: bool = True
) -> list[Finding]:
    """`checkpoint-optimizer-config-changed` for each optimizer configured otherwise than saved.

    Args:
      path: The checkpoint, for messages.
      states: The optimizers restored into.
      learning_rate: Also report a changed learning rate (the restore watcher judges it after
        the restore instead, once the script had the chance to set it again).
    """
    found = []
    for state in states:
        if not state.restored:
            continue  # none of its state arrives: that is reported as such
        changed = changes(state, learning_rate)
        if not changed:
            continue
        key = state.key
        listing = ", ".join(
            f"{k} {_short(v['saved'])} -> {_short(v['current'])}" for k, v in changed.items()
        )
        if "class" in changed:
            message = (
                f"{key} is not the optimizer {path} was saved with ({listing}): its saved state "
                "does not carry over (TensorFlow pairs optimizer variables by position, so slots "
                "that happen to fit in shape get unrelated values, and the others start from "
                "zero); restore with the optimizer class it was saved with, or restore the model "
                f"alone (model=...) and let {key} start fresh."
            )
        else:
            message = (
                f"{key} configuration changed since the save ({listing}); this is often "
                "deliberate (a new learning rate on resume), check that it is."
            )
        if "learning_rate" in changed:  # a float; a schedule's fields are dotted
            count = f" and its iteration count ({state.iterations})" if state.iterations else ""
            message += (
                f" Restoring puts the saved learning rate{count} back (they are saved "
                f"variables): set {key}.learning_rate after restoring to keep the new one."
            )
        source = {"config_source": state.config_source} if state.config_source else {}
        found.append(
            Finding(
                "checkpoint-optimizer-config-changed",
                message,
                variables=(key,),
                details={"path": path, "changed": changed, **source},
            )
        )
    return found
