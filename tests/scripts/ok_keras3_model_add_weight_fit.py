"""The same linear model as the guide, with its weights created through add_weight so that
Keras 3 tracks them; `fit` trains w and b towards 3 and 2.

Source: https://github.com/tensorflow/tensorflow/issues/97599 (healthy twin: the fix)
  and https://keras.io/guides/making_new_layers_and_models_via_subclassing/
expected: silent
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
        self.w = self.add_weight(shape=(), initializer=tf.keras.initializers.Constant(5.0), name="w")
        self.b = self.add_weight(shape=(), initializer="zeros", name="b")

    def call(self, x):
        return self.w * x + self.b


keras_model = MyModelKeras()
keras_model.compile(
    optimizer=tf.keras.optimizers.SGD(learning_rate=0.1),
    loss=tf.keras.losses.MeanSquaredError(),
)
print("trainable variables Keras sees:", len(keras_model.trainable_variables))
history = keras_model.fit(x, y, epochs=10, batch_size=50, verbose=0)
print("loss per epoch:", [round(v, 3) for v in history.history["loss"]])
print("w =", float(keras_model.w.numpy()), "b =", float(keras_model.b.numpy()), "(true 3.0, 2.0)")
