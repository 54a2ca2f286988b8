"""Inputs and labels moved by random draws of their own (`augmentation-misaligned`).

A segmentation mask (or any label laid out like the input: keypoints, a depth map) must be
flipped, rotated or cropped exactly as its image is. Two calls of a random op, one on the image
and one on the mask, draw independently: half the time the mask is flipped and the image is
not, and the model learns from labels that no longer lie over their objects (hunt18: held-out
soft IoU 0.45 against 0.87 with one flip of the stacked image and mask; the loss stays high).
Nothing fails.

Read under ``gradguard run`` as `fit` starts on a `tf.data.Dataset`, from the traced function
of each of its maps that returns inputs and labels: an output that passes a geometric op (a
reverse, a projective transform, a crop or roll, in a ``cond`` too, as
``tf.image.random_flip_left_right``'s) is moved by the random draws it is made from. Reported
when the inputs and the labels are both moved, by disjoint draws. One draw deciding both (a
flip of the two stacked, one ``tf.random.uniform`` in a ``tf.cond`` around both, stateless ops
given one seed, a constant or one tensor: a seed zipped into the data set) is silent, as is a
label never moved (a class id) or moved by no draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from gradguard import augmentation
from gradguard.diagnose import ancestors
from gradguard.findings import Finding

__all__ = ["finding"]

# Ops that move pixels: flips, rotations and shears, crops, shifts.
_GEOMETRIC = frozenset(
    {"ReverseV2", "Reverse", "ImageProjectiveTransformV2", "ImageProjectiveTransformV3",
     "CropAndResize", "Roll", "Slice", "StridedSlice"}
)  # fmt: skip
_BRANCHING = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})


def _random(op: tf.Operation) -> bool:
    return "Random" in op.type or op.type.startswith("Rng")


def _draw_key(op: tf.Operation) -> Any:
    """What decides a random op's numbers: a stateless op's inputs (its seed), or the op."""
    if not op.type.startswith("StatelessRandom"):
        return op.name
    key = []
    for tensor in op.inputs:
        value = tf.get_static_value(tensor)
        if value is not None:
            key.append(tuple(value.ravel().tolist()))
        elif tensor.op.type.startswith("StatelessRandom"):  # (a key made from the seed)
            key.append((_draw_key(tensor.op), tensor.value_index))
        else:  # (one seed tensor: an argument of the map, a draw made once for both)
            key.append((tensor.op.name, tensor.value_index))
    return (op.type, tuple(key))


def _draws_moving(output: tf.Tensor, branches_move: Mapping[str, bool]) -> set[Any]:
    """The random draws `output` is made from, if it passes a geometric op (else none)."""
    ops = ancestors(output)
    moved = any(
        op.type in _GEOMETRIC
        or (op.type in _BRANCHING and any(branches_move.get(n, False) for n in _branch_names(op)))
        for op in ops
    )
    return {_draw_key(op) for op in ops if _random(op)} if moved else set()


def _branch_names(op: tf.Operation) -> list[str]:
    names = []
    for attr in ("then_branch", "else_branch", "branches"):
        try:
            value = op.get_attr(attr)
        except ValueError:
            continue
        names += [v.name for v in (value if isinstance(value, list) else [value])]
    return names


def _moves_by_function(graph: Any) -> dict[str, bool]:
    """Per function of `graph`'s library, whether it holds a geometric op."""
    try:
        library = graph.as_graph_def().library.function
    except (AttributeError, ValueError):
        return {}
    return {f.signature.name: any(n.op in _GEOMETRIC for n in f.node_def) for f in library}


def finding(arguments: Mapping[str, Any], step: int) -> Finding | None:
    """`augmentation-misaligned` for a map of `fit`'s data set moving inputs and labels apart."""
    x = arguments.get("x")
    if not isinstance(x, tf.data.Dataset):
        return None
    for each in augmentation.upstream(x):
        function = augmentation.map_function(each)
        spec = getattr(each, "element_spec", None)
        if function is None or not isinstance(spec, tuple) or len(spec) not in (2, 3):
            continue
        outputs = list(getattr(function.graph, "outputs", []))
        inputs = len(tf.nest.flatten(spec[0]))
        if len(outputs) != len(tf.nest.flatten(spec)) or not inputs:
            continue
        moves = _moves_by_function(function.graph)
        x_draws = set().union(*(_draws_moving(t, moves) for t in outputs[:inputs]))
        y_draws = set().union(*(_draws_moving(t, moves) for t in outputs[inputs:]))
        if x_draws and y_draws and not x_draws & y_draws:
            name = augmentation.function_name(function)
            message = (
                f"The map {name!r} of fit's data set flips, rotates or crops the inputs and "
                "the labels with random draws of their own, so they are moved apart: the "
                "labels no longer lie over what they label. Transform both with one draw: "
                "stack them and transform once (tf.concat([image, mask], -1), then split), "
                "or pass one seed to stateless ops (tf.image.stateless_random_flip_left_right)."
            )
            return Finding("augmentation-misaligned", message, step, details={"map": name})
    return None
