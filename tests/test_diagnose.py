"""`diagnose.is_data`: what a traced loss computes from the step's data, not its variables."""

from __future__ import annotations

import keras
import tensorflow as tf

from gradguard import diagnose


def test_data_is_told_by_values_not_by_shapes():
    embedding = keras.layers.Embedding(10, 4)
    dense = keras.layers.Dense(4)
    seen = {}

    # (the batch's size unknown, as in `fit`: a shape read from the predictions is not a constant)
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2]),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, 4]),
        ]
    )
    def step(x, ids, y):
        predictions = dense(x)
        seen["reshaped like the predictions"] = tf.reshape(y, tf.shape(predictions))
        seen["labels scaled"] = 2.0 * y - 1.0
        seen["zeros shaped like the labels"] = tf.zeros(tf.shape(y))
        seen["ones like the labels"] = tf.ones_like(y)
        seen["the ids' embedding rows"] = embedding(ids)
        seen["the predictions"] = predictions
        seen["labels times predictions"] = y * predictions
        return predictions

    step(tf.ones([3, 2]), tf.constant([1, 2, 3]), tf.ones([3, 4]))
    told = {name: diagnose.is_data(tensor) for name, tensor in seen.items()}
    assert told == {
        "reshaped like the predictions": True,
        "labels scaled": True,
        "zeros shaped like the labels": False,
        "ones like the labels": False,
        "the ids' embedding rows": False,
        "the predictions": False,
        "labels times predictions": False,
    }


def test_data_read_from_an_iterator_inside_the_function_is_data():
    batches = iter(tf.data.Dataset.from_tensors((tf.ones([3, 2]), tf.ones([3]))).repeat())
    seen = {}

    @tf.function
    def step(iterator):
        x, y = next(iterator)
        seen["labels"] = tf.reshape(y, [-1, 1])
        return x

    step(batches)
    assert diagnose.is_data(seen["labels"])
