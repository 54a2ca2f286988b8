"""Optimizer state across checkpoint formats: the restores Keras 3 users make, on real files.

Issue #14 item 1 (the paths users take: `load_weights` into an optimizer not built yet, a
restore that puts the old learning rate back, an optimizer class changed) and issue #19 item 5
(TF checkpoints, `.weights.h5` and `.keras` behave the same).
"""

import json
import re
import warnings
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import checkpoint
from gradguard.findings import Report, Severity

RNG = np.random.default_rng(7)
X = RNG.normal(size=(32, 4)).astype("float32")
Y = RNG.normal(size=(32, 1)).astype("float32")
FORMATS = ["tf", ".weights.h5", ".keras"]


def make():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])


def train(model, optimizer, steps=5):
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(X) - Y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))


def values(obj):
    return [v.numpy().copy() for v in (obj.weights if hasattr(obj, "weights") else obj.variables)]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def finding(report, code):
    found = [f for f in report.findings if f.code == code]
    assert found, f"no {code} in:\n{report}"
    return found[0]


def save(directory, kind, model, optimizer):
    """Saves model and optimizer as users do for each format; returns the path."""
    if kind == "tf":
        return tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(directory / "ckpt"))
    model.compile(optimizer=optimizer, loss="mse")  # Keras files hold the compiled optimizer
    path = str(directory / f"model{kind}")
    model.save_weights(path) if kind == ".weights.h5" else model.save(path)
    return path


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(11)
    model, optimizer = make(), keras.optimizers.Adam(1e-3)
    train(model, optimizer, 5)
    return model, optimizer


def saved_as(kind, trained, tmp_path_factory):
    model, optimizer = trained
    path = save(tmp_path_factory.mktemp("fmt"), kind, model, optimizer)
    return kind, path, values(model), values(optimizer)


@pytest.fixture(scope="module", params=FORMATS)
def saved(request, trained, tmp_path_factory):
    return saved_as(request.param, trained, tmp_path_factory)


@pytest.fixture(scope="module", params=FORMATS[1:])
def keras_saved(request, trained, tmp_path_factory):
    return saved_as(request.param, trained, tmp_path_factory)


def watched(action, trainers=tuple, start_rates=dict):
    """Runs `action()` under `checkpoint.watch_restores`; returns the report (watch ended)."""
    report = Report()
    unwatch = checkpoint.watch_restores(report, trainers, start_rates)
    try:
        action()
    finally:
        unwatch()
    return report


# --- the three formats behave the same (#19.5) -------------------------------------------------


def check_restored_whole(saved, model, optimizer, report):
    _, _, model_values, optimizer_values = saved
    assert len(report) == 0, str(report)
    assert int(optimizer.iterations) == 5  # not iteration 0
    assert same(values(model), model_values) and same(values(optimizer), optimizer_values)


def test_every_format_restores_into_the_optimizer_passed(saved):
    model, optimizer = make(), keras.optimizers.Adam(1e-3)
    report = checkpoint.restore(saved[1], model=model, optimizer=optimizer)
    check_restored_whole(saved, model, optimizer, report)


def test_keras_files_restore_into_the_compiled_optimizer(keras_saved):
    model = make()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    report = checkpoint.restore(keras_saved[1], model=model)
    check_restored_whole(keras_saved, model, model.optimizer, report)


@pytest.mark.parametrize("kind", FORMATS)
def test_a_model_only_file_warns_alike_that_the_optimizer_starts_fresh(kind, tmp_path):
    model = make()
    if kind == "tf":
        path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    else:
        path = str(tmp_path / f"model{kind}")
        model.save_weights(path) if kind == ".weights.h5" else model.save(path)
    report = checkpoint.validate(path, model=make(), optimizer=keras.optimizers.Adam())
    missing = finding(report, "checkpoint-missing-variables")
    assert report.codes() == {"checkpoint-missing-variables"}, str(report)
    assert missing.severity is Severity.WARNING and "optimizer starts fresh" in missing.message
    assert set(missing.variables) == {"optimizer/iteration", "optimizer/learning_rate"}


