"""Tests for gradguard.checkpoint: every finding code planted in a real checkpoint on disk."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradguard import checkpoint, cli
from gradguard.checkpoint import CheckpointMismatchError, Manager
from gradguard.errors import CheckpointError, NonFiniteError
from gradguard.findings import Report, Severity

FIXTURES = os.path.join(os.path.dirname(__file__), "checkpoint_fixtures")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4)).astype("float32")
Y = RNG.normal(size=(16, 2)).astype("float32")


def make(units=2, dtype="float32", extra=False, lr=1e-3, name=None):
    """The model and optimizer of the tests; the arguments plant one change each."""
    layers = [
        keras.Input((4,)),
        keras.layers.Dense(3, dtype=dtype, name=name),
        keras.layers.Dense(units, dtype=dtype),
    ]
    if extra:
        layers.append(keras.layers.Dense(2))
    return keras.Sequential(layers), keras.optimizers.Adam(lr)


def train(model, optimizer, steps):
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((tf.cast(model(X), tf.float32) - Y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))


def values(*objects):
    return [
        v.numpy().copy()
        for o in objects
        for v in (o.weights if hasattr(o, "weights") else o.variables)
    ]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def finding(report, code):
    found = [f for f in report.findings if f.code == code]
    assert found, f"no {code} in:\n{report}"
    return found[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model and optimizer trained 10 steps and saved through gradguard, plus what was saved."""
    keras.utils.set_random_seed(0)
    model, optimizer = make()
    train(model, optimizer, 10)
    directory = tmp_path_factory.mktemp("saved")
    path = checkpoint.save(str(directory / "ckpt"), model=model, optimizer=optimizer)
    model.save_weights(str(directory / "model.weights.h5"))
    return {
        "path": path,
        "dir": directory,
        "model": model,
        "optimizer": optimizer,
        "values": values(model, optimizer),
    }


def copy_checkpoint(saved, tmp_path):
    for f in glob.glob(saved["path"] + ".*"):
        shutil.copy(f, tmp_path)
    return str(tmp_path / "ckpt")


# --- healthy round trips ----------------------------------------------------------------------


def test_healthy_checkpoint_reports_nothing_and_restores_everything(saved):
    model, optimizer = make()
    assert len(checkpoint.validate(saved["path"], model=model, optimizer=optimizer)) == 0
    report = checkpoint.restore(saved["path"], model=model, optimizer=optimizer)
    assert len(report) == 0
    assert same(values(model, optimizer), saved["values"])


def test_resume_continues_exactly_as_if_never_stopped(tmp_path):
    keras.utils.set_random_seed(1)
    model, optimizer = make()
    train(model, optimizer, 10)
    path = checkpoint.save(str(tmp_path / "ckpt"), model=model, optimizer=optimizer)
    train(model, optimizer, 10)
    model2, optimizer2 = make()
    checkpoint.restore(path, model=model2, optimizer=optimizer2)
    train(model2, optimizer2, 10)
    assert optimizer2.iterations.numpy() == 20
    assert same(values(model2, optimizer2), values(model, optimizer))


def test_unbuilt_optimizer_gets_its_slots_at_restore(saved):
    # Plain TF leaves the slots pending until the first step: nothing to check them against.
    model, optimizer = make()
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(saved["path"]).expect_partial()
    assert len(optimizer.variables) == 2  # iteration and learning rate only
    model, optimizer = make()
    checkpoint.restore(saved["path"], model=model, optimizer=optimizer)
    assert optimizer.built and len(optimizer.variables) == len(saved["optimizer"].variables)
    assert same(values(optimizer), values(saved["optimizer"]))


def test_matching_follows_the_object_graph_not_layer_names(saved):
    model, optimizer = make(name="renamed_hidden")
    assert len(checkpoint.validate(saved["path"], model=model, optimizer=optimizer)) == 0


def test_validate_changes_nothing(saved):
    model, optimizer = make(units=5)
    before = values(model)
    checkpoint.validate(saved["path"], model=model, optimizer=optimizer)
    assert not optimizer.built and same(values(model), before)


