"""`augmentation-misaligned`: inputs and labels flipped or cropped by random draws of their own.

Judged from real `tf.data` pipelines (the traced map functions); `fit` itself in the corpus.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gradguard import augmentpair

_IMAGES = np.zeros((8, 12, 12, 3), "float32")
_MASKS = np.zeros((8, 12, 12, 1), "float32")
_CLASSES = np.zeros(8, "int32")


def _apart(image, mask):  # hunt18's: two independent flips
    return tf.image.random_flip_left_right(image), tf.image.random_flip_left_right(mask)


def _cropped_apart(image, mask):
    return tf.image.random_crop(image, (8, 8, 3)), tf.image.random_crop(mask, (8, 8, 1))


def _stacked(image, mask):
    both = tf.image.random_flip_left_right(tf.concat([image, mask], -1))
    return both[..., :3], both[..., 3:]


def _one_cond(image, mask):
    flip = tf.random.uniform(()) > 0.5
    return tf.cond(
        flip,
        lambda: (tf.reverse(image, [1]), tf.reverse(mask, [1])),
        lambda: (image, mask),
    )


def _one_seed(image, mask):
    seed = tf.random.uniform((2,), maxval=2**30, dtype=tf.int32)
    flip = tf.image.stateless_random_flip_left_right
    return flip(image, seed), flip(mask, seed)


def _same_constant_seed(image, mask):
    flip = tf.image.stateless_random_flip_left_right
    return flip(image, (1, 2)), flip(mask, (1, 2))


def _zipped_seed(image, mask, seed):  # (hunt19: one seed per example, zipped into the data)
    flip = tf.image.stateless_random_flip_left_right
    return flip(image, seed), flip(mask, seed)


def _zipped_seeds_apart(image, mask, seed):
    flip = tf.image.stateless_random_flip_left_right
    return flip(image, seed), flip(mask, seed + 1)


def _photometric(image, mask):  # only the image's colours: the mask needs no change
    return tf.image.random_brightness(image, 0.2)[2:10, 2:10], mask[2:10, 2:10]


def _class_label(image, label):
    return tf.image.random_flip_left_right(image), label


@pytest.mark.parametrize(
    "augment, labels, batched, found",
    [
        (_apart, _MASKS, False, True),
        (_apart, _MASKS, True, True),  # (mapped over batches: a flip per image)
        (_cropped_apart, _MASKS, False, True),
        (_stacked, _MASKS, False, False),
        (_one_cond, _MASKS, False, False),
        (_one_seed, _MASKS, False, False),
        (_same_constant_seed, _MASKS, False, False),
        (_zipped_seed, _MASKS, False, False),
        (_zipped_seeds_apart, _MASKS, False, True),
        (_photometric, _MASKS, False, False),
        (_class_label, _CLASSES, False, False),
    ],
    ids=[
        "flipped-apart",
        "flipped-apart-batched",
        "cropped-apart",
        "stacked",
        "one-cond",
        "one-seed",
        "same-constant-seed",
        "zipped-seed",
        "zipped-seeds-apart",
        "photometric-only",
        "class-label",
    ],
)
def test_inputs_and_labels_moved_by_draws_of_their_own_are_found(augment, labels, batched, found):
    dataset = tf.data.Dataset.from_tensor_slices((_IMAGES, labels))
    if augment in (_zipped_seed, _zipped_seeds_apart):
        seeds = tf.data.Dataset.from_tensor_slices(np.arange(16, dtype="int32").reshape(8, 2))
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(lambda xy, s: (*xy, s))
    if batched:
        dataset = dataset.batch(4).map(augment)
    else:
        dataset = dataset.shuffle(8).map(augment).batch(4)
    finding = augmentpair.finding({"x": dataset, "epochs": 3}, step=0)
    assert (finding is not None) == found, finding
    if found:
        assert finding.code == "augmentation-misaligned"
        assert finding.details["map"] == augment.__name__
    # Arrays, not a data set: nothing to read.
    assert augmentpair.finding({"x": _IMAGES, "y": labels}, step=0) is None
