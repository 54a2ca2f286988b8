"""`keras.metrics.Accuracy` on probabilities: an accuracy of 0 at every epoch.

`keras.metrics.Accuracy` counts predictions exactly equal to their labels. It is meant for
predicted class ids; given a model's probabilities (a softmax, a sigmoid) it is 0 at every
epoch, however well the model learns: no probability is exactly a label. The string
``metrics=["accuracy"]`` is another thing: `compile` turns it into the accuracy the loss and
labels call for (sparse categorical, categorical, binary). A callback that keeps a best epoch by
it (`EarlyStopping(restore_best_weights=True)`, `ModelCheckpoint(save_best_only=True)`) keeps
the first epoch, so the model ends nearly untrained.

Read under ``gradguard run`` when `fit` returns, from its history: a Keras `Accuracy` (not a
subclass) whose logged values were 0 at every epoch.
"""

from __future__ import annotations

from typing import Any

import keras

from gradguard import monitors
from gradguard.findings import Finding

__all__ = ["always_zero"]


def always_zero(model: Any, history: Any, callbacks: Any, step: int) -> list[Finding]:
    """`accuracy-exact-match` for each `keras.metrics.Accuracy` that logged only zeros."""
    logged = getattr(history, "history", None) or {}
    found = []
    for metric in monitors.metrics_of(model):
        if type(metric) is not keras.metrics.Accuracy:
            continue
        outputs = getattr(model, "output_names", None) or []  # (several: "<output>_<metric>")
        own = {metric.name} | {f"{o}_{metric.name}" for o in outputs}
        names = [n for n in logged if n.removeprefix("val_") in own]
        values = [v for n in names for v in logged[n]]
        if not values or any(float(v) != 0.0 for v in values):
            continue
        keeping = [
            f"{type(c).__name__}(monitor={c.monitor!r})"
            for c in getattr(callbacks, "callbacks", callbacks) or ()
            if isinstance(c, monitors.KEEP_BEST) and getattr(c, "monitor", None) in names
        ]
        kept = (
            f"; {' and '.join(keeping)} found no epoch better than the first and kept it"
            if keeping
            else ""
        )
        message = (
            f"The metric {metric.name!r} (keras.metrics.Accuracy) was 0 at every epoch "
            f"({', '.join(names)}){kept}: Accuracy counts predictions exactly equal to their "
            "labels, and the model's outputs are probabilities, never exactly a label. Use "
            'metrics=["accuracy"] (compile picks the accuracy the loss calls for), or '
            "keras.metrics.SparseCategoricalAccuracy, CategoricalAccuracy or BinaryAccuracy."
        )
        details = {"metric": metric.name, "logged": names, "callbacks": keeping}
        found.append(Finding("accuracy-exact-match", message, step, details=details))
    return found
