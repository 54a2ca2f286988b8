"""Optimizer configuration: recorded beside a checkpoint, compared when it is restored."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from gradguard.checkpoint.values import is_optimizer
from gradguard.findings import Finding

__all__ = ["SIDECAR", "config_findings", "optimizer_config", "write_sidecar"]

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


def write_sidecar(prefix: str, objects: Mapping[str, Any]) -> None:
    """Writes the optimizers' configuration to ``<prefix>.gradguard.json`` (if there are any)."""
    optimizers = {k: optimizer_config(v) for k, v in objects.items() if is_optimizer(v)}
    if not optimizers:
        return
    text = json.dumps({"format": _SIDECAR_FORMAT, "optimizers": optimizers}, indent=2)
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)  # as TF's write does
    temporary = f"{prefix}{SIDECAR}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(temporary, prefix + SIDECAR)  # a crash leaves the old file or the new, whole


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def config_findings(prefix: str, objects: Mapping[str, Any]) -> list[Finding]:
    """`checkpoint-optimizer-config-changed` for each optimizer configured otherwise than saved."""
    try:
        with open(prefix + SIDECAR, encoding="utf-8") as f:
            saved_all = json.load(f)["optimizers"]
    except (OSError, ValueError, KeyError):
        return []  # not saved through gradguard: nothing to compare with
    found = []
    for key, saved in saved_all.items():
        optimizer = objects.get(key)
        if not is_optimizer(optimizer):
            continue
        current = optimizer_config(optimizer)
        changed = {
            field: {"saved": saved.get(field), "current": current.get(field)}
            # Fields of one side only come from another class or Keras version: not changes.
            for field in sorted(set(saved) & set(current))
            if saved[field] != current[field]
        }
        if not changed:
            continue
        listing = ", ".join(
            f"{k} {_short(v['saved'])} -> {_short(v['current'])}" for k, v in changed.items()
        )
        note = ""
        if "learning_rate" in changed:  # a float; a schedule's fields are dotted
            note = (
                " Restoring puts the saved learning rate back (it is a saved variable): set "
                f"{key}.learning_rate after restoring to keep the new one."
            )
        found.append(
            Finding(
                "checkpoint-optimizer-config-changed",
                f"{key} configuration changed since the save ({listing}); this is often "
                f"deliberate (a new learning rate on resume), check that it is.{note}",
                variables=(key,),
                details={"path": prefix, "changed": changed},
            )
        )
    return found
