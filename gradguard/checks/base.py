"""The `Check` base class: state declared once, an in-graph fold, a host judgment, a replay.

A check has two halves (torchmetrics' `update`/`compute`, clu's `Metric`):

* `update(stats)` runs inside the compiled step every step (a `measured_only` check's, every
  step that measures the weights). It folds the step's `Stats` into a
  few state variables (counts, first-seen steps, maxima, running sums), so nothing that happened
  between two host reads is lost. It never blocks an update; transforms do that.
* `judge(state, context)` runs on the host every `every` steps, on the state's plain values, and
  returns `Finding`s.

Everything else about a check is declared by the check itself, so the core, the sinks and
``gradguard inspect`` need not know it:

* its state, with `add_state(name, default, replicas=...)`: how replicas combine it (small
  states folded together share one variable, `add_states`: each op a step executes costs
  microseconds, however small);
* whether it folds only the steps that measure the weights (`measured_only`), and whether
  its fold may wait for a later step (`deferrable`: `gradguard.deferred`);
* what it logs to TensorBoard beyond the step's own statistics (`add_scalar`), written
  in-graph with the step's scalars;
* how ``gradguard inspect`` judges it again from the logged scalars (`replay`, or
  `judge_logged`);
* what it adds to `statistics()` (`summary`) and what it tells other checks (`notes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from gradguard import replicas as replicas_lib
from gradguard.findings import Finding
from gradguard.stats import Context, Layout, Stats

if TYPE_CHECKING:
    from gradguard.inspect.logged import Logged

__all__ = ["Check", "Scalar", "StateReader", "StateSpec", "fold"]

# How the replicas' copies of a state combine at a host read.
_COMBINE: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "sum": lambda v: v.sum(axis=0),
    "max": lambda v: v.max(axis=0),
    "min": lambda v: v.min(axis=0),
    "mean": lambda v: v.mean(axis=0),
}


@dataclasses.dataclass(frozen=True)
class StateSpec:
    """One declared state variable of a check.

    Attributes:
      variable: The variable (one per replica when `replicas` is not ``"same"``).
      replicas: ``"same"``: every replica folds the same values (statistics of the summed
        gradients), one copy is kept. ``"sum"``, ``"max"``, ``"min"``, ``"mean"``: each replica
        folds what it saw of its own slice of the batch in its own copy, and the host read
        combines the copies this way.
      strategy: The strategy the variable was created under (whose replicas hold the copies).
    """

    variable: tf.Variable
    replicas: str
    strategy: tf.distribute.Strategy
    # Where this state sits in a variable packed with others (`Check.add_states`): its
    # elements and shape. None: the state is the whole variable.
    part: tuple[slice, tuple[int, ...]] | None = None

    def local_values(self) -> list[tf.Tensor]:
        """The copies' values (in-graph or eager): one, or one per local replica."""
        if self.replicas == "same":
            return [self.variable.read_value()]
        return [
            tf.convert_to_tensor(v) for v in self.strategy.experimental_local_results(self.variable)
        ]

    def combine(self, values: Sequence[np.ndarray]) -> np.ndarray:
        """The host value: the copies combined as declared."""
        if self.replicas == "same" or len(values) == 1:
            value = np.asarray(values[0])
        else:
            value = _COMBINE[self.replicas](np.stack([np.asarray(v) for v in values]))
        if self.part is None:
            return value
        elements, shape = self.part
        return value[elements].reshape(shape)


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A value a check logs as a TensorBoard scalar, in-graph, on the step's cadence.

    Attributes:
      tag: The stable tag, e.g. ``gradguard_dead_units/dense``.
      value: Computes the value (a float scalar tensor) from the check's state, in-graph.
    """

    tag: str
    value: Callable[[], tf.Tensor]


class Check:
    """Base class: declare state in `_build`, fold in `update`, judge in `judge`.

    A check that sets `watches_activations` gets the watched layer outputs (`sites`, given to
    `watch` before `build`) in `Stats.activations`.

    Subclasses implement `_build` (declaring state with `add_state`), `update` and `judge`; the
    other methods are optional and default to "nothing".
    """

    layout: Layout
    watches_activations = False
    # A check that folds only steps that measure the weights (`Stats.measured`): the core
    # calls its `update` on those steps alone (at trace time when the step is known to be lean
    # or measuring, in one conditional when the graph decides).
    measured_only = False
    # A check whose `update` reads only `Stats`' scalars, `grad_sq`, `weight_sq` and its own
    # state, and compiles with XLA: a step may leave its fold to later (`gradguard.deferred`).
    deferrable = False
    # Set by the core when this check's fold may wait (`gradguard.deferred`): folds what waits
    # (host), before any read of the state.
    before_read: Callable[[], Any] | None = None
    sites: tuple[Any, ...] = ()

    def watch(self, sites: Sequence[Any]) -> None:
        """Sets the layer outputs (`activations.Site`) this check sees; before `build`."""
        self.sites = tuple(sites)

    def build(self, layout: Layout) -> None:
        """Creates the state variables; called once, outside any trace."""
        self.layout = layout
        self._specs: dict[str, StateSpec] = {}
        self._defaults: list[tuple[tf.Variable, Any]] = []  # (`reset`)
        self._scalars: list[Scalar] = []
        self._build()

    def use_layout(self, layout: Layout) -> None:
        """Sets the layout without creating state: for judging replayed state (inspect)."""
        self.layout = layout

    def _build(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must declare its state in _build().")

    def add_state(
        self,
        name: str,
        default: Any,
        dtype: tf.DType = tf.float32,
        *,
        replicas: str = "same",
    ) -> tf.Variable:
        """Declares one state variable; returns it (call from `_build`).

        Args:
          name: Its key in `state()`; unique within the check.
          default: Initial value (a scalar or a list).
          dtype: Its dtype.
          replicas: How replicas combine it (`StateSpec.replicas`).

        Returns:
          The variable (in-graph reads in `update` see this replica's copy).
        """
        variable = self._variable([name], default, dtype, replicas)
        self._specs[name] = StateSpec(variable, replicas, tf.distribute.get_strategy())
        return variable

    def add_states(
        self,
        defaults: Mapping[str, Any],
        dtype: tf.DType = tf.float32,
        *,
        replicas: str = "same",
    ) -> tf.Variable:
        """Declares several states of one dtype kept in one flat variable (call from `_build`).

        Each executed op costs the step microseconds however small it is, so a check that
        folds several small states reads this variable once, computes the new values, and
        writes them back with one ``assign`` of their concatenation, in the order of
        `defaults`. `state()` still gives each state by its name and shape.

        Args:
          defaults: Initial value of each state (a scalar or a list), by name.
          dtype: Their dtype.
          replicas: How replicas combine them (`StateSpec.replicas`), element by element.

        Returns:
          The packed variable: 1-D, the states flattened one after another.
        """
        values = {name: np.asarray(value) for name, value in defaults.items()}
        flat = np.concatenate([v.reshape(-1) for v in values.values()])
        variable = self._variable(list(values), flat, dtype, replicas)
        strategy = tf.distribute.get_strategy()
        start = 0
        for name, value in values.items():
            part = (slice(start, start + value.size), value.shape)
            self._specs[name] = StateSpec(variable, replicas, strategy, part)
            start += value.size
        return variable

    def _variable(
        self, names: Sequence[str], default: Any, dtype: tf.DType, replicas: str
    ) -> tf.Variable:
        for name in names:
            if name in self._specs:
                raise ValueError(f"{type(self).__name__} declares state {name!r} twice.")
        if replicas != "same" and replicas not in _COMBINE:
            raise ValueError(
                f"replicas must be 'same' or one of {sorted(_COMBINE)}; got {replicas!r}."
            )
        name = "gradguard_" + "_".join(names)
        if replicas == "same":
            variable = replicas_lib.state_variable(default, dtype, name)
        else:
            variable = replicas_lib.replica_local_variable(default, dtype, name)
        self._defaults.append((variable, default))
        return variable

    def add_scalar(self, tag: str, value: Callable[[], tf.Tensor]) -> None:
        """Declares a TensorBoard scalar computed from the state in-graph (from `_build`)."""
        self._scalars.append(Scalar(tag, value))

    @property
    def state_specs(self) -> Mapping[str, StateSpec]:
        """The declared state, by name."""
        return self._specs

    @property
    def scalars(self) -> Sequence[Scalar]:
        """The check's own TensorBoard scalars (besides the step's statistics)."""
        return tuple(self._scalars)

    def state(self) -> dict[str, np.ndarray]:
        """The state as NumPy values, replicas combined (a host read)."""
        if self.before_read is not None:
            self.before_read()
        return {
            name: spec.combine([v.numpy() for v in spec.local_values()])
            for name, spec in self._specs.items()
        }

    def reset(self) -> None:
        """Host: starts the state again from its defaults, once the steps waiting are folded."""
        if self.before_read is not None:
            self.before_read()
        for variable, default in self._defaults:
            variable.assign(default)

    def update(self, stats: Stats) -> None:
        """Folds one step into the state (in-graph)."""
        raise NotImplementedError

    def findings(self, context: Context) -> list[Finding]:
        """Turns the state into findings (host): `judge` applied to the current `state()`."""
        return self.judge(self.state(), context)

    def judge(self, state: Mapping[str, np.ndarray], context: Context) -> list[Finding]:
        """Turns state values (plain numbers, keyed as `state()`) into findings (host).

        The one judging code for a check: the live check calls it on its variables' values,
        `gradguard inspect` on values rebuilt from logged TensorBoard scalars (`replay`).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override findings(context) or judge(state, context)."
        )

    def notes(self, state: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        """What this check tells the others through `Context.notes` (host); default nothing."""
        del state
        return {}

    def summary(self, state: Mapping[str, np.ndarray]) -> Mapping[str, float]:
        """What this check adds to `TrainStep.statistics()` (host); default nothing."""
        del state
        return {}

    # State the logged scalars cannot rebuild exactly: `replay` gives it a value that makes no
    # finding (a finding that needs it is not made from logs).
    not_logged: frozenset[str] = frozenset()

    def replay(self, logged: Logged) -> Mapping[str, Any] | None:
        """The state rebuilt from a run's logged scalars (for ``gradguard inspect``).

        Args:
          logged: The run's gradguard scalars aligned on the logged steps, as the run stood at
            some step (`gradguard.inspect.logged.Logged`).

        Returns:
          State values keyed as `state()`, for `judge`; None when the logged scalars do not hold
          what the state needs (the check is then reported as not judged).
        """
        del logged
        return None

    def judge_logged(self, logged: Logged, context: Context) -> list[Finding] | None:
        """Findings from a run's logged scalars: `judge` on the `replay`ed state by default.

        Returns:
          The findings, or None when this check cannot be judged from what was logged.
        """
        state = self.replay(logged)
        return None if state is None else self.judge(state, context)


class StateReader:
    """Every check's state, replicas combined: each state variable read once, eagerly.

    Checks pack their states into a few variables (`Check.add_states`), so a read is a dozen or
    two variable reads, well under a millisecond every `read_every` steps. Reading them in one
    traced function instead costs a tenth of a second to trace, more than a short run's reads.

    Args:
      checks: The checks whose state to read, built.
    """

    def __init__(self, checks: Sequence[Check]):
        self.checks = list(checks)

    def __call__(self) -> list[dict[str, np.ndarray]]:
        """Each check's state as `Check.state()` gives it, in the order of `checks`."""
        # One call per hook (a bound method equals another of the same object and function).
        for before_read in dict.fromkeys(c.before_read for c in self.checks if c.before_read):
            before_read()
        specs = [dict(check.state_specs) for check in self.checks]
        values: dict[int, list[np.ndarray]] = {}  # by the variable's id: packed states share it
        for spec in (spec for s in specs for spec in s.values()):
            if id(spec.variable) not in values:
                values[id(spec.variable)] = [v.numpy() for v in spec.local_values()]
        return [
            {name: spec.combine(values[id(spec.variable)]) for name, spec in s.items()}
            for s in specs
        ]


def fold(checks: Sequence[Check], stats: Stats) -> None:
    """Folds one step into `checks` (in-graph); a `measured_only` check only if the step measures.

    Whether it does is known when tracing (`TrainStep`'s lean and measuring steps), or decided
    in-graph (the guard): then those checks fold inside one conditional.
    """
    for check in checks:
        if not check.measured_only:
            check.update(stats)
    measuring = [check for check in checks if check.measured_only]
    measured = tf.get_static_value(stats.measured)
    if not measuring or (measured is not None and not measured):
        return
    if measured is not None:
        for check in measuring:
            check.update(stats)
        return

    def fold_measuring(*values: tf.Tensor) -> None:
        for check in measuring:
            check.update(Stats.from_tensors(values))

    replicas_lib.run_if(stats.measured, fold_measuring, *stats.tensors(), rare=True)
