"""Reported symptom: following the official guide, a keras.Model subclass keeps its weights as plain
tf.Variable attributes (self.w = tf.Variable(5.0)); under Keras 3 `fit` prints
"UserWarning: The model does not have any trainable weights." and the loss never moves.
The bug: Keras 3 only tracks keras.Variable / add_weight; a tf.Variable assigned as an attribute
is read in call() (the forward pass and the tape see it) but is not in model.trainable_variables,
so no optimizer ever receives it.

Source: https://github.com/tensorflow/tensorflow/issues/97599
  (the "Basic training loops" guide, section "The same solution, but with Keras", run on TF 2.19+)
expected: variable-not-trained
"""
import numpy as np
import tensorflow as tf

np.random.seed(0)
tf.random.set_seed(0)

TRUE_W = 3.0
TRUE_B = 2.0
NUM_EXAMPLES = 1000

x = tf.random.normal(shape=[NUM_EXAMPLES])
noise = tf.random.normal(shape=[NUM_EXAMPLES])
y = x * TRUE_W + TRUE_B + noise


class MyModelKeras(tf.keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Initialize the weights to `5.0` and the bias to `0.0`
        # In practice, these should be randomly initialized
        self.w = tf.Variable(5.0)
        self.b = tf.Variable(0.0)

    def call(self, x):
        return self.w * x + self.b


keras_model = MyModelKeras()
keras_model.compile(
    run_eagerly=False,
    optimizer=tf.keras.optimizers.SGD(learning_rate=0.1),
    loss=tf.keras.losses.MeanSquaredError(),
)
print("trainable variables Keras sees:", len(keras_model.trainable_variables))
history = keras_model.fit(x, y, epochs=10, batch_size=50, verbose=0)
print("loss per epoch:", [round(v, 3) for v in history.history["loss"]])
print("w =", float(keras_model.w.numpy()), "b =", float(keras_model.b.numpy()), "(true 3.0, 2.0)")
