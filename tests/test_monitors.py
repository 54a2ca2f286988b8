"""A callback told the wrong way to improve (`monitors`, `monitor-mode-inverted`): found for
`EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau` whose explicit mode is against their
quantity's direction (the loss lower, a compiled metric as its Keras class says), after a real
`fit` under a process-wide guard; silent for the right mode, for ``mode="auto"``, for a custom
metric (a function, a subclass that turns the direction around) and for a user's callback.
And a metric that cannot score probabilities (`exactaccuracy`, `accuracy-exact-match`)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradguard.guarding import Guard
from gradguard.options import Options

CODE = "monitor-mode-inverted"


class SpikeLogger(keras.callbacks.Callback):
    """hunt13: a user's own callback whose monitor and mode mean something else."""

    def __init__(self, monitor, mode):
        super().__init__()
        self.monitor, self.mode = monitor, mode


class ErrorRate(keras.metrics.BinaryAccuracy):
    """hunt13: 1 - accuracy, a subclass that keeps accuracy's "up" direction."""

    def result(self):
        return 1.0 - super().result()


def neg_log_loss(y_true, y_pred):  # hunt13: scikit-learn's convention, better higher
    return -keras.losses.binary_crossentropy(y_true, y_pred)


def _callback(kind: str, monitor: str, mode: str, tmp_path) -> keras.callbacks.Callback:
    if kind == "SpikeLogger":
        return SpikeLogger(monitor, mode)
    if kind == "EarlyStopping":
        return keras.callbacks.EarlyStopping(monitor, mode=mode, restore_best_weights=True)
    if kind == "ModelCheckpoint":
        path = str(tmp_path / "best.weights.h5")
        return keras.callbacks.ModelCheckpoint(
            path, monitor, mode=mode, save_best_only=True, save_weights_only=True
        )
    return keras.callbacks.ReduceLROnPlateau(monitor, mode=mode, patience=1)


def true_positives(y_true, y_pred):  # a custom metric: no direction Keras knows
    return keras.ops.sum(y_true * keras.ops.cast(y_pred > 0.5, "float32"))


def test_a_metric_of_one_of_several_outputs_is_judged_by_its_own_name(tmp_path):
    """hunt13: `fit` logs val_cls_accuracy for the metric named "accuracy" of output "cls"."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = {"cls": (x[:, :1] > 0).astype("float32"), "reg": x[:, 1:2]}
    inputs = keras.Input((4,))
    outputs = {
        "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(inputs),
        "reg": keras.layers.Dense(1, name="reg")(inputs),
    }
    model = keras.Model(inputs, outputs)
    model.compile("adam", {"cls": "binary_crossentropy", "reg": "mse"}, metrics={"cls": "accuracy"})
    callbacks = [
        keras.callbacks.EarlyStopping("val_cls_accuracy", mode="min"),  # (the worst kept)
        keras.callbacks.ReduceLROnPlateau("val_reg_loss", mode="max"),  # (an output's loss)
    ]
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, epochs=2, validation_split=0.25, callbacks=callbacks, verbose=0)
        found = [f for f in guard.read(final=True).findings if f.code == CODE]
    assert [f.details["monitor"] for f in found] == ["val_cls_accuracy"]


@pytest.mark.parametrize(
    "kind, monitor, mode, found",
    [
        ("EarlyStopping", "val_accuracy", "min", True),  # hunt12: the worst epoch restored
        ("EarlyStopping", "val_accuracy", "max", False),
        ("EarlyStopping", "val_accuracy", "auto", False),
        ("EarlyStopping", "val_loss", "min", False),
        ("ModelCheckpoint", "val_loss", "max", True),
        ("ModelCheckpoint", "auc", "max", False),
        ("ReduceLROnPlateau", "val_auc", "min", True),
        ("ReduceLROnPlateau", "val_mean_squared_error", "max", True),
        ("ReduceLROnPlateau", "val_true_positives", "min", False),  # (custom: not known)
        ("EarlyStopping", "val_error_rate", "min", False),  # (a subclass may turn it around)
        ("EarlyStopping", "val_neg_log_loss", "max", False),  # (a metric, not the loss)
        ("SpikeLogger", "loss", "max", False),  # (not a callback that keeps a best epoch)
    ],
)
def test_a_callback_told_the_wrong_way_to_improve_is_found(kind, monitor, mode, found, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    metrics = ["accuracy", keras.metrics.AUC(name="auc"), "mean_squared_error", true_positives]
    metrics += [ErrorRate(name="error_rate"), neg_log_loss]
    model.compile("adam", "binary_crossentropy", metrics=metrics)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        callback = _callback(kind, monitor, mode, tmp_path)
        model.fit(x, y, epochs=2, validation_split=0.25, callbacks=[callback], verbose=0)
        findings = [f for f in guard.read(final=True).findings if f.code == CODE]
    assert [f.details["callback"] for f in findings] == ([kind] if found else [])
    if found:
        assert f"mode={mode!r}" in findings[0].message and monitor in findings[0].message


def _rounded(p):
    """0/1 predictions that still train (a straight-through estimator): Accuracy's own use."""
    return p + keras.ops.stop_gradient(keras.ops.round(p) - p)


