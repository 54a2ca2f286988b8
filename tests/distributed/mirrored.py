"""MirroredStrategy over 2 logical CPUs against one device; prints JSON for test_distributed.py."""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradguard  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 8)).astype("float32")
Y = (X @ RNG.normal(size=(8, 1))).astype("float32")
POLICY = {code: "warn" for code in gradguard.CODES}
STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def model():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )


def weights(net):
    return [w.numpy().tolist() for w in net.weights]


def train_step(strategy, lr, loss="keras", **options):
    """TrainStep for 10 steps; weights, finding codes and the logged global norms."""
    scope = strategy.scope() if strategy else tf.device("/cpu:0")
    loss_fn = keras.losses.MeanSquaredError()
    if loss == "function":

        def loss_fn(y_true, y_pred):
            return tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)

    with scope:
        net = model()
        step = gradguard.TrainStep(
            net, keras.optimizers.Adam(lr), loss_fn, every=5, policy=POLICY, **options
        )
    norms = []
    for _ in range(10):
        step(X, Y)
        norms.append(step.statistics()["grad_norm"])
    if options.get("jit_compile") and strategy is not None:
        # XLA compiled each replica's forward and backward pass, traced once per replica.
        assert step._gradients._jit_compile
        assert step._gradients.experimental_get_tracing_count() == strategy.num_replicas_in_sync
    return weights(net), sorted(step.report().codes()), norms


def guarded_user_step(strategy, lr, clip, loss="global", cross_replica=False):
    """The user's own step calling strategy.run, under the guard decorator.

    Its loss: averaged over the global batch (`compute_average_loss`, or summed after each
    example is divided by it), or over the replica's examples only (``replica-mean``, the
    gradients then summed over the replicas), or summed over them and never divided (by hand,
    or a Keras loss object with ``reduction="sum"``), or by a Keras loss object, which scales
    its mean by the replicas. `cross_replica`: the replicas
    return their gradients, summed and applied once outside `strategy.run`.
    """
    scope = strategy.scope() if strategy else tf.device("/cpu:0")
    with scope:
        net = model()
        optimizer = keras.optimizers.SGD(lr)

    @gradguard.guard(
        net, optimizer, transform=gradguard.clip_by_global_norm(clip), every=5, policy=POLICY
    )
    @tf.function
    def step(x, y):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                prediction = net(x, training=True)
                per_example = tf.reduce_mean(tf.square(y - prediction), axis=-1)
                if loss == "replica-mean":
                    value = tf.reduce_mean(per_example)
                elif loss == "replica-sum":
                    value = tf.reduce_sum(per_example)
                elif loss == "keras-sum":  # (the global batch's division forgotten)
                    value = keras.losses.MeanSquaredError(reduction="sum")(y, prediction)
                elif loss == "divided-then-summed":
                    value = tf.reduce_sum(per_example / 64.0)
                elif loss == "halved-sum":  # (0.5 * a sum of squares, never divided)
                    value = 0.5 * tf.reduce_sum(per_example)
                elif loss == "l2-loss":
                    value = tf.nn.l2_loss(y - prediction)
                elif loss == "weights-divided":  # (the global count inside the weights)
                    value = tf.reduce_sum(per_example * (tf.ones_like(per_example) / 64.0))
                elif loss == "halved-mean":  # (the replicas' share: 1/2 of 2 replicas' means)
                    value = 0.5 * tf.reduce_mean(per_example)
                elif loss == "penalties-summed":  # (a sum of the model's penalties, not examples)
                    penalty = tf.reduce_sum(tf.stack([tf.reduce_sum(v**2) for v in net.weights]))
                    value = tf.nn.compute_average_loss(per_example, global_batch_size=64) + penalty
                elif loss == "keras":
                    value = keras.losses.MeanSquaredError()(y, prediction)
                else:
                    value = tf.nn.compute_average_loss(per_example, global_batch_size=64)
            grads = tape.gradient(value, net.trainable_variables)
            if cross_replica:
                return value, grads
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
            return value

        if strategy is None:
            return replica_fn(x, y)
        if not cross_replica:
            return strategy.reduce("SUM", strategy.run(replica_fn, args=(x, y)), axis=None)
        value, grads = strategy.run(replica_fn, args=(x, y))
        grads = [strategy.reduce("SUM", g, axis=None) for g in grads]
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return strategy.reduce("SUM", value, axis=None)

    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(64)
    if strategy is not None:
        dataset = strategy.experimental_distribute_dataset(dataset)
    for _ in range(10):
        for x, y in dataset:
            step(x, y)
    return weights(net), sorted(step.report().codes())


