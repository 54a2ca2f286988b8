"""What the user's own code did: gradients asked for and given, updates applied, weights moved.

The guard decorator and ``gradguard run`` watch code gradguard did not write. The `Ledger` keeps,
per variable, whether the model expects it trained, whether the code asked a gradient for it,
got one, passed it to an optimizer, and whether its value ever changed (a fingerprint taken
when it was first seen). From that the host judges `missing-apply` (gradients computed, never
applied) and `variable-not-trained` (a variable left out of every update).

Inside a `tf.function` the counters and fingerprints are variables created outside the trace,
so the bookkeeping is traced once into the user's graph and adds no retrace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding, Severity, listing
from gradguard.stats import untrained

__all__ = ["MISSING_APPLY_CALLS_AT_END", "MISSING_APPLY_CALLS_WHILE_RUNNING", "Ledger", "key"]

# `missing-apply` needs this many gradient calls with no update: at the end of a run, a few;
# while it runs, more, so that gradient accumulation over up to that many calls stays silent.
MISSING_APPLY_CALLS_AT_END = 3
MISSING_APPLY_CALLS_WHILE_RUNNING = 32


def key(variable: Any) -> int:
    """One key per variable: a Keras variable and the `tf.Variable` holding it are one."""
    if isinstance(variable, keras.Variable):
        return id(variable.value)
    return id(variable)


def _fingerprint(variable: Any) -> tf.Tensor:
    """Sum and sum of squares, in float64: changes when the variable is updated."""
    value = tf.cast(tf.convert_to_tensor(variable), tf.float64)
    return tf.stack([tf.reduce_sum(value), tf.reduce_sum(tf.square(value))])


# Eager gradient calls that also differentiate the watched variables not asked for: a backward
# pass through them each, so only the first few (the variables a loop reads do not change).
_EAGER_EXTRA_CALLS = 3
_NONE_GRADIENTS = tf.UnconnectedGradients.NONE
_GRADIENT_CALLS, _UPDATES, _SCALED = range(3)  # the counters


class Ledger:
    """Per variable (by `key`; the dicts keep them alive), what the user's code did with it."""

    def __init__(self, models: Sequence[Any] = ()) -> None:
        self.expected: dict[int, Any] = {}  # the model's trainable variables
        self.requested: dict[int, Any] = {}  # asked a gradient for
        self.with_gradient: dict[int, Any] = {}  # given a (non-None) gradient
        self.applied: dict[int, Any] = {}  # passed to an optimizer update
        self.watched: dict[int, Any] = {}  # read in the forward pass under a tape
        self.tape_unwatching = False  # a tape made with watch_accessed_variables=False
        self.unasked: dict[int, Any] = {}  # read under a tape, not asked for; the target needs them
        # Display names of variables no layer tracks: the attribute holding them.
        self.labels: dict[int, str] = {}
        # Models Keras was asked to train that had no trainable weights (it says so, and skips).
        self.frozen_models: dict[int, Any] = {}
        # Fingerprints when first seen ("updated by hand" or "never"), NaN until the step runs.
        self._baseline: dict[int, tf.Variable] = {}
        self._taken: set[int] = set()  # baselines taken on the host
        self._extra_budget = _EAGER_EXTRA_CALLS
        # Gradient calls, optimizer updates, and update calls of a loss scaler (which may skip
        # its inner optimizer's update), made at the first call: `gradguard run` makes its
        # ledger before the script, which may still configure TensorFlow's devices and threads.
        self._counts: list[tf.Variable] = []
        self._weights = [v for model in models for v in getattr(model, "weights", [])]

    @property
    def gradient_calls(self) -> int:
        """Gradient calls on variables so far (a host read)."""
        return self._read(_GRADIENT_CALLS)

    @property
    def updates(self) -> int:
        """Optimizer updates so far (a host read)."""
        return self._read(_UPDATES)

    def _read(self, counter: int) -> int:
        return int(self._counts[counter].numpy()) if self._counts else 0

    def _count(self, counter: int, variables: Sequence[Any]) -> None:
        """Adds a call to `counter` (in-graph or eager)."""
        if not self._counts:
            # Counted once per step, not per replica: in the strategy of the variables.
            strategy = replicas.entering_strategy_of([*self._weights, *variables])
            with _compat.outside_trace(), strategy or contextlib.nullcontext():
                self._counts = [replicas.state_variable(0, tf.int64) for _ in range(3)]
        self._counts[counter].assign_add(1)

    def expect(self, variables: Sequence[Any]) -> None:
        """Remembers the model's trainable variables as ones that should be updated."""
        for v in variables:
            self.expected.setdefault(key(v), v)
        self._take_baselines(variables)

    def extra_sources(self, tape: Any, sources: Any, options: Mapping[str, Any]) -> list[Any]:
        """Variables the tape watched but the call does not ask for, to differentiate too.

        Their gradients say what the target depends on (`unasked`). Free in a trace (unused,
        TensorFlow prunes them); eagerly a backward pass through them: the first few calls ask.
        """
        if options.get("unconnected_gradients") not in (None, "none", _NONE_GRADIENTS):
            return []  # zeros for the unconnected: they could not be told apart
        eager = tf.executing_eagerly()
        if eager and self._extra_budget <= 0:
            return []
        asked = {key(s) for s in tf.nest.flatten(sources) if _compat.is_variable(s)}
        extra = [v for v in tape.watched_variables() if key(v) not in asked]
        if eager and extra:
            self._extra_budget -= 1
        return extra

    def on_gradient(
        self,
        pairs: Sequence[tuple[Any, Any]],
        watched: Sequence[Any] = (),
        unasked: Sequence[tuple[Any, Any]] = (),
    ) -> None:
        """One gradient call.

        Args:
          pairs: (variable, gradient or None) for each variable asked for.
          watched: The variables the tape watched (read in the forward pass).
          unasked: (variable, gradient or None) for watched variables not asked for.
        """
        self._count(_GRADIENT_CALLS, [v for v, _ in pairs])
        self._take_baselines([v for v, _ in pairs])
        for variable, grad in pairs:
            self.requested.setdefault(key(variable), variable)
            if grad is not None:
                self.with_gradient.setdefault(key(variable), variable)
        for variable in watched:
            self.watched.setdefault(key(variable), variable)
        depends = [v for v, g in unasked if g is not None]
        self._take_baselines(depends)
        for variable in depends:
            self.unasked.setdefault(key(variable), variable)

    def on_scaled_apply(self) -> None:
        """One update call of a LossScaleOptimizer."""
        self._count(_SCALED, [])

    def on_apply(self, variables: Sequence[Any]) -> None:
        """One optimizer update of `variables`."""
        self._count(_UPDATES, variables)
        for v in variables:
            self.applied.setdefault(key(v), v)

    def _take_baselines(self, variables: Sequence[Any]) -> None:
        """Records the fingerprints of `variables` when first seen.

        Taken on the host at once, also while tracing (a variable that exists has a value):
        nothing is added to the step. Only a variable created in the same trace has no value
        yet; its fingerprint is taken in-graph, under a `tf.cond` that runs while it is unset,
        in each trace that sees it so (tf.function traces a step again when the first trace
        created variables, and only the last trace runs).
        """
        new = [v for v in variables if key(v) not in self._baseline]
        with _compat.outside_trace():
            for v in new:
                self._baseline[key(v)] = replicas.state_variable([np.nan, np.nan], tf.float64)
            pending = [v for v in variables if key(v) not in self._taken]
            for v in pending:
                try:
                    self._baseline[key(v)].assign(_fingerprint(v))
                except (tf.errors.FailedPreconditionError, ValueError):
                    continue  # created in this trace: no value yet
                self._taken.add(key(v))
        unset = [v for v in variables if key(v) not in self._taken]
        if not unset or not tf.inside_function():
            return
        baselines = [self._baseline[key(v)] for v in unset]

        def take() -> None:
            for v, baseline in zip(unset, baselines):
                missing = tf.math.is_nan(baseline[0])
                baseline.assign(tf.where(missing, _fingerprint(v), baseline))

        missing = tf.reduce_any(tf.stack([tf.math.is_nan(b[0]) for b in baselines]))
        replicas.run_if(missing, take)

    def changed(self, k: int) -> bool:
        """Whether the variable with key `k` changed since first seen (a host read)."""
        variable = self.named(k)
        baseline = self._baseline.get(k)
        if variable is None or baseline is None:
            return False
        before = baseline.numpy()
        return not np.isnan(before[0]) and not np.array_equal(
            before, _fingerprint(variable).numpy()
        )

    def named(self, k: int) -> Any:
        """The variable with key `k`, as the user's code named it (a Keras variable if any)."""
        for known in (self.expected, self.requested, self.applied, self.unasked, self.watched):
            if k in known:
                return known[k]
        return None

    def judge(
        self,
        step: int,
        final: bool,
        names: Callable[[list[Any]], list[str]],
        keras_variables: Mapping[int, Any] = {},  # noqa: B006 - read only
        untracked: bool = False,
    ) -> list[Finding]:
        """`missing-apply`, `variable-not-trained` and unread `none-gradient` (host).

        Args:
          step: The step to date findings at.
          final: The run is over: fewer gradient calls without an update are enough.
          names: Display names of variables.
          keras_variables: By `key`, the Keras variables of the layers seen (to tell frozen and
            untracked variables among those the tapes watched).
          untracked: Layers trained hold untracked variables (`untracked`): judged even when
            no update ran (`fit` skips the update of a model it sees no weights in).
        """
        gradient_calls, updates = self.gradient_calls, self.updates
        trainable = {**self.expected, **self.requested}
        enough = MISSING_APPLY_CALLS_AT_END if final else MISSING_APPLY_CALLS_WHILE_RUNNING
        scaled = self._read(_SCALED)
        if gradient_calls >= enough and updates == 0 and scaled:
            return [self._all_overflowed(scaled, step, names)]
        if gradient_calls >= enough and updates == 0 and not any(map(self.changed, trainable)):
            variables = list(self.with_gradient.values()) or list(self.requested.values())
            return [
                Finding(
                    "missing-apply",
                    f"Gradients were computed in {gradient_calls} calls but no optimizer "
                    "update was applied and the weights did not change: call "
                    "optimizer.apply_gradients(zip(grads, model.trainable_variables)) "
                    "after tape.gradient. A tf.function decides a Python `if` and freezes a "
                    "Python number once, when traced: an update under `if step % k == 0` on a "
                    "Python counter is never traced in (use a tf.Variable counter), and a "
                    "learning rate computed from one can be frozen at 0 (updating by hand).",
                    step,
                    tuple(names(variables)),
                    details={"gradient_calls": gradient_calls, "updates": 0},
                )
            ]
        frozen = [self._frozen(model, step, names) for model in self.frozen_models.values()]
        if updates == 0 and not untracked:
            return frozen
        found = frozen + self._never_read(step, names)
        # Given a gradient; expected (the model's), never asked one, and read under a tape or
        # never trained (`untrained`: a teacher read outside the tapes is frozen by use); or
        # read under a tape, the target depending on it, not asked for (`_left_out_of`); never
        # passed to an optimizer nor updated by hand. (An unused head, no gradient, is no bug.)
        candidates: dict[int, Any] = {}
        if final or updates >= MISSING_APPLY_CALLS_WHILE_RUNNING:
            # Given time first: a GAN's other player, or a later stage (the head trained alone
            # first, then the whole model), trains them in steps not seen yet.
            candidates.update(self.with_gradient)
            never_asked = {k: v for k, v in self.expected.items() if k not in self.requested}
            outside = {k: v for k, v in never_asked.items() if k not in self.watched}
            candidates.update(untrained(outside))
            candidates.update((k, v) for k, v in never_asked.items() if k not in outside)
            candidates.update(self._left_out_of(keras_variables))
        left_out = [
            v for k, v in candidates.items() if k not in self.applied and not self.changed(k)
        ]
        if not left_out:
            return found
        left_names = names(left_out)
        total = len({*trainable, *candidates})
        found.append(
            Finding(
                "variable-not-trained",
                f"{listing(left_names)} never reached an optimizer ({total - len(left_out)} of "
                f"{total} trainable variables did), so they never learn: compute gradients for "
                "all of model.trainable_variables and pass them to apply_gradients, each zipped "
                "with its own gradient (a tf.Variable kept as a plain attribute of a Keras 3 "
                "layer is not tracked: create it with self.add_weight; under fit, a layer set "
                "trainable after the model trained is updated only once model.compile() is "
                "called again).",
                step,
                tuple(left_names),
            )
        )
        return found

    def _frozen(self, model: Any, step: int, names: Callable[[list[Any]], list[str]]) -> Finding:
        """`variable-not-trained`: a model trained with no trainable weight (Keras skipped it)."""
        weights = list(model.weights)
        message = (
            f"Keras was asked to train {model.name} (fit or train_on_batch), but it has no "
            "trainable weights, so it never learns: it was frozen (trainable=False) when its "
            "train function was first built. Keras 3 reads `trainable` then, not at compile(): "
            "set it after that model's first training call, or compile a model of its own "
            "for the frozen copy."
        )
        return Finding("variable-not-trained", message, step, tuple(names(weights)))

    def _all_overflowed(
        self, scaled: int, step: int, names: Callable[[list[Any]], list[str]]
    ) -> Finding:
        """`non-finite`: the loss scaler skipped every update (float16 overflow every time)."""
        message = (
            f"The loss scaler skipped every one of the {scaled} updates: the float16 gradients "
            "overflow at every loss scale it tried, so the model never trains. The values are "
            "out of float16's range: normalize the inputs (raw 0-255 or uint16 pixels overflow "
            "float16), or keep the layer that overflows in float32 (dtype='float32')."
        )
        origin = {"stage": "backward", "layer": None, "op": None, "step": 0}
        return Finding(
            "non-finite",
            message,
            step,
            tuple(names(list(self.requested.values()))),
            details={"skipped_updates": scaled, "origin": origin},
        )

    def _left_out_of(self, keras_variables: Mapping[int, Any]) -> dict[int, Any]:
        """Read under a tape, the target depending on them, never asked a gradient for.

        Frozen Keras variables (``trainable=False``, which the tape still watches) are left
        out; so is whatever was read outside the tape or under `tf.stop_gradient` (a target
        network, a teacher), which the target does not depend on. A `tf.Variable` no layer
        tracks (kept as a plain attribute of a Keras 3 layer) is named as itself.
        """
        left = {}
        for k, variable in self.unasked.items():
            if k in self.requested:
                continue
            known = keras_variables.get(k)
            if known is not None and not known.trainable:
                continue
            left[k] = known if known is not None else variable
        return left

    def untracked(self, layers: Sequence[Any]) -> list[Any]:
        """Trainable `tf.Variable`s kept as plain attributes of `layers`, which no layer tracks.

        Keras 3 tracks only its own variables (`add_weight`): a `tf.Variable` attribute, or a
        list or dict of them, is left out of `trainable_variables`, so `fit` and every loop over
        them never train it. Their fingerprints are taken when first seen.
        """
        found = []
        for layer in layers:
            tracked = {key(w) for w in getattr(layer, "weights", [])}
            for attribute, value in vars(layer).items():
                values = value.values() if isinstance(value, dict) else value
                items = list(values) if isinstance(values, (list, tuple)) else [value]
                for i, v in enumerate(items):
                    if (
                        isinstance(v, tf.Variable)
                        and not isinstance(v, keras.Variable)
                        and v.trainable
                        and key(v) not in tracked
                    ):
                        index = f"[{i}]" if len(items) > 1 or items[0] is not value else ""
                        self.labels.setdefault(key(v), f"{layer.name}.{attribute}{index}")
                        found.append(v)
        self._take_baselines(found)
        for v in found:
            self.unasked.setdefault(key(v), v)
        return found

    def _never_read(self, step: int, names: Callable[[list[Any]], list[str]]) -> list[Finding]:
        """`none-gradient` for variables asked for that no forward pass ever read."""
        unread = [
            v
            for k, v in self.requested.items()
            if k not in self.watched and k not in self.with_gradient
        ]
        if not unread or not self.with_gradient:
            return []  # nothing got a gradient: the gradient call itself is diagnosed
        unread_names, them = names(unread), "it" if len(unread) == 1 else "them"
        every = len(unread) == len(self.requested)
        cause, why = (
            (
                "not watched",
                f"the tape was made with watch_accessed_variables=False and never "
                f"watched {them}; tape.watch({them}) too, or leave the option at its default.",
            )
            if self.tape_unwatching
            else (
                "never read",
                f"the forward pass never read {them} (a layer that is never "
                "called, or weights that build() creates and call() does not use); call the "
                "layer, or remove the unused weights.",
            )
        )
        message = f"{listing(unread_names)} got no gradient: {why}"
        severity = Severity.ERROR if every else Severity.WARNING
        details = {"causes": dict.fromkeys(unread_names, cause)}
        return [Finding("none-gradient", message, step, tuple(unread_names), severity, details)]
