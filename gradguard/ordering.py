"""Batches that each hold one class: data ordered by class, not shuffled (`batches-one-class`).

Examples sorted by class (read folder by folder, or concatenated class after class) and batched
without a shuffle give batches of one class each, in long runs of the same class: the model
fits each class in turn and forgets the ones before, and may end on the last class it saw. A
shuffle buffer far smaller than the data set (``dataset.shuffle(64)`` over sorted data,
tensorflow#36626) mixes only neighbours: most batches are still mostly of one class, a few of
the class before lingering in the buffer, so a batch counts as one class's when at least
`DOMINANT` of its examples are.
Nothing in the gradients or the loss names it (the loss may even fall, on each run of easy
batches), but the labels do: `chance.LabelCounts` counts each batch's classes in-graph and
hands them here.

A batch of one class is not a fault in itself: a GAN's discriminator is often given all-real
then all-fake batches on purpose, and a batch of a few examples of an imbalanced task is often
of its common class. What tells ordered data is one class in at least half the batches, the
same as the batch before's in long runs (a GAN alternates; a federated client's few local
batches, an episode's actions, or per-class batches drawn at random from imbalanced classes
make runs of a few batches), with several classes taking turns (a policy that collapsed onto
one action makes batches of that action only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from gradguard import _compat, replicas
from gradguard.findings import Finding

__all__ = ["BatchClasses"]

MIN_EXAMPLES = 8  # a batch of fewer examples is of one class too often by chance: not counted
# The share of a batch's examples of its most common class for the batch to count as that class's:
# with shuffle(64) over sorted data, 9 in 10 batches of 32 (6 in 10 all one class); random batches
# of 32 reach it in half the batches only for a class of 3/4 of the data, and then no other does.
DOMINANT = 0.75
MIN_BATCHES = 20
ONE_CLASS = 0.5  # the share of the batches counted that are mostly one class's
# The share of those with the class of the batch just before: runs of 10 batches of a class on
# average (a federated client's few local batches, an episode's actions, per-class batches drawn
# at random from classes 88:12 made runs of 4 to 7). Classes drawn at random repeat this often
# only when one holds 95% of the batches, and then the others hold less than `MIN_SHARE`.
SAME_AS_BEFORE = 0.9
MIN_SHARE = 0.05  # two classes at least each this share of the one-class batches


class BatchClasses:
    """Per step, whether the batch holds one class, which, and whether it is the one before's.

    Args:
      classes: How many classes the labels have (2 for 0/1 labels).
    """

    def __init__(self, classes: int):
        self.classes = classes
        # Batches counted, of one class, of the class before; that class (or -1); and per
        # class, its batches of one class.
        self._state: tf.Variable | None = None

    def observe(self, counts: tf.Tensor, examples: tf.Tensor) -> None:
        """In-graph: a batch's class counts (one per class) and its number of examples."""
        if self._state is None:
            with _compat.outside_trace():
                initial = np.zeros(4 + self.classes, np.float32)
                initial[3] = -1.0
                self._state = replicas.state_variable(initial, name="gradguard_batch_classes")
        state = self._state.read_value()
        counted = examples >= MIN_EXAMPLES
        one = counted & (tf.reduce_max(counts) >= DOMINANT * tf.reduce_sum(counts))
        the_class = tf.argmax(counts, output_type=tf.int32)
        repeated = one & tf.equal(tf.cast(the_class, tf.float32), state[3])
        flags = tf.cast(tf.stack([counted, one, repeated]), tf.float32)
        latest = tf.where(one, tf.cast(the_class, tf.float32), -1.0)[tf.newaxis]
        per_class = state[4:] + tf.one_hot(the_class, self.classes) * tf.cast(one, tf.float32)
        self._state.assign(tf.concat([state[:3] + flags, latest, per_class], axis=0))

    def judge(self, step: int) -> Finding | None:
        """`batches-one-class` if the batches came ordered by class (a host read)."""
        if self._state is None:
            return None
        state = self._state.numpy()
        batches, single, same = (int(v) for v in state[:3])
        per_class = state[4:]
        classes = int(np.sum(per_class >= MIN_SHARE * max(single, 1)))
        if batches < MIN_BATCHES or single < ONE_CLASS * batches or classes < 2:
            return None
        if same < SAME_AS_BEFORE * single:
            return None
        message = (
            f"{single} of {batches} batches were mostly (at least 3/4) one class, the same as "
            f"the batch before's in {same}, and {int(np.count_nonzero(per_class))} classes took "
            "turns: the examples arrive ordered by class and are not shuffled (or through a "
            "shuffle buffer far smaller than the data), so the model is pulled "
            "to one class at a time and forgets the others (it may end predicting the last "
            "class it saw). Shuffle before batching: dataset.shuffle(buffer_size) with a "
            "buffer as large as the dataset, before .batch() (fit's shuffle=True shuffles "
            "arrays, not a tf.data.Dataset; timeseries_dataset_from_array takes shuffle=True)."
        )
        details: dict[str, Any] = {
            "batches": batches,
            "one_class": single,
            "same_as_before": same,
            "classes": int(np.count_nonzero(per_class)),
        }
        return Finding("batches-one-class", message, step, details=details)