def test_model_only_restore_warns_about_the_optimizer_state_left_behind(saved):
    model, _ = make()
    report = checkpoint.restore(saved["path"], model=model)
    unexpected = finding(report, "checkpoint-unexpected-variables")
    assert unexpected.severity is Severity.WARNING and "optimizer/iteration" in unexpected.variables
    assert same(values(model), saved["values"][: len(model.weights)])


# --- each finding planted -------------------------------------------------------------------


def test_layer_added_after_saving_is_missing_and_restore_changes_nothing(saved):
    model, optimizer = make(extra=True)
    before = values(model)
    with pytest.raises(CheckpointMismatchError) as raised:
        checkpoint.restore(saved["path"], model=model, optimizer=optimizer)
    new = model.layers[-1].name
    missing = finding(raised.value.report, "checkpoint-missing-variables")
    assert missing.variables == (f"{new}/kernel", f"{new}/bias")
    assert f"{new}/kernel" in str(raised.value) and "(2, 2) float32" in str(raised.value)
    assert same(values(model), before) and not optimizer.built


def test_layer_added_restores_the_rest_when_not_strict(saved):
    model, optimizer = make(extra=True)
    report = checkpoint.restore(saved["path"], strict=False, model=model, optimizer=optimizer)
    assert "checkpoint-missing-variables" in report.codes()
    assert same(values(model)[:4], saved["values"][:4])


def test_shape_mismatch_names_saved_and_current_shape_and_never_half_restores(saved):
    model, optimizer = make(units=5)
    before = values(model)
    for strict in (True, False):  # a shape mismatch cannot be restored around
        with pytest.raises(CheckpointMismatchError) as raised:
            checkpoint.restore(saved["path"], strict=strict, model=model, optimizer=optimizer)
        assert same(values(model), before)
    mismatch = finding(raised.value.report, "checkpoint-shape-mismatch")
    last = model.layers[-1].name
    assert mismatch.variables[:2] == (f"{last}/kernel", f"{last}/bias")
    assert f"{last}/kernel (saved (3, 2), now (3, 5))" in mismatch.message
    assert f"optimizer/{last}/kernel/momentum" in mismatch.variables


def test_float32_saved_float16_restored_is_a_dtype_mismatch(saved):
    model, optimizer = make(dtype="float16")
    report = checkpoint.validate(saved["path"], model=model, optimizer=optimizer)
    mismatch = finding(report, "checkpoint-dtype-mismatch")
    first = model.layers[0].name
    assert f"{first}/kernel (saved float32, now float16)" in mismatch.message
    assert report.codes() == {"checkpoint-dtype-mismatch"}


def test_learning_rate_changed_is_a_warning_naming_the_field(saved):
    model, optimizer = make(lr=1e-2)
    report = checkpoint.validate(saved["path"], model=model, optimizer=optimizer)
    changed = finding(report, "checkpoint-optimizer-config-changed")
    assert changed.severity is Severity.WARNING and report.codes() == {changed.code}
    assert "learning_rate 0.001 -> 0.01" in changed.message and "deliberate" in changed.message
    assert set(changed.details["changed"]) == {"learning_rate"}


def test_optimizer_class_changed_loses_its_state(saved):
    model, _ = make()
    optimizer = keras.optimizers.SGD()
    report = checkpoint.validate(saved["path"], model=model, optimizer=optimizer)
    lost = finding(report, "checkpoint-optimizer-state-not-restored")
    first = model.layers[0].name
    assert f"optimizer/{first}/kernel/momentum" in lost.variables
    assert "class Adam -> SGD" in finding(report, "checkpoint-optimizer-config-changed").message
    with pytest.raises(CheckpointMismatchError):
        checkpoint.restore(saved["path"], model=model, optimizer=optimizer)


class Net(keras.Model):
    def __init__(self, attribute):
        super().__init__()
        setattr(self, attribute, keras.layers.Dense(3))
        self.attribute = attribute
        self.out = keras.layers.Dense(2)

    def call(self, x):
        return self.out(getattr(self, self.attribute)(x))


