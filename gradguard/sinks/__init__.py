"""Where statistics go: TensorBoard, absl logging, JSON lines; composed, not flagged.

* `tags`: the stable tags of the step's statistics.
* `writers`: `Sink` and the sinks (`TensorBoardSink`, `LoggingSink`, `JsonLinesSink`,
  `MultiSink`).
* `recorder`: `StepRecorder`, which writes the step's statistics in-graph on cadence steps.

Example:
  >>> sink = MultiSink([TensorBoardSink("/tmp/logs/run1"), LoggingSink()])  # doctest: +SKIP
  >>> step = gradguard.TrainStep(model, optimizer, loss_fn, sink=sink)  # doctest: +SKIP
"""

from __future__ import annotations

from gradguard.sinks.recorder import StepRecorder
from gradguard.sinks.tags import (
    CLIPPED,
    CLIPPED_STEPS,
    CONFIG,
    DESCRIPTIONS,
    FINDINGS,
    GRAD_NORM,
    GRAD_NORM_APPLIED,
    LAYER_GRAD_NORM,
    LAYER_UPDATE_RATIO,
    LAYER_WEIGHT_NORM,
    LEARNING_RATE,
    LOSS,
    SKIPPED,
    SKIPPED_UPDATES,
    is_gradguard_tag,
)
from gradguard.sinks.writers import JsonLinesSink, LoggingSink, MultiSink, Sink, TensorBoardSink

__all__ = [
    "CLIPPED",
    "CLIPPED_STEPS",
    "CONFIG",
    "DESCRIPTIONS",
    "FINDINGS",
    "GRAD_NORM",
    "GRAD_NORM_APPLIED",
    "LAYER_GRAD_NORM",
    "LAYER_UPDATE_RATIO",
    "LAYER_WEIGHT_NORM",
    "LEARNING_RATE",
    "LOSS",
    "SKIPPED",
    "SKIPPED_UPDATES",
    "JsonLinesSink",
    "LoggingSink",
    "MultiSink",
    "Sink",
    "StepRecorder",
    "TensorBoardSink",
    "is_gradguard_tag",
]
