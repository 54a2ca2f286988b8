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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import replicas
from gradguard.findings import Finding, listing

__all__ = ["MISSING_APPLY_CALLS_AT_END", "MISSING_APPLY_CALLS_WHILE_RUNNING", "Ledger"]

# `missing-apply` needs this many gradient calls with no update: at the end of a run, a few;
# while it runs, more, so that gradient accumulation over up to that many calls stays silent.
MISSING_APPLY_CALLS_AT_END = 3
MISSING_APPLY_CALLS_WHILE_RUNNING = 32


def _fingerprint(variable: Any) -> tf.Tensor:
    """Sum and sum of squares, in float64: changes when the variable is updated."""
    value = tf.cast(tf.convert_to_tensor(variable), tf.float64)
    return tf.stack([tf.reduce_sum(value), tf.reduce_sum(tf.square(value))])


class Ledger:
    """Per variable (by id; the dicts keep them alive), what the user's code did with it."""

    def __init__(self) -> None:
        self.expected: dict[int, Any] = {}  # the model's trainable variables
        self.requested: dict[int, Any] = {}  # asked a gradient for
        self.with_gradient: dict[int, Any] = {}  # given a (non-None) gradient
        self.applied: dict[int, Any] = {}  # passed to an optimizer update
        # Fingerprints when first seen, to tell "updated by hand" from "never updated"; NaN until
        # the first run of the step that saw them.
        self._baseline: dict[int, tf.Variable] = {}
        with tf.init_scope():
            self._gradient_calls = replicas.state_variable(0, tf.int64)
            self._updates = replicas.state_variable(0, tf.int64)

    @property
    def gradient_calls(self) -> int:
        """Gradient calls on variables so far (a host read)."""
        return int(self._gradient_calls.numpy())

    @property
    def updates(self) -> int:
        """Optimizer updates so far (a host read)."""
        return int(self._updates.numpy())

    def expect(self, variables: Sequence[Any]) -> None:
        """Remembers the model's trainable variables as ones that should be updated."""
        for v in variables:
            self.expected.setdefault(id(v), v)
        self._take_baselines(variables)

    def on_gradient(self, pairs: Sequence[tuple[Any, Any]]) -> None:
        """One gradient call: (variable, gradient or None) pairs."""
        self._gradient_calls.assign_add(1)
        self._take_baselines([v for v, _ in pairs])
        for variable, grad in pairs:
            self.requested.setdefault(id(variable), variable)
            if grad is not None:
                self.with_gradient.setdefault(id(variable), variable)

    def on_apply(self, variables: Sequence[Any]) -> None:
        """One optimizer update of `variables`."""
        self._updates.assign_add(1)
        for v in variables:
            self.applied.setdefault(id(v), v)

    def _take_baselines(self, variables: Sequence[Any]) -> None:
        """Records the fingerprints of `variables` not seen before, once, at their first run.

        While tracing, a variable created in the same trace has no value yet, so the
        fingerprint is taken in-graph, under a `tf.cond` that runs it only the first time.
        """
        new = [v for v in variables if id(v) not in self._baseline]
        if not new:
            return
        with tf.init_scope():
            baselines = [replicas.state_variable([np.nan, np.nan], tf.float64) for _ in new]
        for v, baseline in zip(new, baselines):
            self._baseline[id(v)] = baseline

        def take() -> None:
            for v, baseline in zip(new, baselines):
                baseline.assign(_fingerprint(v))

        if tf.inside_function():
            replicas.run_if(tf.math.is_nan(baselines[0][0]), take)
        else:
            take()

    def changed(self, key: int) -> bool:
        """Whether the variable with id `key` changed since first seen (a host read)."""
        variable = self.requested.get(key, self.expected.get(key))
        baseline = self._baseline.get(key)
        if variable is None or baseline is None:
            return False
        before = baseline.numpy()
        return not np.isnan(before[0]) and not np.array_equal(
            before, _fingerprint(variable).numpy()
        )

    def judge(
        self, step: int, final: bool, names: Callable[[list[Any]], list[str]]
    ) -> list[Finding]:
        """`missing-apply` and `variable-not-trained`, from what the user's code did (host).

        Args:
          step: The step to date findings at.
          final: The run is over: fewer gradient calls without an update are enough.
          names: Display names of variables.
        """
        gradient_calls, updates = self.gradient_calls, self.updates
        watched = {**self.expected, **self.requested}
        enough = MISSING_APPLY_CALLS_AT_END if final else MISSING_APPLY_CALLS_WHILE_RUNNING
        if gradient_calls >= enough and updates == 0:
            if not any(self.changed(k) for k in watched):
                variables = list(self.with_gradient.values()) or list(self.requested.values())
                return [
                    Finding(
                        "missing-apply",
                        f"Gradients were computed in {gradient_calls} calls but no optimizer "
                        "update was applied and the weights did not change: call "
                        "optimizer.apply_gradients(zip(grads, model.trainable_variables)) "
                        "after tape.gradient.",
                        step,
                        tuple(names(variables)),
                        details={"gradient_calls": gradient_calls, "updates": 0},
                    )
                ]
        if updates == 0:
            return []
        # Given a gradient, or expected (the model's) but never asked one, and never passed to
        # an optimizer nor updated by hand. Variables whose gradient was always None are left
        # out: an unused output head is not a bug.
        candidates = {**self.with_gradient}
        candidates.update((k, v) for k, v in self.expected.items() if k not in self.requested)
        left_out = [
            v for k, v in candidates.items() if k not in self.applied and not self.changed(k)
        ]
        if not left_out:
            return []
        left_names = names(left_out)
        total = len(watched)
        return [
            Finding(
                "variable-not-trained",
                f"{listing(left_names)} never reached an optimizer ({total - len(left_out)} of "
                f"{total} trainable variables did), so they never learn: compute gradients for "
                "all of model.trainable_variables and pass them to apply_gradients, each zipped "
                "with its own gradient.",
                step,
                tuple(left_names),
            )
        ]