def test_renamed_layer_attribute_is_unexpected_and_missing(tmp_path):
    model = Net("encoder")
    model(X)
    path = checkpoint.save(str(tmp_path / "ckpt"), model=model)
    renamed = Net("hidden")
    renamed(X)
    report = checkpoint.validate(path, model=renamed)
    assert finding(report, "checkpoint-unexpected-variables").variables == (
        "model/encoder/kernel",
        "model/encoder/bias",
    )
    layer = renamed.hidden.name
    assert finding(report, "checkpoint-missing-variables").variables == (
        f"{layer}/kernel",
        f"{layer}/bias",
    )


# --- corruption -----------------------------------------------------------------------------


def truncate(path):
    data = glob.glob(path + ".data-*")[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    return data


def flip(path):
    data = glob.glob(path + ".data-*")[0]
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 3] ^= 0xFF
    open(data, "wb").write(bytes(raw))
    return data


def drop_index(path):
    os.remove(path + ".index")
    return path + ".index"


def drop_shard(path):
    data = glob.glob(path + ".data-*")[0]
    os.remove(data)
    return data


@pytest.mark.parametrize("damage", [truncate, flip, drop_index, drop_shard])
def test_damaged_checkpoint_is_corrupt_naming_the_file_never_a_tf_traceback(
    saved, tmp_path, damage
):
    path = copy_checkpoint(saved, tmp_path)
    damaged = damage(path)
    corrupt = finding(checkpoint.validate(path), "checkpoint-corrupt")
    assert corrupt.variables == (damaged,) and damaged in corrupt.message
    model, optimizer = make()
    before = values(model)
    with pytest.raises(CheckpointMismatchError) as raised:
        checkpoint.restore(path, model=model, optimizer=optimizer)
    assert raised.value.report.codes() == {"checkpoint-corrupt"}
    assert same(values(model), before)


def test_flipped_byte_is_caught_by_the_checksum(saved, tmp_path):
    path = copy_checkpoint(saved, tmp_path)
    flip(path)
    assert "Checksum" in finding(checkpoint.validate(path), "checkpoint-corrupt").message


# --- Keras weight files ---------------------------------------------------------------------


def test_keras_weights_file_round_trip_and_planted_changes(saved):
    path = str(saved["dir"] / "model.weights.h5")
    model, _ = make()
    assert len(checkpoint.restore(path, model=model)) == 0
    assert same(values(model), saved["values"][:4])
    added, _ = make(extra=True)
    new = added.layers[-1].name
    assert finding(
        checkpoint.validate(path, model=added), "checkpoint-missing-variables"
    ).variables == (f"{new}/kernel", f"{new}/bias")
    half, _ = make(dtype="float16")
    assert checkpoint.validate(path, model=half).codes() == {"checkpoint-dtype-mismatch"}
    wide, _ = make(units=5)
    before = values(wide)
    with pytest.raises(CheckpointMismatchError):
        checkpoint.restore(path, model=wide)
    assert same(values(wide), before)


