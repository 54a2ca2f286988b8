"""Reported symptom: MAML-style meta-learning: the inner step builds a copy of the meta-model with
copy_model() / set_weights(), updates the copy, and the outer loss is computed with the copy; set_weights
copies *values*, so the meta-model's variables are not on the path from the outer loss: every meta
gradient is None and Keras raises "No gradients provided for any variable".

Source: https://github.com/tensorflow/tensorflow/issues/34335 ("[TF 2.0] Nested Gradient Tape -
        unconnected graphs": "A copy of my model (model_copy) should be trained one step, then I need my
        meta_model to be trained with the loss of my model_copy. It seems, that the graphs are
        unconnected.")
expected: none-gradient
"""
import numpy as np
import tensorflow as tf
import tensorflow.keras as keras

np.random.seed(34)
tf.random.set_seed(34)


class MetaModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden1 = keras.layers.Dense(40, input_shape=(1,))
        self.out = keras.layers.Dense(1)

    def forward(self, x):
        x = keras.activations.relu(self.hidden1(x))
        return self.out(x)

    def call(self, x):
        return self.forward(x)


def copy_model(model, x):
    copied_model = MetaModel()
    copied_model.forward(x)
    copied_model.set_weights(model.get_weights())
    return copied_model


def sine_task():
    amp, phase = np.random.uniform(0.1, 5.0), np.random.uniform(0, np.pi)
    x = np.random.uniform(-5, 5, size=(10, 1)).astype("float32")
    return x, (amp * np.sin(x - phase)).astype("float32")


meta_model = MetaModel()
meta_model.forward(tf.zeros((1, 1)))
meta_optimizer = keras.optimizers.Adam(1e-3)
inner_lr = 0.01

for meta_step in range(20):
    x, y = sine_task()
    with tf.GradientTape() as test_tape:
        with tf.GradientTape() as train_tape:
            train_loss = tf.reduce_mean(tf.square(meta_model.forward(x) - y))
        gradients = train_tape.gradient(train_loss, meta_model.trainable_variables)
        model_copy = copy_model(meta_model, x)
        for var, g in zip(model_copy.trainable_variables, gradients):
            var.assign_sub(inner_lr * g)
        test_loss = tf.reduce_mean(tf.square(model_copy.forward(x) - y))
    meta_grads = test_tape.gradient(test_loss, meta_model.trainable_variables)
    meta_optimizer.apply_gradients(zip(meta_grads, meta_model.trainable_variables))
    print(f"meta step {meta_step}: test loss {float(test_loss):.3f}")
