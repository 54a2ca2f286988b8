"""Reported symptom: a segmentation model's masks come out blurred and shifted, its loss stays
high. The tf.data map flips the image and its mask with two calls of
tf.image.random_flip_left_right: two independent draws, so half the masks are flipped away
from their images.

Source: https://github.com/tensorflow/tensorflow/issues/40787, DrSleep/tensorflow-deeplab-resnet#13
("tf.image.random_flip_left_right can not flip the label and image simultaneously"; hunt18)
expected: augmentation-misaligned
"""

import keras
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)


def make(n):
    # Rectangles with a bright left edge, mostly in the left half: orientation is visible.
    x = rng.normal(0, 0.3, size=(n, 16, 16, 1)).astype("float32")
    masks = np.zeros((n, 16, 16, 1), "float32")
    for i in range(n):
        h, w = rng.integers(3, 7, size=2)
        top, left = rng.integers(0, 16 - h), rng.integers(0, 7)
        masks[i, top : top + h, left : left + w] = 1.0
        x[i, top : top + h, left : left + w] += 0.6
        x[i, top : top + h, left] += 0.8
    return x, masks


x, masks = make(1000)
x_test, masks_test = make(300)


def augment(image, mask):
    return tf.image.random_flip_left_right(image), tf.image.random_flip_left_right(mask)


data = tf.data.Dataset.from_tensor_slices((x, masks)).shuffle(1000, seed=0).map(augment).batch(32)
model = keras.Sequential(
    [
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
    ]
)
model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
model.fit(data, epochs=6, verbose=0)
p = model.predict(x_test, verbose=0)
print(f"held-out soft IoU {(p * masks_test).sum() / (p + masks_test - p * masks_test).sum():.3f}")