def activations(strategy):
    """Unit 0 fires only on the second half of the batch (the second replica's slice); unit 1
    never fires. Weights are held fixed (learning rate 0)."""
    x = np.zeros((64, 2), "float32")
    x[:, 0] = np.where(np.arange(64) < 32, -1.0, 1.0)
    y = np.zeros((64, 1), "float32")
    scope = strategy.scope() if strategy else tf.device("/cpu:0")
    with scope:
        net = keras.Sequential(
            [
                keras.Input((2,)),
                keras.layers.Dense(
                    2,
                    activation="relu",
                    kernel_initializer=keras.initializers.Constant([[1.0, -1.0], [0.0, 0.0]]),
                    bias_initializer=keras.initializers.Constant([0.0, -100.0]),
                    name="hidden",
                ),
                keras.layers.Dense(1),
            ]
        )
        checks = [*gradguard.checks.default_checks(), gradguard.checks.ActivationHealth()]
        step = gradguard.TrainStep(
            net, keras.optimizers.SGD(0.0), "mse", checks=checks, every=5, policy=POLICY
        )
    for _ in range(12):
        step(x, y)
    report = step.report()
    dead = [f.details for f in report.findings if f.code == "dead-units"]
    return step.statistics()["dead_fraction/hidden"], dead


def built_optimizer_state(strategy):
    """Whether TrainStep's and the guard's default steps keep rows to fold later (one device
    does; replicas would each need their own, and fold every step), and the guard's step and
    gradient call counts after two calls. The guard is made outside the scope, over a model
    and an optimizer built in it."""
    scope = strategy.scope() if strategy else tf.device("/cpu:0")
    with scope:
        net, guarded_net = model(), model()
        step = gradguard.TrainStep(net, keras.optimizers.Adam(), "mse")
        optimizer = keras.optimizers.Adam()
        optimizer.build(guarded_net.trainable_variables)  # Keras cannot, in a replica's trace

    @gradguard.guard(guarded_net, optimizer)
    @tf.function
    def guarded(x, y):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(y - guarded_net(x, training=True)))
            grads = tape.gradient(loss, guarded_net.trainable_variables)
            optimizer.apply_gradients(zip(grads, guarded_net.trainable_variables))
            return loss

        return replica_fn(x, y) if strategy is None else strategy.run(replica_fn, args=(x, y))

    step(X, Y)
    guarded(X, Y)
    guarded(X, Y)
    cores = list(guarded.guard.cores.values())
    guard = guarded.guard
    rows = [[c.deferred is not None, c.steps] for c in cores]
    return [step.core.deferred is not None, rows, guard.ledger.gradient_calls]


def nan_origin(strategy):
    """Where a NaN made in a layer began, as the replay of its batch finds it."""
    scope = strategy.scope() if strategy else tf.device("/cpu:0")
    with scope:
        net = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(4, name="hidden"),
                keras.layers.Lambda(lambda t: tf.sqrt(t - 100.0), name="bad_sqrt"),
                keras.layers.Dense(1),
            ]
        )
        step = gradguard.TrainStep(net, keras.optimizers.Adam(), "mse", policy=POLICY)
    step(X, Y)
    (finding,) = [f for f in step.report().findings if f.code == "non-finite"]
    return finding.details["origin"]


def distributed_batches():
    """TrainStep on batches the strategy already split: steps counted, no finding."""
    with STRATEGY.scope():
        step = gradguard.TrainStep(model(), keras.optimizers.Adam(1e-2), "mse", every=2)
    batches = tf.data.Dataset.from_tensor_slices((X, Y)).batch(32)
    for _ in range(3):
        for x, y in STRATEGY.experimental_distribute_dataset(batches):
            step(x, y)
    return [step.core.steps, sorted(step.report().codes())]


