"""The guard decorator: ``@gradguard.guard(model, optimizer)`` and the bare ``@gradguard.guard``."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

from gradguard import _compat, diagnose, instrument
from gradguard import findings as findings_lib
from gradguard.guarding import Guard
from gradguard.options import ChecksArg, Options
from gradguard.transforms import GradientTransform

__all__ = ["guard", "model_report"]


def guard(
    model: Any = None,
    optimizer: Any = None,
    *,
    transform: GradientTransform | None = None,
    checks: ChecksArg = None,
    every: int = 100,
    policy: Mapping[str, str] | None = None,
    log_dir: str | None = None,
) -> Any:
    """Guards a user's own train step: the same checks and transforms as `TrainStep`.

    Two forms:

    * ``@gradguard.guard(model, optimizer, ...)`` over ``train_step(...)``, eager or
      `tf.function` (either decorator order). While it runs, the optimizer's updates go through
      gradguard: the transform (e.g. clipping) is applied to the gradients passed, the checks
      measure them, and gradguard sees if gradients were computed but never applied
      (`missing-apply`), if part of the model was left out (`variable-not-trained`), or if
      `None` gradients were passed (`none-gradient`).
    * bare ``@gradguard.guard`` over ``def train_step(self, data)`` in a `keras.Model`
      subclass: model and optimizer are taken from `self`, and `model.fit` is guarded too.

    The host reads every `every` calls (when `guard` is the outer decorator; under an outer
    `tf.function`, at `train_step.report()`). The wrapped function gets `.report()` and
    `.guard`. A `tf.function` traced before it is guarded is called through an untraced copy
    of it (same function and options): its cached traces would never call gradguard.

    Example:
      >>> @gradguard.guard(model, optimizer, transform=gradguard.clip_by_global_norm(1.0))
      ... @tf.function
      ... def train_step(x, y):
      ...     with tf.GradientTape() as tape:
      ...         loss = loss_fn(y, model(x, training=True))
      ...     grads = tape.gradient(loss, model.trainable_variables)
      ...     optimizer.apply_gradients(zip(grads, model.trainable_variables))
      ...     return loss  # doctest: +SKIP

    Raises:
      TypeError: for an optimizer that is not a Keras optimizer or a transform that is not one.
      ValueError: for `every < 1`.
    """
    options = Options.create(
        transform=transform, checks=checks, every=every, policy=policy, log_dir=log_dir
    )
    if callable(model) and not isinstance(model, keras.layers.Layer) and optimizer is None:
        return _GuardedTrainStep(model, options)  # bare @gradguard.guard
    if optimizer is None:
        raise TypeError(
            "guard needs the optimizer: @gradguard.guard(model, optimizer), or bare "
            "@gradguard.guard over def train_step(self, data) in a keras.Model subclass."
        )
    for each in model if isinstance(model, (list, tuple)) else [model]:
        if each is not None and not hasattr(each, "trainable_variables"):
            raise TypeError(
                "guard's model must be the Keras model (or layer) the step trains, or a list "
                f"of them (a GAN's); got {type(each).__name__} {each!r:.60}."
            )

    the_guard = Guard(model, optimizer, options)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if _compat.traced_function(fn):
            # Its traces ran without gradguard watching and would run so again (no checks, no
            # transform): guarded calls go to a copy, traced while the guard watches.
            fn = _compat.untraced_copy(fn)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            traced = tf.inside_function()  # called by an outer tf.function: only instrument
            with the_guard.instrument():
                try:
                    result = fn(*args, **kwargs)
                except ValueError as e:
                    _explain_empty_models(the_guard.models, e)
                    raise
            if not traced:
                the_guard.forensics.offer(args, kwargs)
                the_guard.after_call()
            return result

        guarded.guard = the_guard  # type: ignore[attr-defined]
        guarded.report = lambda: the_guard.read(final=True)  # type: ignore[attr-defined]
        return guarded

    return decorate


def _explain_empty_models(models: list[Any], error: ValueError) -> None:
    """Raises a clear error when the step failed on a model with nothing to train."""
    for model in models:
        if getattr(model, "built", True) and not model.trainable_variables:
            raise diagnose.no_trainable_variables(model, error) from error


class _GuardedTrainStep:
    """Bare ``@gradguard.guard`` over ``keras.Model.train_step``: one Guard per model."""

    def __init__(self, fn: Callable[..., Any], options: Options):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = options
        self.guards: weakref.WeakKeyDictionary[Any, Guard] = weakref.WeakKeyDictionary()

    def __set_name__(self, owner: Any, name: str) -> None:
        # Guard model.fit too: it calls train_step in a function it compiles, so the host reads
        # happen in a callback at batch ends.
        if isinstance(owner, type) and issubclass(owner, keras.Model):
            descriptor = self

            def wrap(fit: Any) -> Any:
                @functools.wraps(fit)
                def guarded_fit(model: Any, *args: Any, **kwargs: Any) -> Any:
                    callbacks = list(kwargs.pop("callbacks", None) or [])
                    callbacks.append(_ReadCallback(descriptor, model))
                    return fit(model, *args, callbacks=callbacks, **kwargs)

                return guarded_fit

            instrument.wrapping_fit(owner, wrap)

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        if model is None:
            return self
        return functools.partial(self.__call__, model)

    def guard_for(self, model: Any) -> Guard:
        """The guard of one model instance (made on first use)."""
        the_guard = self.guards.get(model)
        if the_guard is None:
            the_guard = Guard(model, model.optimizer, self.options)
            self.guards[model] = the_guard
        return the_guard

    def __call__(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"bare @gradguard.guard guards def train_step(self, data) in a keras.Model "
                f"subclass, but {self.fn.__name__} was called with a {type(model).__name__} first. "
                "Over your own train step, name what it trains: "
                "@gradguard.guard(model, optimizer)."
            )
        the_guard = self.guard_for(model)
        traced = tf.inside_function()
        with the_guard.instrument():
            result = self.fn(model, *args, **kwargs)
        if not traced:
            the_guard.after_call()
        return result


class _ReadCallback(keras.callbacks.Callback):
    """Host reads for a guarded `train_step` under `model.fit`."""

    def __init__(self, descriptor: _GuardedTrainStep, model: Any):
        super().__init__()
        self.descriptor = descriptor
        self.guarded_model = model

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        the_guard = self.descriptor.guards.get(self.guarded_model)
        if the_guard is not None:
            the_guard.after_call()

    def on_train_end(self, logs: Any = None) -> None:
        the_guard = self.descriptor.guards.get(self.guarded_model)
        if the_guard is not None:
            the_guard.read(final=True)


def model_report(model: Any) -> findings_lib.Report | None:
    """The report of a model whose `train_step` carries a bare ``@gradguard.guard``.

    Returns:
      The report, or None if the model's class has no guarded `train_step` or it never ran.
    """
    for attr in vars(type(model)).values():
        if isinstance(attr, _GuardedTrainStep) and model in attr.guards:
            return attr.guards[model].read(final=True)
    return None
