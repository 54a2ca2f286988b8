"""`stateful-shuffled`: a stateful recurrent layer trained by a `fit` that shuffles its rows.

Judged from `fit`'s arguments as it starts (`fit` itself in the corpus pair); a model without a
stateful layer, or rows fed in order, is silent.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import statefulshuffle


class _Batches(keras.utils.PyDataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return _X[4 * index : 4 * index + 4], _Y[4 * index : 4 * index + 4]


_X = np.zeros((8, 5, 2), "float32")
_Y = np.zeros(8, "float32")


def _model(rnn):
    return keras.Sequential([keras.Input(batch_shape=(4, 5, 2)), rnn, keras.layers.Dense(1)])


_MODELS = {
    "stateful-lstm": lambda: _model(keras.layers.LSTM(3, stateful=True)),
    "stateful-bidirectional-gru": lambda: _model(
        keras.layers.Bidirectional(keras.layers.GRU(3, stateful=True))
    ),
    "lstm": lambda: _model(keras.layers.LSTM(3)),
}
_SHUFFLED = tf.data.Dataset.from_tensor_slices((_X, _Y)).shuffle(8).batch(4)
_IN_ORDER = tf.data.Dataset.from_tensor_slices((_X, _Y)).batch(4)
# Streams shuffled whole, then each laid out in order (hunt19): the rows stay in sequence.
_GROUPS_SHUFFLED = (
    tf.data.Dataset.from_tensor_slices((_X.reshape(2, 4, 5, 2), _Y.reshape(2, 4)))
    .shuffle(2)
    .flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
    .batch(4)
)


@pytest.mark.parametrize(
    "model, arguments, found",
    [
        ("stateful-lstm", {"x": _X, "y": _Y}, True),  # shuffle=True by default
        ("stateful-lstm", {"x": _X, "y": _Y, "shuffle": "batch"}, True),
        ("stateful-bidirectional-gru", {"x": _X, "y": _Y, "shuffle": True}, True),
        ("stateful-lstm", {"x": _SHUFFLED}, True),
        ("stateful-lstm", {"x": _X, "y": _Y, "shuffle": False}, False),
        ("stateful-lstm", {"x": _IN_ORDER, "shuffle": True}, False),  # (ignored for data sets)
        ("stateful-lstm", {"x": _GROUPS_SHUFFLED}, False),
        ("lstm", {"x": _X, "y": _Y}, False),
        ("lstm", {"x": _SHUFFLED}, False),
        ("stateful-lstm", {"x": (b for b in [(_X, _Y)])}, False),  # (orders its own batches)
        ("stateful-lstm", {"x": _Batches()}, True),  # (fit shuffles its batches' order)
        ("stateful-lstm", {"x": _Batches(), "shuffle": False}, False),
    ],
    ids=[
        "arrays-by-default",
        "batch-shuffle",
        "bidirectional",
        "shuffled-data-set",
        "shuffle-false",
        "data-set-in-order",
        "streams-shuffled-whole",
        "not-stateful",
        "not-stateful-data-set",
        "generator",
        "py-dataset",
        "py-dataset-in-order",
    ],
)
def test_a_stateful_layer_fed_shuffled_rows_is_found(model, arguments, found):
    finding = statefulshuffle.finding(_MODELS[model](), arguments, step=0)
    assert (finding is not None) == found
    if found:
        assert finding.code == "stateful-shuffled"
        assert "shuffle" in finding.message and finding.details["layers"]