def test_optimizer_state_not_passed_is_unexpected_alike(saved):
    report = checkpoint.validate(saved[1], model=make())
    unexpected = finding(report, "checkpoint-unexpected-variables")
    assert unexpected.severity is Severity.WARNING and report.codes() == {unexpected.code}
    assert len(unexpected.variables) == len(saved[3])  # every optimizer value, none lost


def test_model_only_weights_into_a_compiled_model_are_silent(tmp_path):
    # Fine-tuning from pretrained weights: Keras restores no optimizer, and none was saved.
    path = str(tmp_path / "pretrained.weights.h5")
    make().save_weights(path)
    model = make()
    model.compile(optimizer="adam", loss="mse")
    assert len(checkpoint.validate(path, model=model)) == 0
    assert len(watched(lambda: model.load_weights(path))) == 0


# --- load_weights into an optimizer Keras has not built (#14.1) --------------------------------


@pytest.mark.parametrize("kind", [".weights.h5", ".keras"])
def test_load_weights_into_an_unbuilt_optimizer_is_state_not_restored(trained, tmp_path, kind):
    model, optimizer = trained
    path = save(tmp_path, kind, model, optimizer)
    fresh = make()
    fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")  # the rate saved

    def resume() -> None:
        fresh.load_weights(path)
        # What Keras really does: a UserWarning only, and Adam restarts from zero.
        assert int(fresh.optimizer.iterations) == 0 and not fresh.optimizer.built
        fresh.fit(X, Y, epochs=1, verbose=0)  # the state is lost once the model trains

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = watched(resume)
    assert any("Skipping variable loading for optimizer" in str(w.message) for w in caught)
    lost = finding(report, "checkpoint-optimizer-state-not-restored")
    assert lost.severity is Severity.ERROR and len(lost.variables) == len(optimizer.variables)
    assert "has not been built yet" in lost.message
    assert "model.optimizer.build(model.trainable_variables)" in lost.message


