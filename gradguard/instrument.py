"""Every process-wide change gradguard makes to TensorFlow and Keras, each undone on exit.

gradguard watches code it did not write (the guard decorator, ``gradguard run``) by wrapping a
few TensorFlow and Keras methods. Each wrapping is a `Patch`: a context manager that installs the
wrapper when its first user enters and puts the original back when its last user leaves, so
nested and repeated uses (a guarded function calling another, two guards stacked) compose and
nothing stays patched after gradguard is done.

Every hook runs without the user's op callbacks (`tf.debugging.enable_check_numerics()` checks
the user's ops, not gradguard's: `_unchecked`).

The patches, and the context managers that use them:

* `listening(guard)`: every `tf.GradientTape.gradient` call is reported to the innermost guard
  listening (`guard.on_gradient(tape, target, sources, result, extra, weighted)`), with the
  gradients of the variables it asks for (`guard.extra_sources`) computed in the same call.
* `intercepting_all(guard)`: every Keras optimizer's updates (`apply`, and so
  `apply_gradients`) go to the innermost guard listening (the decorator, ``gradguard run``),
  and so do Keras' own train step's batches (``guard.on_fit_batch(model, data)``; its compile
  state is then built outside the trace, `compilestate`), each `fit`'s start and end
  (``guard.on_fit_start(model, arguments)``, ``guard.on_fit_end(model, arguments, history)``),
  and the inputs each `evaluate` and `predict` is given (``guard.on_heldout(model, call, x)``).
* `reporting_assigns()`: every variable set by ``assign``, ``assign_sub`` or ``assign_add``,
  eagerly or as traced (``guard.on_assign(variable, method, value)``; ``gradguard run``).
* `tapping_layers(tap)`: every Keras layer call is handed to ``tap.record(layer, output, args,
  training, under_tape)``, `under_tape` when a tape records (a training forward pass); and
  under a tape, every read of a layer's `losses` (its penalties) to ``tap.losses_read(layer)``
  and every call of a Keras regularizer to ``tap.penalty_taken(weights)``.
* `wrapping_fit(model_class, wrap)`: a user's `keras.Model` subclass whose `train_step` carries
  a bare ``@gradguard.guard`` gets its `fit` wrapped (host reads at batch ends), for as long as
  the class lives.

The restores a script makes are routed through `Patch` too, by `gradguard.checkpoint.watch`.

Example:
  >>> def wrap(original):  # the replacement, given the original
  ...     return lambda tape, *args, **kwargs: original(tape, *args, **kwargs)
  >>> with Patch(tf.GradientTape, "gradient", wrap):  # doctest: +SKIP
  ...     ...  # every tape.gradient call in the block goes through the replacement
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from gradguard import _compat, compilestate
from gradguard.patching import Patch

__all__ = [
    "Patch",
    "intercepting_all",
    "listener",
    "listening",
    "reporting_assigns",
    "tapping_layers",
    "wrapping_fit",
]

# The guards listening now, innermost last: a list, not one global, so a guarded function can
# call another. `gradguard run`'s process-wide guard goes first, so a decorator inside the
# script's code takes precedence while it runs.
_LISTENERS: list[Any] = []
# The layer taps recording now (`gradguard run` with activation health).
_TAPS: list[Any] = []


def listener() -> Any:
    """The innermost guard listening now, or None."""
    return _LISTENERS[-1] if _LISTENERS else None


def _tell(hook: str, *args: Any) -> None:
    """Calls the innermost listening guard's `hook` with `args`, if a guard listens."""
    guard = listener()
    if guard is not None:
        _unchecked(getattr(guard, hook), *args)


def _tell_host(hook: str, *args: Any) -> None:
    """`_tell` for a judgment made on the host around the user's call (`fit`'s arguments).

    A check that fails there is logged, and the user's call goes on: the script must not die of
    its diagnosis. ``GRADGUARD_STRICT=1`` (the test suite's) raises instead.
    """
    try:
        _tell(hook, *args)
    except Exception:  # noqa: BLE001
        if os.environ.get("GRADGUARD_STRICT") == "1":
            raise
        logging.exception("gradguard: a check failed in %s and was skipped", hook)


