"""Healthy twin of bug_lr_set_by_tf_keras2_name_fit.py: the step decay callback sets Keras 3's
optimizer.learning_rate, so the rate falls tenfold every two epochs.

expected: silent
"""
import keras
import numpy as np

rng = np.random.default_rng(38)
w = rng.normal(size=(10, 1))
x = rng.normal(size=(4000, 10)).astype("float32")
y = (np.tanh(x @ w / 2) + 0.3 * rng.normal(size=(4000, 1))).astype("float32")
x_train, y_train, x_test, y_test = x[:3200], y[:3200], x[3200:], y[3200:]


class StepDecay(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        new_lr = 0.03 * 0.1 ** (epoch // 2)
        self.model.optimizer.learning_rate = new_lr  # the fix
        print(f"epoch {epoch}: learning rate {new_lr:g}")


keras.utils.set_random_seed(38)
model = keras.Sequential(
    [keras.Input((10,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
model.compile(keras.optimizers.SGD(0.03, momentum=0.9), "mse")
model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=0, callbacks=[StepDecay()])
pred = model.predict(x_test, verbose=0)
print(f"learning rate at the end {float(model.optimizer.learning_rate):g}")
print(f"test R^2 {1 - np.mean((pred - y_test) ** 2) / np.var(y_test):.3f}")