@pytest.mark.parametrize(
    "use", ["evaluate", "predict", "tf-restore-to-predict", "tf-then-fit", "tf-then-fine-tune"]
)
def test_saved_optimizer_state_a_restored_model_never_trains_with_is_not_lost(
    trained, tmp_path, use
):
    # The tutorials' restore: a new model loads the weights to be evaluated (compiled, its
    # optimizer not built) or to predict (not compiled: no optimizer), and never trains. The
    # twin: the model restored through a checkpoint made for the restore alone then trains,
    # at the saved rate (a resume); at another rate it is a new stage (hunt27 h10): silent.
    model, optimizer = trained
    kind = "tf" if use.startswith("tf") else ".weights.h5"
    if kind == "tf":  # A model never compiled: its optimizer is saved beside it, not in it.
        keras.utils.set_random_seed(11)
        model, optimizer = make(), keras.optimizers.Adam(1e-3)
        train(model, optimizer, 5)
    path = save(tmp_path, kind, model, optimizer)
    fresh = make()

    def restore_and_use() -> None:
        if use == "evaluate":
            fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            fresh.load_weights(path)
            fresh.evaluate(X, Y, verbose=0)
        elif use == "predict":
            fresh.load_weights(path)
        else:
            tf.train.Checkpoint(model=fresh).restore(path).expect_partial()
        fresh.predict(X, verbose=0)
        if use.startswith("tf-then"):
            resume = use == "tf-then-fit"
            new = keras.optimizers.Adam(1e-3) if resume else keras.optimizers.SGD(1e-2)
            fresh.compile(optimizer=new, loss="mse")
            fresh.fit(X, Y, epochs=1, verbose=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' own warning about the skipped state
        report = watched(restore_and_use)
    if use == "tf-then-fit":  # Adam's saved state went nowhere, and the model trained
        assert report.codes() == {"checkpoint-unexpected-variables"}, str(report)
        assert int(fresh.optimizer.iterations) == 1  # (Adam started anew)
        return
    if use == "tf-then-fine-tune":  # (trained: its weights moved on)
        assert len(report) == 0, str(report)
        return
    assert len(report) == 0, str(report)
    assert same(values(fresh), values(model))


@pytest.mark.parametrize("kind", [".weights.h5", ".keras"])
def test_pretrained_weights_fine_tuned_by_a_new_optimizer_at_another_rate_are_silent(
    trained, tmp_path, kind
):
    # The same code as a resume, but the optimizer compiled at another rate than the saved
    # one's: a new stage on purpose, whose Adam starts anew.
    model, optimizer = trained
    path = save(tmp_path, kind, model, optimizer)
    fresh = make()
    fresh.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")

    def fine_tune() -> None:
        fresh.load_weights(path)
        fresh.fit(X, Y, epochs=1, verbose=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' own warning about the skipped state
        report = watched(fine_tune)
    assert len(report) == 0, str(report)


@pytest.mark.parametrize("use", ["fit", "predict"])
def test_a_compiled_models_checkpoint_restored_before_compile(trained, tmp_path, use):
    # `tf.train.Checkpoint(model=model)` of a compiled model holds its optimizer under
    # model/optimizer; the model restored into has none yet. TensorFlow restores that state
    # when `compile` attaches an optimizer (deferred: Adam goes on from the saved iteration),
    # so nothing was left behind; a model restored to predict never needs it (hunt22 p03).
    model, optimizer = trained
    model.compile(optimizer=optimizer, loss="mse")
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    fresh = make()

    def restore_then_use() -> None:
        tf.train.Checkpoint(model=fresh).restore(path)
        if use == "fit":
            fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            fresh.fit(X, Y, batch_size=32, epochs=1, verbose=0)
        else:
            fresh.predict(X, verbose=0)

    report = watched(restore_then_use)
    assert len(report) == 0, str(report)
    if use == "fit":  # (what TensorFlow does, which the silence rests on)
        assert int(fresh.optimizer.iterations) == int(optimizer.iterations) + 1


def test_expect_partial_drops_the_values_a_restore_leaves_behind(trained, tmp_path):
    # The backbone restored from a checkpoint that also holds the old head: TensorFlow's
    # `expect_partial()` says leaving the head is meant; without it, the head is reported.
    model, optimizer = trained
    backbone, head = model.layers
    path = tf.train.Checkpoint(backbone=backbone, head=head).write(str(tmp_path / "ckpt"))
    reports = {}
    for partial in (True, False):
        fresh = make()

        def restore(fresh=fresh, partial=partial) -> None:
            status = tf.train.Checkpoint(backbone=fresh.layers[0]).restore(path)
            if partial:
                status.expect_partial()

        reports[partial] = watched(restore)
    assert len(reports[True]) == 0, str(reports[True])
    unexpected = finding(reports[False], "checkpoint-unexpected-variables")
    assert set(unexpected.variables) == {f"{head.name}/{w.name}" for w in head.weights}


@pytest.mark.parametrize("skip_mismatch,hidden", [(True, 3), (False, 3), (True, 5)])
def test_a_new_head_loaded_with_skip_mismatch_is_no_shape_mismatch(
    trained, tmp_path, skip_mismatch, hidden
):
    # Transfer learning: a 2-unit head where the saved one had 1; Keras skips it on request.
    # The saved Adam's state has nowhere to go: the new model trains with an optimizer of its
    # own, at the same rate. But a hidden layer widened too (hunt27 b11) leaves every weight
    # skipped: nothing loaded, an error.
    path = save(tmp_path, ".weights.h5", *trained)
    new_head = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(hidden), keras.layers.Dense(2)]
    )

    def load_and_train() -> None:
        try:
            new_head.load_weights(path, skip_mismatch=skip_mismatch)
        except ValueError:  # Keras refuses the mismatch unless asked to skip it
            assert not skip_mismatch
        new_head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        new_head.fit(X, np.repeat(Y, 2, axis=1), epochs=1, verbose=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' warning about the skipped head
        report = watched(load_and_train)
    if skip_mismatch and hidden == 3:
        assert len(report) == 0, str(report)
    else:
        mismatch = finding(report, "checkpoint-shape-mismatch")
        assert ("loaded none" in mismatch.message) == skip_mismatch, mismatch.message


def test_initial_weights_saved_before_any_update_reload_silently(tmp_path):
    # The TF imbalanced-data tutorial: a compiled model's initial weights, saved before any
    # step, loaded into fresh compiled models that then train. No optimizer state existed.
    path = str(tmp_path / "initial.weights.h5")
    first = make()
    first.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    first.save_weights(path)
    fresh = make()
    fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")

    def reload_and_train() -> None:
        fresh.load_weights(path)
        fresh.fit(X, Y, epochs=1, verbose=0)

    assert len(watched(reload_and_train)) == 0


@pytest.mark.parametrize("kind", [".weights.h5", ".keras"])
def test_load_weights_after_building_the_optimizer_is_silent_and_restores(trained, tmp_path, kind):
    model, optimizer = trained
    path = save(tmp_path, kind, model, optimizer)
    fresh = make()
    fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    fresh.optimizer.build(fresh.trainable_variables)
    report = watched(lambda: fresh.load_weights(path))
    assert len(report) == 0, str(report)
    assert same(values(fresh.optimizer), values(optimizer))


@pytest.mark.parametrize("kind", [".weights.h5", ".keras"])
def test_gradguard_restore_builds_what_keras_would_skip(trained, tmp_path, kind):
    model, optimizer = trained
    path = save(tmp_path, kind, model, optimizer)
    fresh = make()
    fresh.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    assert len(checkpoint.validate(path, model=fresh)) == 0  # what restore will do: fine
    assert len(checkpoint.restore(path, model=fresh)) == 0
    assert same(values(fresh.optimizer), values(optimizer))


# --- the learning rate a restore puts back (#14.1) ---------------------------------------------


@pytest.fixture(scope="module")
def stage1(trained, tmp_path_factory):
    model, optimizer = trained
    return str(
        tf.train.Checkpoint(model=model, optimizer=optimizer).write(
            str(tmp_path_factory.mktemp("stage1") / "ckpt")
        )
    )


def test_stage2_restore_puts_the_old_learning_rate_back_and_is_reported(stage1):
    model, optimizer = make(), keras.optimizers.Adam(1e-5)

    def stage2():
        tf.train.Checkpoint(model=model, optimizer=optimizer).restore(stage1)
        train(model, optimizer, 2)

    report = watched(stage2)
    assert np.isclose(float(optimizer.learning_rate), 1e-3)  # TF really did put it back
    changed = finding(report, "checkpoint-optimizer-config-changed")
    assert changed.severity is Severity.WARNING and report.codes() == {changed.code}
    assert (
        "learning_rate 0.001" in changed.message
        and "the 1e-05 the code asked for" in changed.message
    )
    assert "iteration count, 5" in changed.message
    assert changed.details["changed"]["learning_rate"]["current"] == pytest.approx(1e-5)


def test_a_restored_rate_nothing_trains_at_is_silent(stage1):
    # Best weights reloaded only to be evaluated (hunt23 h06): the restored rate moves nothing.
    model, optimizer = make(), keras.optimizers.Adam(1e-5)
    report = watched(lambda: tf.train.Checkpoint(model=model, optimizer=optimizer).restore(stage1))
    assert np.isclose(float(optimizer.learning_rate), 1e-3)  # (restored all the same)
    assert len(report) == 0, str(report)


def test_setting_the_learning_rate_again_after_restoring_is_silent(stage1):
    model, optimizer = make(), keras.optimizers.Adam(1e-5)

    def stage2():
        tf.train.Checkpoint(model=model, optimizer=optimizer).restore(stage1)
        optimizer.learning_rate = 1e-5
        train(model, optimizer, 2)

    assert len(watched(stage2)) == 0


def test_resuming_a_lowered_learning_rate_is_silent(stage1):
    # ReduceLROnPlateau lowered the rate before the save; the script asks for the initial one.
    model, optimizer = make(), keras.optimizers.Adam(1e-2)
    assert (
        len(watched(lambda: tf.train.Checkpoint(model=model, optimizer=optimizer).restore(stage1)))
        == 0
    )


@pytest.mark.parametrize("case", ["asked-lower", "set-again-after-compile", "asked-higher"])
def test_a_model_restored_before_compile_gets_the_saved_rate_from_compile(trained, tmp_path, case):
    # TensorFlow puts the saved optimizer's rate into the optimizer `compile` attaches to a
    # model restored before it (deferred; hunt22 p03_fix): stage 2 asks 1e-5, trains at 1e-3.
    model, optimizer = trained
    model.compile(optimizer=optimizer, loss="mse")
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    fresh = make()
    asked = 1e-2 if case == "asked-higher" else 1e-5

    def stage2() -> None:
        tf.train.Checkpoint(model=fresh).restore(path)
        fresh.compile(optimizer=keras.optimizers.Adam(asked), loss="mse")
        if case == "set-again-after-compile":
            fresh.optimizer.learning_rate = asked
        fresh.fit(X, Y, batch_size=32, epochs=1, verbose=0)

    report = watched(stage2)
    if case != "asked-lower":  # (a restored rate below the asked one: a lowered rate resumed)
        assert len(report) == 0, str(report)
        return
    assert np.isclose(float(fresh.optimizer.learning_rate), 1e-3)  # TF really put it there
    changed = finding(report, "checkpoint-optimizer-config-changed")
    assert report.codes() == {changed.code} and changed.variables == (
        "model/optimizer/learning_rate",
    )
    assert "the 1e-05 the code asked for" in changed.message
    assert "model/optimizer.learning_rate = 1e-05 after compile" in changed.message
    assert f"iteration count, {int(optimizer.iterations)})" in changed.message  # (at compile)


def test_load_model_under_the_watch_compiles_what_it_loads(trained, tmp_path):
    # `compile` is watched where Keras defines it: Keras' own test of a custom `compile`, which
    # decides whether `load_model` compiles the archive's config, must still find none.
    model, optimizer = trained
    path = save(tmp_path, ".keras", model, optimizer)
    loaded = []
    assert len(watched(lambda: loaded.append(keras.models.load_model(path)))) == 0
    assert loaded[0].loss is not None
    loaded[0].fit(X, Y, epochs=1, verbose=0)  # ("No loss to compute" if it was not compiled)


def test_validate_names_the_learning_rate_without_a_sidecar(stage1):
    report = checkpoint.validate(stage1, model=make(), optimizer=keras.optimizers.Adam(1e-5))
    changed = finding(report, "checkpoint-optimizer-config-changed")
    assert "learning_rate 0.001 -> 1e-05" in changed.message and report.codes() == {changed.code}
    assert "iteration count (5)" in changed.message


# --- the optimizer class changed (#14.1) -------------------------------------------------------


@pytest.fixture(scope="module")
def sgd_momentum(tmp_path_factory):
    keras.utils.set_random_seed(12)
    model, optimizer = make(), keras.optimizers.SGD(1e-2, momentum=0.9)
    train(model, optimizer, 3)
    directory = tmp_path_factory.mktemp("sgd")
    return str(tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(directory / "ckpt")))