def _unchecked(hook: Callable[..., Any], *args: Any) -> Any:
    """``hook(*args)``: gradguard's ops, unseen by the user's op callbacks (check_numerics).

    The user's own work a hook calls (the optimizer's update) is seen again inside it
    (`_compat.users_op_callbacks`).
    """
    with _compat.without_op_callbacks():
        return hook(*args)


def _report_gradients(original: Any) -> Any:
    @functools.wraps(original)
    def gradient(tape: Any, target: Any, sources: Any, *args: Any, **kwargs: Any) -> Any:
        guard = listener()
        if guard is None:
            return original(tape, target, sources, *args, **kwargs)
        weighted = (args[0] if args else kwargs.get("output_gradients")) is not None
        # Variables the tape watched that the call does not ask for: their gradients come in
        # the same call (a tape gives gradients once), to tell which the target depends on.
        extra = list(guard.extra_sources(tape, sources, kwargs))
        if not extra:
            result = original(tape, target, sources, *args, **kwargs)
            _unchecked(guard.on_gradient, tape, target, sources, result, (), weighted)
            return result
        flat = tf.nest.flatten(sources)
        try:
            both = original(tape, target, [*flat, *extra], *args, **kwargs)
        except Exception:  # noqa: BLE001 - the extras' fault (the tape is not spent): without
            result = original(tape, target, sources, *args, **kwargs)
            _unchecked(guard.on_gradient, tape, target, sources, result, (), weighted)
            return result
        result = tf.nest.pack_sequence_as(sources, both[: len(flat)])
        extra_pairs = tuple(zip(extra, both[len(flat) :]))
        _unchecked(guard.on_gradient, tape, target, sources, result, extra_pairs, weighted)
        return result

    return gradient


def _route_updates(original: Any) -> Any:
    @functools.wraps(original)
    def apply(optimizer: Any, grads: Any, trainable_variables: Any = None) -> Any:
        guard = listener()
        bound = functools.partial(original, optimizer)
        if guard is None:
            return bound(grads, trainable_variables)
        return _unchecked(guard.on_apply, optimizer, bound, grads, trainable_variables)

    return apply