def bad_input():
    errors = {}
    net = model()  # outside the scope
    with STRATEGY.scope():
        try:
            gradguard.TrainStep(net, keras.optimizers.Adam(), "mse")(X, Y)
        except (ValueError, TypeError) as e:
            errors["outside_scope"] = str(e)
        net = model()
        step = gradguard.TrainStep(net, keras.optimizers.Adam(), keras.losses.MeanSquaredError())
    try:
        step(X[:63], Y[:63])
    except ValueError as e:
        errors["indivisible_batch"] = str(e)
    return errors


out = {"bad_input": bad_input()}
for name, lr, options in [
    ("clipped", 1e-2, {"transform": gradguard.clip_by_global_norm(0.5)}),
    ("plain_function_loss", 1e-2, {"loss": "function"}),
    ("tiny_lr", 1e-10, {}),
    ("accumulate", 1e-2, {"accumulate": 2}),
    ("jit_clipped", 1e-2, {"jit_compile": True, "transform": gradguard.clip_by_global_norm(0.5)}),
    ("jit_tiny_lr", 1e-10, {"jit_compile": True}),
]:
    out[name] = {
        "single": train_step(None, lr, **options),
        "mirrored": train_step(STRATEGY, lr, **options),
    }
out["built_optimizer"] = {
    "single": built_optimizer_state(None),
    "mirrored": built_optimizer_state(STRATEGY),
}
out["nan_origin"] = {"single": nan_origin(None), "mirrored": nan_origin(STRATEGY)}
out["distributed_batches"] = distributed_batches()
out["activations"] = {"single": activations(None), "mirrored": activations(STRATEGY)}
out["guard"] = {
    "single": guarded_user_step(None, 0.05, 1.0),
    "mirrored": guarded_user_step(STRATEGY, 0.05, 1.0),
}
# (gradguard's rarely taken branches read every copy of a mirrored variable there)
out["cross_replica"] = {
    "single": out["guard"]["single"],  # (the same one-device run)
    "mirrored": guarded_user_step(STRATEGY, 0.05, 1.0, cross_replica=True),
}


def classifier_step(strategy):
    """A hand-written classifier step (tf.nn's sparse cross-entropy averaged over the global
    batch) under the guard: its labels' classes are counted in-graph on one device only."""
    scope = strategy.scope() if strategy else tf.device("/cpu:0")
    with scope:
        keras.utils.set_random_seed(1)
        net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
        optimizer = keras.optimizers.SGD(0.1)
    labels = (X[:, 0] > 0).astype("int32") + (X[:, 1] > 0).astype("int32")

    @gradguard.guard(net, optimizer, every=5, policy=POLICY)
    @tf.function
    def step(x, y):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                logits = net(x, training=True)
                per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=64)
            grads = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
            return loss

        if strategy is None:
            return replica_fn(x, y)
        return strategy.reduce("SUM", strategy.run(replica_fn, args=(x, y)), axis=None)

    dataset = tf.data.Dataset.from_tensor_slices((X, labels)).batch(64)
    if strategy is not None:
        dataset = strategy.experimental_distribute_dataset(dataset)
    for _ in range(5):
        for x, y in dataset:
            step(x, y)
    return weights(net), sorted(step.report().codes())


out["classifier"] = {"single": classifier_step(None), "mirrored": classifier_step(STRATEGY)}
out["per_replica_loss"] = {
    kind: guarded_user_step(STRATEGY, 0.01, 1.0, loss=kind)[1]
    for kind in (
        "global",
        "replica-mean",
        "keras",
        "replica-sum",
        "keras-sum",
        "divided-then-summed",
        "halved-sum",
        "l2-loss",
        "weights-divided",
        "halved-mean",
        "penalties-summed",
    )
}
out["per_replica_loss"]["one-device-mean"] = guarded_user_step(None, 0.01, 1.0, "replica-mean")[1]
out["per_replica_loss"]["one-device-sum"] = guarded_user_step(None, 0.01, 1.0, "replica-sum")[1]
json.dump(out, sys.stdout)