def check_class_change(report):
    changed = finding(report, "checkpoint-optimizer-config-changed")
    assert "SGD with momentum" in changed.message and "-> Adam" in changed.message
    assert changed.details["changed"]["class"]["current"].startswith("Adam")
    for f in report.findings:  # the model fits: no advice to rebuild it
        assert "build the model as it was" not in f.message, f.message
        assert all(v.startswith("optimizer/") for v in f.variables if f.code.endswith("mismatch"))


def test_sgd_momentum_checkpoint_into_adam_names_both_classes(sgd_momentum):
    model, adam = make(), keras.optimizers.Adam(1e-3)
    report = watched(lambda: tf.train.Checkpoint(model=model, optimizer=adam).restore(sgd_momentum))
    train(model, adam, 1)  # TensorFlow says nothing, and Adam trains on
    check_class_change(report)
    check_class_change(
        checkpoint.validate(sgd_momentum, model=make(), optimizer=keras.optimizers.Adam())
    )


def test_same_class_restore_is_silent(sgd_momentum):
    model, optimizer = make(), keras.optimizers.SGD(1e-2, momentum=0.9)
    report = watched(
        lambda: tf.train.Checkpoint(model=model, optimizer=optimizer).restore(sgd_momentum)
    )
    train(model, optimizer, 1)
    assert len(report) == 0, str(report)