def _record_layer_outputs(original: Any) -> Any:
    @functools.wraps(original)
    def __call__(layer: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807
        result = original(layer, *args, **kwargs)
        under_tape = bool(_TAPS) and _compat.tape_is_recording()  # a training forward pass
        for tap in _TAPS:
            _unchecked(tap.record, layer, result, args, kwargs.get("training"), under_tape)
        return result

    return __call__


def _to_taps(hook: str, *args: Any) -> None:
    """Calls ``tap.<hook>(*args)`` on each tap recording now that has the hook."""
    for tap in _TAPS:
        method = getattr(tap, hook, None)
        if method is not None:
            method(*args)


def _record_losses_read(original: Any) -> Any:
    def losses(layer: Any) -> Any:  # (a property's getter: Keras' compute_loss reads it too)
        if _compat.tape_is_recording():  # (into a loss; a test step's or a log's read is not)
            _to_taps("losses_read", layer)
        return original.fget(layer)

    return property(losses, doc=original.__doc__)


def _record_penalties(original: Any) -> Any:
    @functools.wraps(original)
    def __call__(regularizer: Any, x: Any) -> Any:  # noqa: N807
        if _compat.tape_is_recording():  # (a penalty computed by hand, into a loss)
            _to_taps("penalty_taken", x)
        return original(regularizer, x)

    return __call__


def _record_eager_losses(original: Any) -> Any:
    @functools.wraps(original)
    def __call__(loss_fn: Any, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:  # noqa: N807
        result = original(loss_fn, y_true, y_pred, sample_weight)
        if tf.executing_eagerly() and _compat.tape_is_recording():  # (no graph to read it in)
            _to_taps("eager_loss", loss_fn, result)
        return result

    return __call__


_GRADIENTS = Patch(tf.GradientTape, "gradient", _report_gradients)


def _note_scaled_updates(original: Any) -> Any:
    @functools.wraps(original)
    def apply(optimizer: Any, grads: Any, trainable_variables: Any = None) -> Any:
        # The loss scaler decides in-graph whether its inner optimizer's update runs: noted
        # here, so that updates it skipped every time are told from updates never made.
        _tell("on_scaled_apply", optimizer)
        return original(optimizer, grads, trainable_variables)

    return apply


def _note_scaled_losses(original: Any) -> Any:
    @functools.wraps(original)
    def scale_loss(optimizer: Any, loss: Any) -> Any:
        # The tape is then asked for the gradient of the scaled loss: the guard judges `loss`.
        scaled = original(optimizer, loss)
        _tell("on_scaled_loss", optimizer, loss, scaled)
        return scaled

    return scale_loss


# Variable methods that set a variable (gradient accumulators and their resets: `accumulators`).
_SETTING = ("assign", "assign_sub", "assign_add")


def _report_assigns(original: Any) -> Any:
    @functools.wraps(original)
    def assign(variable: Any, *args: Any, **kwargs: Any) -> Any:
        guard = listener()
        if guard is not None:  # (no TensorFlow op: the host's bookkeeping)
            value = args[0] if args else kwargs.get("value", kwargs.get("delta"))
            guard.on_assign(variable, original.__name__, value)
        return original(variable, *args, **kwargs)

    return assign


def _report_warnings(original: Any) -> Any:
    @functools.wraps(original)
    def warn(
        message: Any, category: Any = None, stacklevel: int = 1, *args: Any, **kwargs: Any
    ) -> Any:
        # Keras says some things only as warnings ("The model does not have any trainable
        # weights."): the guard listening hears them too. The warning goes on unchanged, and
        # is told from where its caller's caller was (this frame is one more).
        guard = listener()
        if guard is not None:
            guard.on_warning(str(message))
        return original(message, category, stacklevel + 1, *args, **kwargs)

    return warn


def _report_fit_batches(original: Any) -> Any:
    @functools.wraps(original)
    def train_step(model: Any, data: Any) -> Any:
        # Keras' own train step (fit, train_on_batch) is the one place that sees the labels
        # and the compiled loss: the guard keeps them for a NaN-origin replay.
        _tell("on_fit_batch", model, data)
        compilestate.build_outside_trace(model)  # (fit's function is then traced once)
        return original(model, data)

    return train_step


def _report_fits(original: Any) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(model: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            arguments = signature.bind(model, *args, **kwargs).arguments
        except TypeError:
            return original(model, *args, **kwargs)  # (Keras says what is wrong)
        _tell_host("on_fit_start", model, arguments)
        history = original(model, *args, **kwargs)
        _tell_host("on_fit_end", model, arguments, history)
        return history

    return fit


def _report_heldout(original: Any) -> Any:
    @functools.wraps(original)
    def given(model: Any, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        # (fit evaluates its validation data with a flag of its own)
        held_out = kwargs.get("_use_cached_eval_dataset")
        _tell_host("on_heldout", model, "validation_data" if held_out else original.__name__, x)
        return original(model, x, *args, **kwargs)

    return given


_ALL_UPDATES = Patch(_compat.BASE_OPTIMIZER, "apply", _route_updates)
_FIT_BATCHES = Patch(_compat.KERAS_TRAINER, "train_step", _report_fit_batches)
_FITS = Patch(_compat.KERAS_TRAINER, "fit", _report_fits)
_EVALUATES = Patch(_compat.KERAS_TRAINER, "evaluate", _report_heldout)
_PREDICTS = Patch(_compat.KERAS_TRAINER, "predict", _report_heldout)
_WARNINGS = Patch(warnings, "warn", _report_warnings)
_SCALED_UPDATES = Patch(keras.optimizers.LossScaleOptimizer, "apply", _note_scaled_updates)
_SCALED_LOSSES = Patch(keras.optimizers.LossScaleOptimizer, "scale_loss", _note_scaled_losses)
_LAYER_CALLS = Patch(keras.layers.Layer, "__call__", _record_layer_outputs)
_LOSSES_READ = Patch(keras.layers.Layer, "losses", _record_losses_read)
_EAGER_LOSSES = Patch(keras.losses.Loss, "__call__", _record_eager_losses)
_PENALTIES = [  # (each of Keras' regularizers has its own __call__)
    Patch(kind, "__call__", _record_penalties)
    for kind in (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)
]
_ASSIGNS = [
    Patch(owner, name, _report_assigns)
    for owner in _compat.RESOURCE_VARIABLES
    for name in _SETTING
    if name in vars(owner)
]


@contextlib.contextmanager
def listening(guard: Any, *, outermost: bool = False) -> Iterator[None]:
    """Reports every gradient call to `guard` while the block runs.

    A guard that starts listening inside the block takes the calls while it listens.

    Args:
      guard: Has ``extra_sources(tape, sources, kwargs)`` (variables to differentiate too)
        and ``on_gradient(tape, target, sources, result, extra, weighted)`` (``extra``:
        (variable, gradient) pairs; ``weighted``: ``output_gradients`` given), and, for
        `intercepting_all`, ``on_apply(optimizer, apply, grads, variables)``.
      outermost: Listen below every guard already listening (``gradguard run``).
    """
    if outermost:
        _LISTENERS.insert(0, guard)
    else:
        _LISTENERS.append(guard)
    try:
        with _GRADIENTS:
            yield
    finally:
        _LISTENERS.remove(guard)


@contextlib.contextmanager
def intercepting_all(guard: Any, *, outermost: bool = True) -> Iterator[None]:
    """Routes every Keras optimizer's updates and every gradient call to the guards.

    To the innermost guard listening: `guard` at the bottom for ``gradguard run``
    (`outermost`), or on top for a decorator's guard while its function runs.
    """
    with listening(guard, outermost=outermost), _ALL_UPDATES, _SCALED_UPDATES, _WARNINGS:
        with _SCALED_LOSSES, _FIT_BATCHES, _FITS, _EVALUATES, _PREDICTS:
            yield


@contextlib.contextmanager
def reporting_assigns() -> Iterator[None]:
    """Reports every variable set (``assign``, ``assign_sub``, ``assign_add``) to the guard.

    Eagerly or as traced, as ``guard.on_assign(variable, method, value)``. Process-wide only
    (``gradguard run``): the user's code resets its accumulators anywhere, not only in a
    guarded call.
    """
    with contextlib.ExitStack() as stack:
        for patch in _ASSIGNS:
            stack.enter_context(patch)
        yield


@contextlib.contextmanager
def tapping_layers(tap: Any) -> Iterator[None]:
    """Hands every Keras layer call to ``tap.record`` (`under_tape`: a training forward pass).

    And, under a recording tape, every read of a layer's `losses` to ``tap.losses_read``,
    every call of one of Keras' regularizers to ``tap.penalty_taken``, and every Keras loss
    computed eagerly to ``tap.eager_loss``, where the tap has them.
    """
    _TAPS.append(tap)
    try:
        with contextlib.ExitStack() as stack:
            for patch in (_LAYER_CALLS, _LOSSES_READ, _EAGER_LOSSES, *_PENALTIES):
                stack.enter_context(patch)
            yield
    finally:
        _TAPS.remove(tap)


def wrapping_fit(model_class: type, wrap: Callable[[Any], Any]) -> Patch:
    """Wraps a user's model class's `fit` for as long as the class lives; returns the patch.

    Only the user's own class is changed (its `fit`, shadowing Keras' method), never
    `keras.Model` itself; exiting the returned patch restores the class.
    """
    patch = Patch(model_class, "fit", wrap)
    patch.__enter__()
    return patch
