"""Penalties a hand-written loss never adds (`regularization-ignored`).

A Keras layer given a regularizer (``kernel_regularizer=L1(...)``, any weight's
``regularizer``, an ``activity_regularizer``) keeps its penalty in ``model.losses``, which
`fit` adds to the loss. A hand-written step (a `tf.GradientTape` loop, a ``train_step``
override that computes its own loss) must add them itself: ``loss += tf.add_n(model.losses)``.
Forgotten, the penalty never reaches the gradients: the model trains unregularized and fits
the noise the regularizer was there to hold back (held-out accuracy 0.59 against 0.81 with an
L1 penalty over 400 features and 120 examples). Nothing fails.

Read by the guard and ``gradguard run`` (`instrument.tapping_layers` notes every read of a
layer's ``losses`` under a recording tape, into a loss; Keras' own train step reads the model's
in ``compute_loss``, its test step's read does not count): at the final read,
a layer called in a training forward pass, with a regularizer and trainable weights an
optimizer updated, whose penalties were never read, neither its own ``losses`` nor those of a
model holding it, in a model none of whose layers' penalties were read (a step that adds some
layers' ``losses`` leaves the others out on purpose: normalization parameters kept free of
decay). A layer frozen, or only called (a teacher, a target network), is left alone,
and so is one whose weights a traced loss penalizes by hand (``tf.nn.l2_loss(kernel)``,
`penalized`) or that a Keras regularizer was called on under the tape; a penalty written with
TensorFlow ops in an eager loss is not seen.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from gradguard import _compat
from gradguard.diagnose import ancestors, variable_placeholders
from gradguard.findings import Finding
from gradguard.ledger import Ledger, key
from gradguard.tap import Tap

__all__ = ["ignored", "penalized"]

_PENALTIES = frozenset({"Square", "Abs", "L2Loss", "Pow", "EuclideanNorm"})


def _penalized(layer: Any) -> list[str]:
    """What of `layer` itself carries a penalty: its regularized weights, its activity."""
    weights = getattr(layer, "_trainable_variables", None) or []  # (its own, not sublayers')
    named = [w.name for w in weights if getattr(w, "regularizer", None) is not None]
    return named + (["activity"] if getattr(layer, "activity_regularizer", None) else [])


def penalized(loss: tf.Tensor, variables: list[Any]) -> set[int]:
    """The keys of `variables` a traced `loss` penalizes by hand (a weight decay written out).

    ``tf.nn.l2_loss(kernel)``, ``tf.reduce_sum(k * k)``, the layer's own regularizer called
    on its kernel, a norm of all kernels flattened together: the loss reads the variable again
    beside its layer's one read in the forward pass, or squares (takes the absolute value, the
    norm of) its one read. (A layer called twice, as in a siamese network, reads it twice too:
    left alone.)
    """
    variables = [v for v in variables if getattr(v, "regularizer", None) is not None]
    if not variables:
        return set()  # (nothing to tell: no walk of the graph)
    ops = ancestors(loss)
    holders = variable_placeholders(loss.graph, variables)
    found = set()
    for variable, holder in zip(variables, holders):
        values = [
            op.outputs[0] for op in ops if op.type == "ReadVariableOp" and op.inputs[0] is holder
        ]
        if len(values) > 1:
            found.add(key(variable))
        while values:
            value = values.pop()
            for op in value.consumers():
                if op not in ops:
                    continue
                if op.type in ("Identity", "Cast"):
                    values.append(op.outputs[0])
                elif op.type in _PENALTIES or op.type == "Mul" and op.inputs[0] is op.inputs[1]:
                    found.add(key(variable))
    return found


def ignored(tap: Tap, ledger: Ledger, step: int) -> Finding | None:
    """`regularization-ignored` for trained layers whose penalties were never read."""
    read = {
        id(each) for layer in tap.penalties_read.values() for each in _compat.flatten_layers(layer)
    }
    # A model some of whose layers' penalties were read leaves the others out on purpose
    # (normalization parameters kept free of weight decay).
    for model, _ in tap.models():
        members = {id(each) for each in _compat.flatten_layers(model)}
        if members & set(tap.penalties_read):
            read |= members
    unread = []
    for layer in tap.layers():
        weights = [key(w) for w in getattr(layer, "trainable_weights", [])]
        if id(layer) in read or not any(k in ledger.applied for k in weights):
            continue  # (its penalties read, or it is not trained: frozen, a teacher)
        if any(k in tap.penalized for k in weights):
            continue  # (its weights penalized by hand in a traced loss)
        penalties = _penalized(layer)
        if penalties:
            unread.append(f"{layer.name} ({', '.join(penalties)})")
    if not unread:
        return None
    message = (
        f"The regularizers of {', '.join(unread)} never reach the loss: the training step "
        "never reads model.losses, where Keras keeps their penalties (fit adds them; a "
        "hand-written step must), so the model trains unregularized. Add them to the loss "
        "inside the tape: loss = loss_fn(y, model(x, training=True)) + tf.add_n(model.losses) "
        "(in a train_step override, self.compute_loss adds them)."
    )
    return Finding("regularization-ignored", message, step, details={"layers": unread})