def test_keras_archive_config_names_the_class_change(trained, tmp_path):
    model, optimizer = trained
    path = save(tmp_path, ".keras", model, optimizer)
    with zipfile.ZipFile(path) as archive:  # the archive records its compile config
        assert json.loads(archive.read("config.json"))["compile_config"]["optimizer"]
    report = checkpoint.validate(path, model=make(), optimizer=keras.optimizers.SGD())
    assert "class Adam -> SGD" in finding(report, "checkpoint-optimizer-config-changed").message
    assert "checkpoint-optimizer-state-not-restored" in report.codes()


def test_probe_optimizers_do_not_shift_keras_auto_names():
    from gradguard.checkpoint import config

    def number(name):
        match = re.search(r"_(\d+)$", name)
        return int(match.group(1)) if match else 0

    config._slot_signatures.cache_clear()
    before = keras.optimizers.Adam().name
    assert config._slot_signatures()  # the probes built
    assert number(keras.optimizers.Adam().name) == number(before) + 1


@pytest.mark.parametrize("then", ["predict", "fit", "fit-beside-a-fixed-target", "restore-found"])
def test_a_restore_of_no_checkpoint_then_a_model_used_untrained_is_found(then, tmp_path):
    # hunt27 b05: the manager pointed at an empty directory, latest_checkpoint None, and
    # restore(None) restores nothing; the model then only predicts. The twins: a first run
    # from scratch trains after it (beside a model fixed on purpose: a random target, as in
    # random network distillation); a later restore that finds the checkpoint fills it.
    keras.utils.set_random_seed(3)
    model, optimizer = make(), keras.optimizers.Adam(1e-3)
    path = save(tmp_path, "tf", model, optimizer)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path / "x"), 1)
    assert manager.latest_checkpoint is None

    def restore_and_use() -> None:
        objects = {"model": model, "optimizer": optimizer}
        if then == "fit-beside-a-fixed-target":
            objects["target"] = make()  # (never trained)
        checkpoint_ = tf.train.Checkpoint(**objects)
        checkpoint_.restore(manager.latest_checkpoint)
        if then.startswith("fit"):
            model.compile(optimizer=optimizer, loss="mse")
            model.fit(X, Y, epochs=1, verbose=0)
        elif then == "restore-found":
            model.set_weights([w + 1.0 for w in model.get_weights()])  # (other values, then)
            checkpoint_.restore(path)
        model.predict(X, verbose=0)

    report = watched(restore_and_use)
    if then != "predict":
        assert len(report) == 0, str(report)
        return
    missing = finding(report, "checkpoint-missing-variables")
    assert missing.severity is Severity.ERROR and "restore(None)" in missing.message
    assert len(missing.variables) == len(model.weights)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(3)
        self.head = keras.layers.Dense(1)

    def call(self, x):
        return self.head(self.hidden(x))