@pytest.mark.parametrize(
    "metric, head, found",
    [
        ("Accuracy", None, True),  # hunt17: probabilities never exactly a label
        ("accuracy", None, False),  # (compile picks BinaryAccuracy)
        ("Accuracy", _rounded, False),  # predicted classes: Accuracy as meant
    ],
)
def test_keras_accuracy_on_probabilities_is_found_with_the_callback_it_misled(metric, head, found):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs if head is None else keras.layers.Lambda(head)(outputs))
    metrics = [keras.metrics.Accuracy() if metric == "Accuracy" else metric]
    model.compile("adam", "binary_crossentropy", metrics=metrics)
    stop = keras.callbacks.EarlyStopping("val_accuracy", mode="max", restore_best_weights=True)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(x, y, epochs=3, validation_split=0.25, callbacks=[stop], verbose=0)
        findings = [f for f in guard.read(final=True).findings if f.code == "accuracy-exact-match"]
    assert bool(findings) == found, [f.message for f in findings]
    if found:
        assert findings[0].details["logged"] == ["accuracy", "val_accuracy"]
        assert findings[0].details["callbacks"] == ["EarlyStopping(monitor='val_accuracy')"]


class F1Logger(keras.callbacks.Callback):
    """A user's callback that adds its own quantity to the logs, for the next callback."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_f1"] = 0.5 + 0.1 * epoch


@pytest.mark.parametrize(
    "kind, monitor, found",
    [
        ("ReduceLROnPlateau", "val_mse", "val_mean_squared_error"),  # hunt23 p15
        ("EarlyStopping", "val_acc", "val_accuracy"),  # a tf.keras 1 name
        ("ModelCheckpoint", "val_acuracy", "val_accuracy"),  # mistyped
        ("ModelCheckpoint-every-epoch", "val_mse", None),  # (no best kept: monitor unread)
        ("EarlyStopping", "val_accuracy", None),
        ("ReduceLROnPlateau", "val_f1", None),  # (logged by the user's callback before it)
    ],
)
def test_a_callback_watching_a_name_fit_never_logs_is_found(kind, monitor, found, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", "mean_squared_error"])
    if kind == "ModelCheckpoint-every-epoch":
        path = str(tmp_path / "last.weights.h5")
        callback = keras.callbacks.ModelCheckpoint(
            path, monitor, mode="min", save_weights_only=True
        )
    else:
        callback = _callback(kind, monitor, "max" if "acc" in monitor else "min", tmp_path)
    guard = Guard(options=Options.create(), raise_errors=False)
    with guard.instrument_process():
        model.fit(
            x, y, epochs=2, validation_split=0.25, callbacks=[F1Logger(), callback], verbose=0
        )
        findings = [f for f in guard.read(final=True).findings if f.code == "monitor-not-logged"]
    assert bool(findings) == (found is not None), findings
    if found:
        assert findings[0].details["monitor"] == monitor
        assert f"monitor={found!r}, probably" in findings[0].message
