"""``gradguard inspect``: reading gradguard's TensorBoard event files back into a diagnosis.

* `events`: reading event files (`load_runs`, `read_event_file`), damaged ones included.
* `logged`: a run's scalars aligned on the logged steps, what checks replay their state from.
* `judge`: `inspect(logdir)`, each run's summary and the findings its scalars imply.
* `text` and `plot`: what the command prints and draws.

Example:
  >>> result = gradguard.inspect.inspect("/tmp/logs")  # doctest: +SKIP
  >>> print(gradguard.inspect.format_inspection(result))  # doctest: +SKIP
"""

from __future__ import annotations

from gradguard.inspect.events import LogDirError, Run, Series, load_runs, read_event_file
from gradguard.inspect.judge import Inspection, RunResult, inspect
from gradguard.inspect.logged import Logged
from gradguard.inspect.plot import plot
from gradguard.inspect.text import format_inspection

__all__ = [
    "Inspection",
    "LogDirError",
    "Logged",
    "Run",
    "RunResult",
    "Series",
    "format_inspection",
    "inspect",
    "load_runs",
    "plot",
    "read_event_file",
]