@pytest.mark.parametrize(
    "case",
    [
        "restored-unbuilt",
        "built-first",
        "restored-unbuilt-then-fit",
        "restored-unbuilt-then-loop",
        "restored-again",
    ],
)
def test_a_subclassed_model_restored_before_it_is_built_is_found(case, tmp_path):
    # hunt27 b09, hunt22 p05: in Keras 3 the saved values do not reach the variables a model
    # makes when first called after the restore; it predicts with random weights. Trained
    # since, by its compiled optimizer or in a loop by one the checkpoint does not hold, it
    # trained from them. The twins: built first; restored again once built.
    keras.utils.set_random_seed(5)
    trained = Subclassed()
    trained(X)
    for variable in trained.weights:
        variable.assign(variable + 1.0)
    path = tf.train.Checkpoint(model=trained).write(str(tmp_path / "ckpt"))
    for variable in trained.weights:
        variable.assign(variable * 2.0)
    other = tf.train.Checkpoint(model=trained).write(str(tmp_path / "other"))
    model, loop_optimizer = Subclassed(), keras.optimizers.SGD(1e-2)

    def restore_and_use() -> None:
        if case == "built-first":
            model(X)
        tf.train.Checkpoint(model=model).restore(path)
        if case.endswith("fit"):
            model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="mse")
            model.fit(X, Y, epochs=1, verbose=0)
        if case.endswith("loop"):
            train(model, loop_optimizer, 2)
        if case == "restored-again":  # once built, from another checkpoint
            model(X)
            tf.train.Checkpoint(model=model).restore(other)
        model.predict(X, verbose=0)

    report = watched(restore_and_use, lambda: [loop_optimizer])
    if not case.startswith("restored-unbuilt"):
        assert "checkpoint-missing-variables" not in report.codes(), str(report)
        return
    lost = finding(report, "checkpoint-missing-variables")
    assert "before" in lost.message and "model.build(input_shape)" in lost.message
    assert lost.variables and not same(values(model), values(trained))
    untrained = case == "restored-unbuilt"
    assert ("keep their initial values" in lost.message) == untrained, lost.message
    assert ("then trained from the initial values" in lost.message) != untrained, lost.message


