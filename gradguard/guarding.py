"""`Guard`: the checks and transforms of `TrainStep`, for code gradguard did not write.

While a guard is active (`instrument`), every `tf.GradientTape.gradient` call and its
optimizer's updates (`apply_gradients` / `apply`) go through it (`gradguard.instrument`):

* the gradients the user passes to the optimizer go through the same `StepCore` as in
  `TrainStep` (transforms, then the real update, then the checks), one core per optimizer;
* what the user's code did is recorded in a `Ledger`, from which the host judges
  `missing-apply` and `variable-not-trained`; gradients that are all None are explained at once
  (`none-gradient`, with where the chain broke), and so is a gradient applied to a variable
  other than its own (`pairing`), gradients accumulated in variables never reset
  (`accumulators`), variables read that never got a gradient (`unreached`), a loss scaler's loss
  never scaled (`lossscale`), a replica's loss averaged over its examples (`replicaloss`),
  gradients of the predictions (`predictiongrad`) or of a tape older than an update (`staletape`).

Decorators: `gradguard.decorator`; ``gradguard run`` uses `Guard` process-wide (not `guard`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import tensorflow as tf

from gradguard import _compat, diagnose, instrument, lossgraph, replicas, updating
from gradguard import activations as activations_lib
from gradguard import findings as findings_lib
from gradguard.accumulators import Accumulators
from gradguard.core import StepCore
from gradguard.forensics import Forensics
from gradguard.fractionalids import FractionalIds
from gradguard.ledger import Ledger
from gradguard.ledger import key as ledger_key
from gradguard.lossscale import LossScaling
from gradguard.manual import LossWatch
from gradguard.modes import inference_mode
from gradguard.naming import VariableNames
from gradguard.options import Options, check_optimizer
from gradguard.pairing import Pairing
from gradguard.predictiongrad import PredictionGradients
from gradguard.replicaloss import mean_per_replica
from gradguard.stages import Stages
from gradguard.staletape import StaleTapes
from gradguard.tap import Tap
from gradguard.unadapted import InputScales
from gradguard.unreached import Unreached

__all__ = ["Guard"]


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class Guard:
    """Instruments optimizers and gradient tapes, and diagnoses what it sees.

    Args:
      model: The model being trained, if known, or a list of them (a GAN's generator and
        discriminator): their trainable variables are expected to be updated, and a single
        model's name is dropped from variable names.
      optimizer: The optimizer the step applies, or a list of them. Every Keras optimizer the
        guarded code applies is guarded, named here or not; the named ones that are built get
        their checks before the first call (no variable is created while tracing). `None` with
        `instrument_process`.
      options: The validated options (`Options.create`).
      raise_errors: Whether findings with policy `raise` raise (False under `gradguard run`,
        which must not change how the script ends).
      stages: The optimizers an earlier guard of the same model saw (a fine-tuning stage's
        `GuardCallback`), so that one starting on weights they trained is a resumed run.
    """

    def __init__(
        self,
        model: Any = None,
        optimizer: Any = None,
        options: Options | None = None,
        *,
        raise_errors: bool = True,
        stages: Stages | None = None,
    ):
        optimizers, models = _as_list(optimizer), _as_list(model)
        self.options = options if options is not None else Options.create()
        self.cadence = self.options.read_every
        self.models = models
        self.model = models[0] if len(models) == 1 else None
        self.optimizer = optimizers[0] if optimizers else None
        self.policy = self.options.policy
        self.raise_errors = raise_errors
        self.report = findings_lib.Report()
        self.ledger = Ledger(models)
        self._names = VariableNames(self.model, self.ledger)
        self.extra_sources = self.ledger.extra_sources  # (watched, not asked for: `instrument`)
        self._pairing = Pairing(ledger_key)  # which variable each gradient is of
        # Gradients of a model's outputs; of a tape recorded before an update.
        self._predictions, self._stale = PredictionGradients(), StaleTapes()
        # With no optimizer named, a loop may update by hand: its losses are watched for NaN.
        self._manual = LossWatch() if self.optimizer is None else None
        watched = self.model is not None and self.options.watches_activations()  # (its layers)
        name = str(getattr(self.model, "name", ""))
        self._recorder = activations_lib.Recorder(self.model, name) if watched else None
        self._tap = Tap()  # (layers called under a tape: Keras' variables, frozen, outputs)
        self.inputs_read = (InputScales(), FractionalIds())  # (layer inputs: `Tap.layer_inputs`)
        self.accumulators = Accumulators()  # (gradients summed in variables)
        self.cores: dict[int, StepCore] = {}
        self.stages = stages if stages is not None else Stages()  # a game's players, or stages
        self._calls = 0  # host-side calls of the guarded function
        self.process_wide = False  # (`instrument_process`: every call in the process)
        self._pending: list[findings_lib.Finding] = []
        self._traced_losses: list[tuple[tf.Tensor, int]] = []  # judged when traced to the end
        self._unwatched_reported = False  # a gradient asked of a tensor the tape did not watch
        self.forensics = Forensics(self._tap, self.ledger, self._names)
        self._unreached = Unreached(self._tap, self.ledger, self._names)
        self._last_loss: tf.Tensor | None = None
        self.loss_scaling = LossScaling()  # (and the latest loss scaled)
        # A guard entered while another decorator's guard listens hands everything to it (one
        # report for the step: stacked decorators, a guarded step calling another).
        self._outer: Guard | None = None
        for each in models:
            self.ledger.expect(list(getattr(each, "trainable_variables", [])))
        for each in optimizers:
            check_optimizer(each)
            inner = _compat.inner_optimizer(each)
            if inner.built:
                # Its variables now, not in the user's first trace: creating variables there
                # makes tf.function trace the step a second time.
                self._core(inner, inner.apply, _compat.optimizer_variables(inner))

    @property
    def lead(self) -> Guard:
        """The guard that records for this one: itself, or the outer guard it delegates to."""
        return self if self._outer is None else self._outer.lead

    # -- instrumentation -----------------------------------------------------------------------

    @contextlib.contextmanager
    def instrument(self) -> Iterator[Guard]:
        """Routes gradient calls and optimizer updates through this guard, for a block.

        Every Keras optimizer the block applies is intercepted. Inside another decorator's
        guard, this one delegates to it, adding its models to what that guard expects.
        """
        outer = instrument.listener()
        if isinstance(outer, Guard) and outer is not self and not outer.process_wide:
            if self._outer is None:
                self._outer = outer
                outer.lead.adopt(self)
            yield self
            return
        with contextlib.ExitStack() as stack:
            stack.enter_context(instrument.intercepting_all(self, outermost=False))
            stack.enter_context(instrument.tapping_layers(self._tap))
            if self._recorder is not None:
                stack.enter_context(self._recorder.recording())
            yield self

    def adopt(self, inner: Guard) -> None:
        """Takes on what an inner guard expects (its models' variables)."""
        for model in inner.models:
            self.ledger.expect(list(getattr(model, "trainable_variables", [])))
        self.models += [model for model in inner.models if model not in self.models]

    @contextlib.contextmanager
    def instrument_process(self, *, activations: bool = False) -> Iterator[Guard]:
        """Routes every gradient call and every Keras optimizer update through this guard.

        Args:
          activations: Also record the outputs of activation-bearing layers process-wide in
            the training forward pass (`tap.Tap`): each optimizer's checks that watch
            activations see those of the model it trains.
        """
        self.process_wide = True
        self._tap.outputs = activations
        with instrument.tapping_layers(self._tap), instrument.intercepting_all(self):
            with instrument.reporting_assigns():
                yield self

    # -- what the user's code does (in-graph or eager) -----------------------------------------

    def on_gradient(
        self, tape: Any, target: Any, sources: Any, result: Any, extra: Any, weighted: bool
    ) -> None:
        """A `tape.gradient` call: what it asked (`weighted`: with `output_gradients`) and got."""
        self._tap.on_gradient()
        flat_sources = tf.nest.flatten(sources)
        flat_result = tf.nest.flatten(result) if result is not None else [None] * len(flat_sources)
        pairs = [(s, g) for s, g in zip(flat_sources, flat_result) if _compat.is_variable(s)]
        self._pairing.on_gradient(pairs)
        self._stale.on_gradient(tape, pairs)
        self._predictions.on_gradient(self._tap.model_returning(target), target, pairs, weighted)
        unwatched = [s for s, g in zip(flat_sources, flat_result) if g is None]
        unwatched = [s for s in unwatched if not _compat.is_variable(s)]
        if unwatched and not self._unwatched_reported:
            self._unwatched_reported = True
            self._pending.append(diagnose.unwatched_tensor_finding(unwatched, self._calls))
        if not pairs:
            return
        variables = [v for v, _ in pairs]
        if isinstance(target, tf.Tensor) and target.shape.rank == 0:
            scaled, loss = self.loss_scaling.latest
            self._last_loss = target = loss if target is scaled else target
            if self._manual is not None and not self.forensics.in_keras_step():
                self._manual.on_loss(target)  # (Keras' own step always applies an optimizer)
            if tf.inside_function() and hasattr(target, "graph"):  # traced once: read the graph
                self._pending += lossgraph.graph_findings(target, self._calls, variables)
                self._pending += filter(None, self.forensics.compiled_loss(self._calls))
                self._traced_losses.append((target, self._calls))
        self.ledger.tape_unwatching |= not getattr(tape, "_watch_accessed_variables", True)
        self.ledger.on_gradient(pairs, tape.watched_variables(), extra)
        if all(g is None for _, g in pairs):
            breaks, every = diagnose.tape_breaks(tape, target, variables), range(len(variables))
            finding = diagnose.none_gradient_finding(
                self._names(variables), every, breaks, self._calls
            )
            self._pending.append(finding)
            if self.raise_errors and self.policy.of(finding) is findings_lib.Policy.RAISE:
                raise finding.error()  # before the optimizer fails on it with less to say

    def on_warning(self, message: str) -> None:
        """A Python warning raised while the guard listens (Keras' own diagnoses)."""
        self.forensics.on_warning(message)

    def on_fit_batch(self, model: Any, data: Any) -> None:
        """Keras' own train step is about to run on `data` (fit, train_on_batch)."""
        self.forensics.fit_batch(model, data)

    def on_fit_start(self, model: Any, arguments: Mapping[str, Any]) -> None:
        """`fit` is called (under ``gradguard run``): its arrays are read on the host."""
        self._pending += self.forensics.fit_given(self.cores, model, arguments, self._calls)

    def on_fit_end(self, model: Any, arguments: Mapping[str, Any], history: Any) -> None:
        """`fit` returned (under ``gradguard run``): its held-out data and weights judged."""
        fit = (arguments, history)
        self._pending += self.forensics.fit_ended(self.cores, model, fit, self.steps_seen() - 1)

    def on_heldout(self, model: Any, call: str, x: Any) -> None:
        """`evaluate`, `predict` or `fit`'s validation (`call`) is given the inputs `x`."""
        self._pending += self.forensics.heldout_given(model, call, x, self.steps_seen() - 1)

    def on_assign(self, variable: Any, method: str, value: Any) -> None:
        """A variable is set by `method` (``assign``...) to or by `value` (an accumulator?)."""
        self.accumulators.on_assign(variable, method, value)

    def on_scaled_loss(self, optimizer: Any, loss: Any, scaled: Any) -> None:
        """A LossScaleOptimizer scaled `loss`: a gradient of `scaled` is taken for `loss`."""
        self.loss_scaling.on_scale(optimizer, loss, scaled)

    def on_scaled_apply(self, optimizer: Any) -> None:
        """A LossScaleOptimizer's update call (its inner update may be skipped in-graph)."""
        self.loss_scaling.on_apply(optimizer, self._last_loss)
        self.ledger.on_scaled_apply()

    def on_apply(self, optimizer: Any, original: Any, grads: Any, variables: Any) -> Any:
        """An optimizer update: through the optimizer's `StepCore` instead of straight on."""
        grads = list(grads)
        variables = list(_compat.optimizer_variables(optimizer) if variables is None else variables)
        self.ledger.on_apply(variables)
        self._pending += self._pairing.misapplied(grads, variables, self._names, self._calls)
        self._pending += mean_per_replica(self._last_loss, self._calls)  # (in a replica?)
        self._pending += self._predictions.on_apply(grads, self._calls)
        self._pending += self._stale.on_apply(grads, variables, self._calls, self._names)
        explicit_none = [v for g, v in zip(grads, variables) if g is None]
        if explicit_none and len(explicit_none) < len(variables):
            loss, names, step = self._last_loss, self._names, self._calls
            self._pending += diagnose.partly_none(loss, variables, explicit_none, names, step)
        if len(explicit_none) == len(variables):
            # Keras raises on them: the findings that say why are kept and logged first.
            findings_lib.emit(self.report, self._pending, self.policy, raise_errors=False)
            self._pending = []
            return original(grads, variables)
        core = self._core(optimizer, original, variables)
        if self.process_wide:  # (where every reset is seen: `instrument.reporting_assigns`)
            self.accumulators.on_apply(core, grads, variables)
        index = {id(v): i for i, v in enumerate(core.variables)}
        if any(id(v) not in index for v in variables):
            return original(grads, variables)  # Keras names the unknown variable itself
        given = {index[id(v)]: g for g, v in zip(grads, variables)}
        full = [given.get(i) for i in range(len(index))]
        absent = set(range(len(index))) - set(given)  # (not in this call)
        # A loss not visible here (another graph's) is not known: the loss checks stay silent.
        loss = self._last_loss if activations_lib.visible_here(self._last_loss) else None
        self.forensics.traced_loss(core, loss)  # (an eager loss has no graph to read)
        for judge in self.inputs_read:
            judge.observe(self._tap.layer_inputs())
        bad_input = functools.partial(self.forensics.batch_faults, core)
        before_apply = functools.partial(self.forensics.keep_batch, core)
        activations = self._activations(optimizer)
        core.update(loss, full, absent, activations, bad_input=bad_input, before_apply=before_apply)
        return None

    def _activations(self, optimizer: Any) -> tuple[Any, ...]:
        """The watched layer outputs of the forward pass before this update, one per site."""
        if self._recorder is not None and optimizer is _compat.inner_optimizer(self.optimizer):
            return self._recorder.take()
        return self._tap.take_for(optimizer)

    def _core(self, optimizer: Any, original: Any, variables: list[Any]) -> StepCore:
        if (core := self.cores.get(id(optimizer))) is not None:
            return core
        self._pending += updating.build(optimizer, variables, self._calls)
        if optimizer.built:
            variables = _compat.optimizer_variables(optimizer)
        old = self.stages.replaced(optimizer, original, variables, self.cores)
        if old is not None:  # made anew per update or task: the core of the one it replaces goes on
            self._tap.hand_over(old, optimizer)
            core = self.cores[id(optimizer)] = self.cores.pop(old)
            return core
        checks = self.options.new_checks(first=not self.cores)
        watchers = [c for c in checks if c.watches_activations]
        if watchers and self._recorder is not None:
            sites = self._recorder.fix_sites()
        elif watchers and self._tap.outputs and not replicas.multi_replica():
            sites = self._tap.watch(optimizer, variables, self._names.model_name(variables))
        else:
            sites = []  # nothing to capture: the check stays silent
        for check in watchers:
            check.watch(sites)
        # Several optimizers (or ones not named) write to a directory each.
        named = _compat.inner_optimizer(self.optimizer) if self.optimizer is not None else None
        several = bool(self.cores) or named is not optimizer
        core = StepCore(
            optimizer,
            variables,
            self.options,
            checks=checks,
            model_name=self._names.model_name(variables),
            apply_fn=original,
            report=self.report,
            sink=self.options.sink_for(optimizer.name if several else None),
        )
        self.stages.add(core)
        self.cores[id(optimizer)] = core
        self.forensics.watch(core)
        return core

    def _adversarial(self) -> bool:
        """A game's (a GAN): optimizers in turn, or a tape reading variables trained elsewhere."""
        return self.stages.in_turn() or any(self.ledger.changed(k) for k in self.ledger.unasked)

    # -- host side -----------------------------------------------------------------------------

    def after_call(self, calls: int = 1) -> None:
        """Counts `calls` guarded calls (fit runs several a call) and reads on the cadence."""
        if self._outer is not None:
            return  # the outer guard counts the call and reads
        first, self._calls = self._calls, self._calls + calls
        if self._pending or any(self.cadence(k) for k in range(first, self._calls)):
            self.read()

    @_compat.without_op_callbacks()  # (its state holds NaN and infinities: not the user's)
    def read(self, *, final: bool = False) -> findings_lib.Report:
        """Judges everything seen so far; raises per policy unless `final` or not raising.

        Returns:
          The report with all findings so far (the outer guard's, when delegating).
        """
        if self._outer is not None:
            return self.lead.read(final=final)
        raise_errors = self.raise_errors and not final
        known = {f.key for f in self.report.findings}
        step = max(self.steps_seen() - 1, 0)
        layers = [*self.models, *self._tap.layers()]
        keras_variables = {ledger_key(v): v for layer in layers for v in layer.weights}
        untracked = self.ledger.untracked(layers)
        found = [*self._pending, *self._unreached.findings(step)]
        found += self.forensics.traced_findings(self._traced_losses)
        found += self.forensics.label_findings(step) + self.stages.findings(step)
        found += [f for judge in self.inputs_read for f in judge.findings(step)]
        found += self.forensics.model_findings(self.cores.values(), step, final)
        found += inference_mode(self._tap.layers(), self._tap.told, self.cores.values(), step)
        found += self._manual.judge() if self._manual is not None and not self.cores else []
        found += self.accumulators.findings(step) + self.loss_scaling.findings(step)
        found += self.ledger.judge(step, final, self._names, keras_variables, bool(untracked))
        self._pending, self._traced_losses = [], []
        findings_lib.emit(self.report, found, self.policy, raise_errors=False)
        for core in self.cores.values() if self._adversarial() else ():
            core.ignore("loss-not-decreasing")
        for key, core in self.cores.items():  # (a core's optimizer is a scaler's inner one)
            self.loss_scaling.note(key, core.notes)
            self.forensics.before_read(core)
            core.read(core.steps, raise_errors=False, final=final)
        self.report.steps_observed = steps = self.steps_seen()
        if raise_errors:
            findings_lib.raise_new(self.report, known, self.policy)
            for core in self.cores.values():
                core.check_transform(steps - 1)
        return self.report

    def steps_seen(self) -> int:
        """Calls, or updates where none is counted (stages add up, players in turn count once)."""
        cores = [core.steps for core in self.cores.values()]
        updates = max(cores) if self.stages.in_turn() else sum(cores)
        return max(self._calls, updates if cores else self.ledger.gradient_calls)

    def saw_training(self) -> bool:
        """Whether any gradient was computed or any update applied under this guard."""
        return bool(self.ledger.gradient_calls or self.ledger.updates)
