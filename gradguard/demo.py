"""`gradguard demo`: the seed bugs diagnosed one by one on built-in data, then the fixed loop."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["main"]


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic regression problem: 512 examples, 10 features, a noisy linear target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 10)).astype("float32")
    w = rng.normal(size=(10, 1)).astype("float32")
    y = (x @ w + 0.1 * rng.normal(size=(512, 1))).astype("float32")
    return x, y


def _model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="out"),
        ],
        name="mlp",
    )


def _train(step: Callable[..., Any], x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    """Trains in batches of 64; returns the mean loss of each epoch."""
    means = []
    for _ in range(epochs):
        losses = [float(step(x[i : i + 64], y[i : i + 64])) for i in range(0, len(x), 64)]
        means.append(float(np.mean(losses)))
    return means


def _show(out: Callable[[str], None], title: str, losses: list[float], report: Any) -> None:
    out(f"\n{title}")
    out(f"  mean epoch loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} epoch(s)")
    if not report.findings:
        out("  gradguard: no findings.")
    for f in report.findings:
        out(f"  gradguard [{f.code}] {f.message}")


def _tensorboard_command() -> str:
    """`tensorboard`, or its full path when the environment's bin directory is not on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if shutil.which("tensorboard") or not os.path.exists(beside):
        return "tensorboard"
    return beside


def main(epochs: int = 25, log_dir: str | None = None, out: Callable[[str], None] = print) -> int:
    """Runs the demo and returns the exit status (0 when the fixed loop learned).

    Args:
      epochs: Epochs per loop.
      log_dir: Where to write the TensorBoard logs (one run per loop); a new temporary
        directory by default.
      out: Where the demo's text goes, a line (or paragraph) at a time (the CLI prints it).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from absl import logging

    import gradguard

    logging.set_verbosity(logging.FATAL)  # the demo prints the findings itself
    x, y = _data()
    mse = keras.losses.MeanSquaredError()
    report_all = {code: "warn" for code in gradguard.CODES}
    out("gradguard demo: a small MLP on synthetic regression data (512 x 10), batch 64.")

    log_dir = log_dir or tempfile.mkdtemp(prefix="gradguard-demo-")

    # A hand-written step that forgets the update, under the guard decorator.
    model, optimizer = _model(), keras.optimizers.Adam(1e-2)

    @gradguard.guard(model, optimizer, every=20, policy=report_all)
    @tf.function
    def forgetful_step(xb: Any, yb: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = mse(yb, model(xb, training=True))
        tape.gradient(loss, model.trainable_variables)  # ... and no apply_gradients
        return loss

    _show(
        out,
        "0) A custom train step that forgets optimizer.apply_gradients:",
        _train(forgetful_step, x, y, 1),
        forgetful_step.report(),
    )

    step = gradguard.TrainStep(
        _model(),
        keras.optimizers.Adam(1e-10),
        mse,
        every=20,
        policy=report_all,
        log_dir=os.path.join(log_dir, "1_lr_1e-10"),
    )
    _show(out, "1) Learning rate 1e-10 (Adam):", _train(step, x, y, epochs), step.report())

    def numpy_loss(y_true: Any, y_pred: Any) -> Any:
        # A NumPy round trip: the loss is computed, but no gradient flows back through it.
        pred = tf.numpy_function(lambda p: p.astype("float32"), [y_pred], tf.float32)
        return tf.reduce_mean(tf.square(y_true - tf.reshape(pred, [-1, 1])))

    step = gradguard.TrainStep(
        _model(), keras.optimizers.Adam(1e-2), numpy_loss, every=20, policy=report_all
    )
    _show(
        out,
        "2) Loss cut off from the tape (tf.numpy_function in the loss):",
        _train(step, x, y, 1),
        step.report(),
    )

    fixed = gradguard.TrainStep(
        _model(),
        keras.optimizers.Adam(1e-2),
        mse,
        transform=gradguard.chain(gradguard.clip_by_global_norm(5.0), gradguard.skip_nonfinite()),
        every=20,
        log_dir=os.path.join(log_dir, "3_fixed"),
    )
    losses = _train(fixed, x, y, epochs)
    _show(
        out,
        "3) Fixed: Adam(1e-2), the loss in TensorFlow ops, clipping by global norm 5:",
        losses,
        fixed.report(),
    )
    for epoch in range(0, len(losses), max(1, len(losses) // 5)):
        out(f"  epoch {epoch:3d}  loss {losses[epoch]:.4f}")
    learned = losses[-1] < 0.5 * losses[0]
    out("\nThe fixed loop learned." if learned else "\nThe fixed loop did NOT learn.")
    out(
        f"\nTensorBoard logs of loops 1 and 3 are in {log_dir}. View them with:\n"
        f"  {_tensorboard_command()} --logdir {log_dir}\n"
        f"or read them back here:\n"
        f"  gradguard inspect {log_dir}"
    )
    return 0 if learned else 1