def _decay():
    return keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=4, decay_rate=0.5)


@pytest.mark.parametrize(
    "then",
    [
        "compile-a-new-one",
        "compile-a-new-one-on-the-same-schedule",
        "a-new-one-in-the-loop",
        "compile-the-restored-one",
        "compile-a-new-one-at-another-rate",
        "compile-another-class",
        "evaluate-only",
    ],
)
def test_a_restored_optimizer_another_one_replaces_in_training_is_found(then, tmp_path):
    # hunt27 b04: a resume restores the model and its optimizer, then compiles a brand-new Adam
    # of the same set-up: the restored step count and moments are never used, the schedule
    # starts over. The twins: training with the restored one; a new stage on purpose (another
    # rate or class: fine-tuning); a model restored only to be evaluated.
    scheduled = "schedule" in then
    keras.utils.set_random_seed(3)
    model = make()
    optimizer = keras.optimizers.Adam(_decay() if scheduled else 1e-3)
    train(model, optimizer, 5)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    fresh = make()
    restored = keras.optimizers.Adam(_decay() if scheduled else 1e-3)
    new = {
        "compile-a-new-one-at-another-rate": keras.optimizers.Adam(1e-4),
        "compile-another-class": keras.optimizers.SGD(1e-3),
        "compile-the-restored-one": restored,
    }.get(then, keras.optimizers.Adam(_decay() if scheduled else 1e-3))

    def resume() -> None:
        tf.train.Checkpoint(model=fresh, optimizer=restored).restore(path)
        assert int(restored.iterations) == 5
        if then == "a-new-one-in-the-loop":
            train(fresh, new, 2)
            return
        fresh.compile(optimizer=new, loss="mse")
        if then == "evaluate-only":
            fresh.evaluate(X, Y, verbose=0)
        else:
            fresh.fit(X, Y, epochs=1, verbose=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' own warnings about skipped state
        report = watched(resume, lambda: [new])
    if then.startswith("compile-a-new-one") and "another" not in then or "loop" in then:
        thrown = finding(report, "checkpoint-optimizer-state-not-restored")
        assert thrown.severity is Severity.ERROR, str(report)
        assert "5 saved steps" in thrown.message and "Adam" in thrown.message, thrown.message
        assert int(restored.iterations) == 5 and int(new.iterations) > 0
    else:
        assert "checkpoint-optimizer-state-not-restored" not in report.codes(), str(report)


@pytest.mark.parametrize(
    "case",
    [
        "resumed-without-its-optimizer",
        "resumed-with-its-optimizer",
        "pretrained-weights-without-a-counter",
        "resumed-without-its-optimizer-at-a-constant-rate",
        "counter-saved-at-zero",
        "optimizer-saved-but-not-restored",
    ],
)
def test_a_resume_whose_checkpoint_holds_no_optimizer_is_found(case, tmp_path):
    # hunt27 b03: the checkpoint holds the model and an epoch counter but not the optimizer, so
    # the resumed run goes on with the model while its schedule starts over at the peak rate.
    # The twins: the optimizer saved too (the guide's resume); pretrained weights with no
    # counter (a new stage); a constant rate (only Adam's moments restart: not reported); a
    # counter still at 0 (nothing to resume). An optimizer saved but not restored is another
    # finding's (its values are left behind), not this one's.
    constant = "constant" in case
    with_optimizer = case == "resumed-with-its-optimizer"

    def objects():
        model = make()
        optimizer = keras.optimizers.Adam(1e-3 if constant else _decay())
        epoch = tf.Variable(0)
        saved = {"model": model, "epoch": epoch}
        if with_optimizer:
            saved["optimizer"] = optimizer
        if case == "pretrained-weights-without-a-counter":
            del saved["epoch"]
        return model, optimizer, epoch, tf.train.Checkpoint(**saved)

    keras.utils.set_random_seed(3)
    model, optimizer, epoch, first = objects()
    train(model, optimizer, 5)
    epoch.assign(0 if case == "counter-saved-at-zero" else 2)
    path = first.write(str(tmp_path / "ckpt"))
    model, optimizer, epoch, again = objects()
    if case == "optimizer-saved-but-not-restored":
        path = tf.train.Checkpoint(model=make(), optimizer=optimizer, epoch=tf.Variable(2)).write(
            str(tmp_path / "full")
        )

    def resume() -> None:
        again.restore(path)
        train(model, optimizer, 2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' own warnings about skipped state
        report = watched(resume, lambda: [optimizer])
    if case == "resumed-without-its-optimizer":
        missing = finding(report, "checkpoint-missing-variables")
        assert "holds no optimizer" in missing.message and "epoch restored at 2" in missing.message
        assert missing.severity is Severity.ERROR
    else:
        assert not any("holds no optimizer" in f.message for f in report.findings), str(report)


def test_values_a_deferred_restore_put_into_a_later_optimizer_are_not_called_left_behind(
    tmp_path,
):
    # hunt27 b13: a model-only restore of a compiled Adam model's checkpoint, then compile with
    # SGD and momentum. TensorFlow's deferred restore puts the saved step count, rate and some
    # slots into the SGD; only the other slots are left behind, and only they are named.
    keras.utils.set_random_seed(3)
    model, optimizer = make(), keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, epochs=2, verbose=0)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    fresh = make()

    def fine_tune() -> None:
        tf.train.Checkpoint(model=fresh).restore(path).expect_partial()
        fresh.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="mse")
        fresh.fit(X, Y, epochs=1, verbose=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' own warnings about skipped state
        report = watched(fine_tune)
    assert int(fresh.optimizer.iterations) == 2 + 1  # (Adam's 2 steps went in)
    left = finding(report, "checkpoint-unexpected-variables")
    assert "optimizer/iteration" not in left.variables and left.variables, str(report)
    assert "optimizer/learning_rate" not in left.variables, str(report)
    # Matched by position: Adam's 10 values (step, rate, two slots for each of the 4 weights)
    # against the SGD's 6 (step, rate, a momentum for each): the last 4 went nowhere.
    assert len(left.variables) == 4 and "4 saved value(s)" in left.message, str(report)


@pytest.mark.parametrize("reset", [False, True])
def test_a_new_stage_given_the_old_runs_step_count_starts_its_schedule_late(reset, tmp_path):
    # hunt27 b13: the SGD compile attaches after a model-only restore gets Adam's step count,
    # so its cosine decay starts past its end. The twin sets the count back to 0 after compile.
    # (Under `gradguard run` the guard notes each optimizer's rate at its first update.)
    keras.utils.set_random_seed(3)
    model, optimizer = make(), keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, epochs=8, verbose=0)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(tmp_path / "ckpt"))
    fresh, starts = make(), {}

    def fine_tune() -> None:
        tf.train.Checkpoint(model=fresh).restore(path).expect_partial()
        decay = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=4, alpha=0.01)
        fresh.compile(optimizer=keras.optimizers.SGD(decay, momentum=0.9), loss="mse")
        fresh.optimizer.build(fresh.trainable_variables)
        if reset:
            fresh.optimizer.iterations.assign(0)
        starts[id(fresh.optimizer)] = float(fresh.optimizer.learning_rate)
        fresh.fit(X, Y, epochs=2, verbose=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' own warnings about skipped state
        report = watched(fine_tune, lambda: [fresh.optimizer], lambda: starts)
    if reset:
        assert len(report) == 0, str(report)
        return
    late = finding(report, "checkpoint-optimizer-config-changed")
    assert "CosineDecay" in late.message and "iterations.assign(0)" in late.message, str(report)
    assert late.severity is Severity.WARNING