def test_keras_file_restores_the_optimizer_keras_would_skip(tmp_path):
    keras.utils.set_random_seed(2)
    model, _ = make()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(X, Y, epochs=2, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    fresh, _ = make()
    fresh.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    assert len(checkpoint.restore(path, model=fresh)) == 0
    assert same(values(fresh.optimizer), values(model.optimizer))


class Forgetful(keras.optimizers.Adam):
    """Drops its state on load, as Keras does when an optimizer's variable count differs."""

    def load_own_variables(self, store):
        pass


def test_state_that_does_not_arrive_is_found_after_restore_and_rolled_back(tmp_path):
    keras.utils.set_random_seed(3)
    model, _ = make()
    model.compile(optimizer=Forgetful(1e-2), loss="mse")
    model.fit(X, Y, epochs=2, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    fresh, _ = make()
    fresh.compile(optimizer=Forgetful(1e-2), loss="mse")
    before = values(fresh)
    with pytest.raises(CheckpointMismatchError) as raised:
        checkpoint.restore(path, model=fresh)
    lost = finding(raised.value.report, "checkpoint-optimizer-state-not-restored")
    assert f"optimizer/{fresh.layers[0].name}/kernel/momentum" in lost.variables
    assert same(values(fresh), before)  # the weights that did load were put back


def test_damaged_keras_files_are_corrupt(saved, tmp_path):
    h5 = str(tmp_path / "model.weights.h5")
    shutil.copy(saved["dir"] / "model.weights.h5", h5)
    with open(h5, "r+b") as f:
        f.truncate(os.path.getsize(h5) // 2)
    assert finding(checkpoint.validate(h5), "checkpoint-corrupt").variables == (h5,)
    model, _ = make()
    model.compile(optimizer="adam", loss="mse")
    archive = str(tmp_path / "model.keras")
    model.save(archive)
    raw = bytearray(open(archive, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(archive, "wb").write(bytes(raw))
    assert "checkpoint-corrupt" in checkpoint.validate(archive).codes()


# --- Manager --------------------------------------------------------------------------------


def test_manager_keeps_n_and_writes_tf_state(tmp_path):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=2, model=model, optimizer=optimizer)
    path, report = manager.restore()
    assert path is None and len(report) == 0  # a fresh start
    paths = [manager.save() for _ in range(4)]
    assert manager.checkpoints == paths[-2:]
    assert tf.train.latest_checkpoint(str(tmp_path)) == paths[-1]
    assert sorted(glob.glob(str(tmp_path / "ckpt-*.gradguard.json"))) == [
        p + ".gradguard.json" for p in paths[-2:]
    ]
    assert not os.path.exists(paths[0] + ".index")


def test_manager_refuses_to_save_nan_unless_forced(tmp_path):
    model, optimizer = make()
    manager = Manager(tmp_path, model=model, optimizer=optimizer)
    good = manager.save()
    model.layers[1].bias.assign([np.nan, 0.0])
    with pytest.raises(NonFiniteError) as raised:
        manager.save()
    assert raised.value.finding.code == "non-finite"
    assert raised.value.finding.variables == (f"{model.layers[1].name}/bias",)
    assert manager.checkpoints == [good]
    assert manager.save(force=True) != good


def test_manager_restores_newest_that_reads_whole_and_reports_the_skipped(tmp_path):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=3, model=model, optimizer=optimizer)
    for value in (1.0, 2.0, 3.0):
        model.layers[0].bias.assign([value] * 3)
        manager.save()
    truncate(manager.latest_checkpoint)
    model2, optimizer2 = make()
    manager2 = Manager(tmp_path, max_to_keep=3, model=model2, optimizer=optimizer2)
    path, report = manager2.restore()
    assert path.endswith("ckpt-2") and model2.layers[0].bias.numpy().tolist() == [2.0] * 3
    assert "ckpt-3.data" in finding(report, "checkpoint-corrupt").message
    for prefix in manager.checkpoints[:2]:
        truncate(prefix)
    with pytest.raises(CheckpointMismatchError):  # all damaged: never a silent fresh start
        manager2.restore()


def test_manager_verifies_a_save_before_deleting_older_ones(tmp_path, monkeypatch):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=1, model=model, optimizer=optimizer)
    good = manager.save()
    inner_write = manager._write

    def write_then_disk_fault(prefix):
        inner_write(prefix)
        flip(prefix)  # the write "succeeded" but the bytes on disk are wrong

    monkeypatch.setattr(manager, "_write", write_then_disk_fault)
    with pytest.raises(CheckpointError) as raised:
        manager.save()
    assert raised.value.finding.code == "checkpoint-corrupt"
    assert manager.checkpoints == [good] and tf.train.latest_checkpoint(str(tmp_path)) == good
    assert len(checkpoint.validate(good, model=model, optimizer=optimizer)) == 0


def test_save_killed_half_way_leaves_the_previous_checkpoint_restorable(tmp_path):
    size = 32_000_000  # 128 MB: the write takes long enough to be killed in the middle
    child = subprocess.Popen(
        [sys.executable, os.path.join(FIXTURES, "crash_save.py"), str(tmp_path), str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().startswith("saving 2")
        deadline = time.monotonic() + 60
        writing = str(tmp_path / "ckpt-2.saving" / "ckpt-2_temp" / "*data*")  # staged
        while not [f for f in glob.glob(writing) if os.path.getsize(f) > 0]:
            assert time.monotonic() < deadline, "the second save never started writing"
            time.sleep(0.001)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not os.path.exists(tmp_path / "ckpt-2.index")  # it really died half-way
    blob, step = tf.Variable(tf.zeros([size])), tf.Variable(0, dtype=tf.int64)
    manager = Manager(tmp_path, blob=blob, step=step)
    path, report = manager.restore()
    assert path == str(tmp_path / "ckpt-1") and int(step.numpy()) == 1
    assert float(tf.reduce_min(blob)) == float(tf.reduce_max(blob)) == 1.0
    assert "interrupted" in finding(report, "checkpoint-corrupt").message
    blob.assign(tf.fill([size], 3.0))
    assert manager.save() == str(tmp_path / "ckpt-2")
    assert not os.path.exists(tmp_path / "ckpt-2_temp")  # leftovers of the killed save removed
    assert not os.path.exists(tmp_path / "ckpt-2.saving")


# --- listing and the CLI entry point --------------------------------------------------------


def main_ckpt(path, against=None):
    """`gradguard ckpt PATH [--against AGAINST]` in this process: its exit status."""
    return cli.main(["ckpt", path, *(["--against", against] if against else [])])


def test_list_variables_names_shapes_dtypes_sizes(saved):
    infos = {i.name: i for i in checkpoint.list_variables(saved["path"])}
    first = saved["model"].layers[0].name
    kernel = infos[f"{first}/kernel"]
    assert (kernel.shape, kernel.dtype, kernel.size) == ((4, 3), "float32", 48)
    assert f"optimizer/{first}/kernel/velocity" in infos and "optimizer/iteration" in infos


def test_main_ckpt_lists_and_verifies(saved, tmp_path, capsys):
    assert main_ckpt(saved["path"]) == 0
    out = capsys.readouterr().out
    assert f"{saved['model'].layers[0].name}/kernel" in out and "(4, 3)" in out
    assert "reads whole" in out
    assert main_ckpt(str(saved["dir"])) == 0  # a directory: its latest checkpoint
    capsys.readouterr()
    path = copy_checkpoint(saved, tmp_path)
    truncate(path)
    assert main_ckpt(path) == 1
    assert "checkpoint-corrupt" in capsys.readouterr().out
    assert main_ckpt(str(tmp_path / "nothing-here")) == 2


def test_main_ckpt_against_a_factory(saved, tmp_path, capsys, monkeypatch):
    (tmp_path / "factories.py").write_text(
        "import keras\n"
        "def good():\n"
        "    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),"
        " keras.layers.Dense(2)])\n"
        "    return m, keras.optimizers.Adam(1e-3)\n"
        "def wide():\n"
        "    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),"
        " keras.layers.Dense(5)])\n"
        "    return {'model': m, 'optimizer': keras.optimizers.Adam(1e-3)}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main_ckpt(saved["path"], against="factories:good") == 0
    capsys.readouterr()
    assert main_ckpt(saved["path"], against=f"{tmp_path}/factories.py:wide") == 1
    out = capsys.readouterr().out
    assert (
        "checkpoint-shape-mismatch" in out and "(3, 2) float32" in out and "(3, 5) float32" in out
    )
    assert main_ckpt(saved["path"], against="factories:nope") == 2
    assert main_ckpt(saved["path"], against="no_colon") == 2


# --- watching an unmodified script's restores ------------------------------------------------


def test_watch_restores_reports_plain_tf_and_keras_restores(saved):
    report = Report()
    unwatch = checkpoint.watch_restores(report)
    try:
        model, optimizer = make(extra=True)
        tf.train.Checkpoint(model=model, optimizer=optimizer).restore(
            saved["path"]
        ).expect_partial()
        half, _ = make(dtype="float16")
        half.load_weights(str(saved["dir"] / "model.weights.h5"))  # Keras casts silently
    finally:
        unwatch()
    assert report.codes() == {"checkpoint-missing-variables", "checkpoint-dtype-mismatch"}
    assert finding(report, "checkpoint-missing-variables").count == 1  # restore calls read
    model, optimizer = make(extra=True)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(saved["path"]).expect_partial()
    assert len(report) == 2  # unwatched
