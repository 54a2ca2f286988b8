"""Reported symptom: y = 5x + 3 fitted with Dense(1, use_bias=False) followed by Lambda(x + b) where b is
a tf.Variable: the kernel converges, b stays at its initial 1.0 and the loss plateaus above zero.

Sources: https://github.com/keras-team/keras/issues/13106 ("keras.backend.variable is not behaving
         correctly": a bias variable added in a Lambda layer is never changed by model.fit)
         https://github.com/tensorflow/tensorflow/issues/61658 (maintainer: "if variables are involved
         in the layer created by [Lambda], the variable will not be automatically added to the
         variable set for gradient calculation")
expected: variable-not-trained
"""
import numpy as np
import tensorflow as tf

np.random.seed(2)
tf.random.set_seed(2)

b_true = 3.0
w_true = 5.0
x_true = np.linspace(0.0, 1.0, 1000).reshape(-1, 1).astype("float32")
y_true = (x_true * w_true + b_true).astype("float32")

x = tf.keras.Input((1,), dtype="float32", name="x")
Fx = tf.keras.layers.Dense(1, use_bias=False, name="Fx")(x)
b = tf.Variable(1.0, name="b")
y = tf.keras.layers.Lambda(lambda t: t + b, name="Add")(Fx)

model = tf.keras.Model(inputs=[x], outputs=[y])
model.compile(tf.keras.optimizers.Adam(0.05), loss="mse")
print("trainable weights:", [w.name for w in model.trainable_weights])
hist = model.fit(x_true, y_true, epochs=60, batch_size=100, verbose=0, shuffle=True)
print("loss first/last epoch:", round(hist.history["loss"][0], 4), round(hist.history["loss"][-1], 4))
print("kernel:", float(model.get_layer("Fx").kernel.numpy()[0, 0]), "b:", float(b.numpy()), "(true 5, 3)")
