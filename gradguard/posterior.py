"""A VAE whose posterior collapsed onto the prior (`posterior-collapsed`).

A variational autoencoder's loss adds to the reconstruction the KL divergence of the encoder's
Gaussian posterior from the prior, ``-0.5 * sum(1 + log_var - mu**2 - exp(log_var))``. When
the KL term outweighs what the latent code buys the reconstruction, the encoder gives up: every
input maps to the prior, the KL falls to 0, z carries no information, and the decoder learns
the average output. The loss falls and nothing fails. The usual cause is the weighting: a
reconstruction averaged over the D features (``ops.mean(binary_crossentropy(x, x_hat))``)
against a KL summed over the latents weighs the KL D times more than the ELBO does
(keras#3383; hunt31 b07: KL 1.8e-4 nats, held-out reconstruction error 0.157 against 0.033 with
the reconstruction summed over the pixels).

Read from a step's traced loss at each trace (`Forensics.traced_loss`): a sum of the terms
``exp(v)``, ``v`` and ``m**2`` (signs aside) of two tensors of one shape read from variables,
the encoder's log-variance and mean. The KL per example is computed from them in-graph, each
step (its latest value kept), and found collapsed when under `COLLAPSED` nats after `STEPS`
steps. A KL that is large, or a run shorter than that (the KL starts near 0), stays silent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from gradguard import diagnose, replicas
from gradguard.findings import Finding

__all__ = ["COLLAPSED", "STEPS", "PosteriorKL"]

COLLAPSED = 0.01  # nats of KL per example: the latent code tells the decoder nothing
STEPS = 200  # steps observed before judging (an untrained encoder's KL is near 0 too)
_TERMS = ("AddV2", "Add", "Sub", "Neg")  # (the terms of a sum, signs aside)


class PosteriorKL:
    """The KL per example of each traced loss's Gaussian posterior, folded in-graph."""

    def __init__(self) -> None:
        # (step key) -> (steps seen, the latest KL per example), folded in-graph.
        self._kl: dict[int, tf.Variable] = {}

    def watch(self, key: int, loss: Any) -> None:
        """In-graph, each trace of step `key`: folds its posterior's KL, if the loss has one."""
        found = _mean_and_log_variance(diagnose.ancestors(loss))
        if found is None:
            return
        mean, log_variance = (tf.cast(t, tf.float32) for t in found)
        axes = list(range(1, mean.shape.rank))
        terms = tf.exp(log_variance) + tf.square(mean) - 1.0 - log_variance
        kl = 0.5 * tf.reduce_mean(tf.reduce_sum(terms, axis=axes))
        if key not in self._kl:
            self._kl[key] = replicas.zeros_state(2, "gradguard_posterior_kl")
        seen = self._kl[key].read_value()
        self._kl[key].assign(tf.stack([seen[0] + 1.0, kl]))

    def findings(self, step: int) -> list[Finding]:
        """`posterior-collapsed` for a KL under `COLLAPSED` after `STEPS` steps (a host read)."""
        found = []
        for state in self._kl.values():
            steps, kl = (float(v) for v in state.numpy())
            if steps < STEPS or not kl < COLLAPSED:
                continue
            message = (
                f"The KL divergence of the encoder's posterior from the prior is {kl:.2g} nats "
                f"per example after {steps:.0f} steps: every input is encoded as the prior, so "
                "z carries no information and the decoder learns the average output (posterior "
                "collapse). Usually the KL outweighs the reconstruction: a reconstruction loss "
                "averaged over the D features (a mean) against a KL summed over the latents "
                "weighs the KL D times more than the ELBO does. Sum the reconstruction over the "
                "features (or multiply its mean by D), or anneal the KL's weight up from 0."
            )
            details = {"kl_nats": kl, "steps": steps}
            found.append(Finding("posterior-collapsed", message, step, details=details))
        return found


def _mean_and_log_variance(ops: set[tf.Operation]) -> tuple[tf.Tensor, tf.Tensor] | None:
    """The (mean, log-variance) of a KL term ``1 + v - m**2 - exp(v)`` among `ops`, if any."""
    for op in sorted(ops, key=lambda op: op.name):
        if op.type not in ("AddV2", "Add", "Sub"):
            continue
        terms = list(_terms(op.outputs[0], depth=6))
        exps = [t.op.inputs[0] for t in terms if t.op.type == "Exp"]
        squares = [t.op.inputs[0] for t in terms if t.op.type == "Square"]
        names = {t.name for t in terms}
        for v in exps:
            if v.name not in names or not v.shape.rank or not diagnose.reads_variables(v):
                continue
            for m in squares:
                if m.shape.as_list() == v.shape.as_list() and diagnose.reads_variables(m):
                    return m, v
    return None


def _terms(tensor: tf.Tensor, depth: int) -> Iterator[tf.Tensor]:
    """The terms `tensor` sums, through sums, differences and negations (`depth` at most)."""
    op = tensor.op
    if depth and op.type in _TERMS:
        for t in op.inputs:
            yield from _terms(t, depth - 1)
    else:
        yield tensor
