"""Gradient transforms, applied to the gradients before the optimizer update.

Modelled on optax's `GradientTransformation`: a transform has `init(variables) -> state` (the
initial values of its state) and `update(grads, state, variables) -> (grads, new_state)` (pure: it
returns new state values instead of assigning them). `chain(...)` composes transforms. The caller
(`gradguard.TrainStep`, `gradguard.guard`) keeps the state in `tf.Variable`s created once outside
the trace, so eager, `tf.function` and XLA behave the same.

`grads` and `variables` are parallel lists; a `None` gradient (a variable not connected to the
loss) is passed through as `None`. `tf.IndexedSlices` (embedding gradients) stay sparse.

A transform can veto the whole update through `should_apply(state)`; `skip_nonfinite` does, so a
NaN or Inf never reaches the weights.

Example:
  >>> transform = chain(clip_by_global_norm(1.0), skip_nonfinite())
  >>> step = gradguard.TrainStep(model, optimizer, loss_fn, transform=transform)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from gradguard import findings as findings_lib

# The norms every transform and statistic shares; still importable from here.
from gradguard.norms import computing_norms_once, global_norm, sq_norm

__all__ = [
    "GradientTransform",
    "adaptive_clip",
    "chain",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "computing_norms_once",
    "global_norm",
    "identity",
    "scale_gradient",
    "skip_nonfinite",
    "sq_norm",
]

Grad = Any  # tf.Tensor | tf.IndexedSlices | None
Grads = list[Grad]


def scale_gradient(grad: Grad, factor: tf.Tensor) -> Grad:
    """Multiplies a dense or sparse gradient by a float32 scalar, keeping its dtype."""
    if grad is None:
        return None
    if isinstance(grad, tf.IndexedSlices):
        values = grad.values * tf.cast(factor, grad.values.dtype)
        return tf.IndexedSlices(values, grad.indices, grad.dense_shape)
    return grad * tf.cast(factor, grad.dtype)


def _map_values(fn: Any, grad: Grad) -> Grad:
    """Applies `fn` to a dense gradient or to the values of a sparse one."""
    if grad is None:
        return None
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(fn(grad.values), grad.indices, grad.dense_shape)
    return fn(grad)


class GradientTransform:
    """Base class of gradient transforms.

    Subclasses override `update` and, when they keep state, `init`. State is a nested structure
    (dict, tuple) of tensors; the caller stores it in variables between steps.
    """

    def init(self, variables: Sequence[Any]) -> Any:
        """Returns the initial state for `variables`; stateless transforms return ``()``."""
        del variables
        return ()

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        """Returns the transformed gradients and the new state."""
        raise NotImplementedError

    def should_apply(self, state: Any) -> tf.Tensor | None:
        """Given the new state, whether the update may proceed (a bool tensor); None: always."""
        del state
        return None

    def on_read(self, state: Any, step: int) -> None:
        """Host-side hook, called with the state as NumPy values when the host reads.

        May raise a `GradGuardError` for a condition the transform refuses to go on with.
        """
        del state, step


class _Identity(GradientTransform):
    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        return list(grads), state


def identity() -> GradientTransform:
    """The transform that changes nothing."""
    return _Identity()


class _Chain(GradientTransform):
    def __init__(self, transforms: Sequence[GradientTransform]):
        for i, t in enumerate(transforms):
            if not isinstance(t, GradientTransform):
                raise TypeError(
                    f"chain() argument {i} is {type(t).__name__}, not a GradientTransform; "
                    "build one with gradguard.transforms (e.g. clip_by_global_norm(1.0))."
                )
        self.transforms = tuple(transforms)

    def init(self, variables: Sequence[Any]) -> Any:
        return tuple(t.init(variables) for t in self.transforms)

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        new_state = []
        for t, s in zip(self.transforms, state):
            grads, s = t.update(grads, s, variables)
            new_state.append(s)
        return grads, tuple(new_state)

    def should_apply(self, state: Any) -> tf.Tensor | None:
        gates = [t.should_apply(s) for t, s in zip(self.transforms, state)]
        gates = [g for g in gates if g is not None]
        if not gates:
            return None
        return tf.reduce_all(tf.stack(gates))

    def on_read(self, state: Any, step: int) -> None:
        for t, s in zip(self.transforms, state):
            t.on_read(s, step)


def chain(*transforms: GradientTransform) -> GradientTransform:
    """Applies transforms in order; the update goes ahead only if every transform allows it."""
    return _Chain(transforms)


class _ClipByValue(GradientTransform):
    def __init__(self, limit: float):
        self.limit = limit

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        def clip(g: tf.Tensor) -> tf.Tensor:
            return tf.clip_by_value(g, -self.limit, self.limit)

        return [_map_values(clip, g) for g in grads], state


def clip_by_value(limit: float) -> GradientTransform:
    """Clips every gradient element to ``[-limit, limit]``.

    Args:
      limit: Positive bound.

    Raises:
      ValueError: if `limit` is not positive.
    """
    _check_positive("clip_by_value", "limit", limit)
    return _ClipByValue(float(limit))


class _ClipByNorm(GradientTransform):
    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        clipped: Grads = []
        for g in grads:
            if g is None:
                clipped.append(None)
                continue
            norm = tf.sqrt(sq_norm(g))
            clipped.append(scale_gradient(g, self.max_norm / tf.maximum(norm, self.max_norm)))
        return clipped, state


def clip_by_norm(max_norm: float) -> GradientTransform:
    """Scales each gradient tensor separately so that its L2 norm is at most `max_norm`.

    Raises:
      ValueError: if `max_norm` is not positive.
    """
    _check_positive("clip_by_norm", "max_norm", max_norm)
    return _ClipByNorm(float(max_norm))


class _ClipByGlobalNorm(GradientTransform):
    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        factor = self.max_norm / tf.maximum(global_norm(grads), self.max_norm)
        return [scale_gradient(g, factor) for g in grads], state


def clip_by_global_norm(max_norm: float) -> GradientTransform:
    """Scales all gradients together so that their joint L2 norm is at most `max_norm`.

    The direction of the update is kept; only its length is limited.

    Raises:
      ValueError: if `max_norm` is not positive.
    """
    _check_positive("clip_by_global_norm", "max_norm", max_norm)
    return _ClipByGlobalNorm(float(max_norm))


def _unitwise_sq_norm(x: tf.Tensor) -> tf.Tensor:
    """Squared norms per output unit, as in optax.adaptive_grad_clip (Brock et al., 2021).

    Scalars and vectors are one unit; matrices and rank-3 kernels reduce over axis 0 (fan-in);
    convolution kernels (H, W, in, out) over their first three axes.
    """
    x = tf.cast(x, tf.float32)
    rank = x.shape.rank
    if rank is None or rank <= 1:
        return tf.reduce_sum(tf.square(x), keepdims=True)
    axes = [0] if rank in (2, 3) else list(range(rank - 1))
    return tf.reduce_sum(tf.square(x), axis=axes, keepdims=True)


class _AdaptiveClip(GradientTransform):
    def __init__(self, clipping: float, eps: float):
        self.clipping = clipping
        self.eps = eps

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        clipped = []
        for g, v in zip(grads, variables):
            # Sparse gradients (embeddings) have no unit structure to clip by; they pass through.
            if g is None or isinstance(g, tf.IndexedSlices):
                clipped.append(g)
                continue
            g_norm = tf.sqrt(_unitwise_sq_norm(g))
            w_norm = tf.sqrt(_unitwise_sq_norm(tf.convert_to_tensor(v)))
            max_norm = self.clipping * tf.maximum(w_norm, self.eps)
            factor = max_norm / tf.maximum(g_norm, 1e-6)
            scaled = tf.cast(g, tf.float32) * tf.minimum(factor, 1.0)
            clipped.append(tf.cast(scaled, g.dtype))
        return clipped, state


def adaptive_clip(clipping: float = 0.01, eps: float = 1e-3) -> GradientTransform:
    """Unit-wise adaptive gradient clipping (AGC).

    From Brock et al. 2021, "High-Performance Large-Scale Image Recognition Without
    Normalization". Each output unit's gradient is scaled so that
    ``|g_unit| <= clipping * max(|w_unit|, eps)``.
    Sparse gradients pass through unclipped.

    Args:
      clipping: Maximum ratio of gradient norm to weight norm per unit.
      eps: Floor on the weight norm, so zero-initialized units can still move.

    Raises:
      ValueError: if `clipping` or `eps` is not positive.
    """
    _check_positive("adaptive_clip", "clipping", clipping)
    _check_positive("adaptive_clip", "eps", eps)
    return _AdaptiveClip(float(clipping), float(eps))


class _SkipNonfinite(GradientTransform):
    def __init__(self, max_consecutive: int | None):
        self.max_consecutive = max_consecutive
        self._raised_for = 0  # the run length last raised for: raise once per new record

    def init(self, variables: Sequence[Any]) -> Any:
        zero = tf.constant(0, tf.int64)
        return {"consecutive": zero, "longest": zero, "total": zero}

    def update(self, grads: Grads, state: Any, variables: Sequence[Any]) -> tuple[Grads, Any]:
        # A NaN or Inf anywhere makes the sum of squares non-finite: one reduction per gradient,
        # shared with the norm statistics.
        finite = tf.math.is_finite(tf.square(global_norm(grads)))
        skipped = tf.cast(tf.logical_not(finite), tf.int64)
        consecutive = (state["consecutive"] + 1) * skipped
        return list(grads), {
            "consecutive": consecutive,
            "longest": tf.maximum(state["longest"], consecutive),
            "total": state["total"] + skipped,
        }

    def should_apply(self, state: Any) -> tf.Tensor | None:
        return tf.equal(state["consecutive"], 0)

    def on_read(self, state: Any, step: int) -> None:
        longest = int(state["longest"])
        if self.max_consecutive is not None and longest >= self.max_consecutive:
            if longest <= self._raised_for:
                return
            self._raised_for = longest
            raise findings_lib.Finding(
                "non-finite",
                f"{longest} updates in a row had NaN or Inf gradients and were skipped "
                f"(limit max_consecutive={self.max_consecutive}); training cannot recover by "
                "skipping: lower the learning rate, clip gradients, or look for log(0) or a "
                "division by zero in the loss.",
                step=step,
                details={"longest_run": longest, "total_skipped": int(state["total"])},
            ).error()


def skip_nonfinite(max_consecutive: int | None = 10) -> GradientTransform:
    """Skips the whole update when any gradient holds NaN or Inf, and counts the skips.

    A skipped update leaves the weights, the optimizer state and its iteration counter untouched.

    Args:
      max_consecutive: After this many skipped updates in a row, the next host read raises
        `gradguard.NonFiniteError`. `None` never raises (the `non-finite` check still reports).

    Raises:
      ValueError: if `max_consecutive` is not a positive integer or None.
    """
    if max_consecutive is not None and (
        not isinstance(max_consecutive, int) or max_consecutive < 1
    ):
        raise ValueError(
            f"skip_nonfinite(max_consecutive=...) must be a positive int or None; "
            f"got {max_consecutive!r}."
        )
    return _SkipNonfinite(max_consecutive)


def _check_positive(fn: str, arg: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{fn}({arg}=...) must be a positive number; got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(
            f"{fn}({arg}=...) must be finite; got {value!r}, which turns every gradient into "
            f"NaN. To not clip, leave {fn} out of the transform."
        )
