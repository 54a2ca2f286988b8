"""Issue #18: checkpoints that survive every fault, proven with real faults on real files.

A child process SIGKILLed at every file operation of a save; a real full filesystem (a small
tmpfs, where this machine lets the test mount one) and, everywhere, writes that fail with
ENOSPC; two real processes for the writer lock. After each: the last good checkpoint restores
bit for bit (weights and optimizer state), no good checkpoint was deleted, and nothing of the
failed save is seen by rotation, `tf.train.latest_checkpoint` or the state file.
"""

import concurrent.futures
import errno
import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import logging as absl_logging

from gradguard import checkpoint
from gradguard.checkpoint import Manager, durable
from gradguard.checkpoint.lock import DirectoryLockedError

FIXTURES = os.path.join(os.path.dirname(__file__), "checkpoint_fixtures")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
RNG = np.random.default_rng(3)
X = RNG.normal(size=(32, 8)).astype("float32")
Y = RNG.normal(size=(32, 1)).astype("float32")


def make(width=16):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(width), keras.layers.Dense(1)])
    return model, keras.optimizers.Adam(1e-2)


def train(model, optimizer, steps=2):
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(X) - Y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))


def arrays(model, optimizer):
    return [v.numpy().copy() for v in [*model.weights, *optimizer.variables]]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def number(prefix):
    return int(prefix.rpartition("-")[2])


def traces(directory, n):
    """Everything a checkpoint numbered `n` has in the directory (files, staging)."""
    return sorted(glob.glob(os.path.join(glob.escape(str(directory)), f"ckpt-{n}[._]*")))


def check_state_file(directory, good):
    """TensorFlow's view: latest_checkpoint and the state file name only good checkpoints."""
    state = tf.train.get_checkpoint_state(str(directory))
    listed = [
        os.path.join(str(directory), os.path.basename(p)) for p in state.all_model_checkpoint_paths
    ]
    assert set(listed) <= set(good), (listed, good)
    assert tf.train.latest_checkpoint(str(directory)) in good


# --- SIGKILL at every file operation of a save --------------------------------------------------


def run_child(directory, reference, point):
    return subprocess.run(
        [
            sys.executable,
            os.path.join(FIXTURES, "kill_save.py"),
            str(directory),
            str(reference),
            point,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sigkill_at_every_file_operation_of_a_save_loses_no_good_checkpoint(tmp_path):
    os.makedirs(tmp_path / "count")
    counted = run_child(tmp_path / "count", tmp_path, "count")
    assert counted.returncode == 0, counted.stderr[-3000:]
    calls = json.loads(counted.stdout.strip().splitlines()[-1])
    # Every operation that changes what is on disk. A kill just before an fsync leaves the same
    # files as a kill just after the operation before it (a killed process loses no page cache;
    # fsync matters for power loss, see test_every_file_and_the_directory_are_fsynced...).
    points = [f"{op}:{k}" for op, n in calls.items() if op != "fsync" for k in range(1, n + 1)]
    assert calls["write"] == 1 and calls["replace"] >= 4 and calls["fsync"] >= 5, calls

    def kill_at(point):
        directory = tmp_path / point.replace(":", "-")
        reference = tmp_path / f"ref-{point.replace(':', '-')}"
        os.makedirs(directory)
        os.makedirs(reference)
        return point, directory, reference, run_child(directory, reference, point)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        killed = list(pool.map(kill_at, points))
    for point, directory, reference, child in killed:
        context = f"killed at {point}: {sorted(os.listdir(directory))}\n{child.stderr[-2000:]}"
        assert child.returncode == -signal.SIGKILL, context
        published = os.path.exists(directory / "ckpt-3.index")
        model, optimizer = make()
        manager = Manager(directory, max_to_keep=2, model=model, optimizer=optimizer)
        path, report = manager.restore()
        assert number(path) == (3 if published else 2), context
        expected = list(np.load(reference / f"ckpt-{number(path)}.npz").values())
        assert same(arrays(model, optimizer), expected), context  # bit for bit
        # No good checkpoint deleted: ckpt-1 goes only once ckpt-3 counts.
        survivors = [2, 3] if published else [1, 2]
        assert all(os.path.exists(directory / f"ckpt-{n}.index") for n in survivors), context
        good = [
            str(directory / f"ckpt-{n}")
            for n in (1, 2, 3)
            if (directory / f"ckpt-{n}.index").exists()
        ]
        for prefix in good:
            assert len(checkpoint.validate(prefix, model=make()[0], optimizer=make()[1])) == 0, (
                context
            )
        check_state_file(directory, good)
        if not published:
            assert "interrupted" in str(report) or not traces(directory, 3), context
        # The next save clears what the killed one left, and counts from there.
        assert number(manager.save()) == (4 if published else 3), context
        left = [f for f in os.listdir(directory) if f.endswith((".saving", "_temp", ".tmp"))]
        assert left == [], context
        manager.close()


# --- ENOSPC -------------------------------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path):
    """A 4 MiB tmpfs mounted for the test (skipped where mounting is not allowed)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount, leave):
    """Fills the filesystem so that `leave` bytes stay free; returns the filler's path."""
    filler = os.path.join(mount, "filler")
    stat = os.statvfs(mount)
    size = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "ab") as f:
        f.write(b"\0" * max(size, 0))
    return filler


def stage(error):
    """Which write of a save ran out of space, from the error's message."""
    text = str(error)
    for name, mark in (("data", ".data-"), ("index", ".index"), ("sidecar", ".gradguard.json")):
        if mark in text:
            return name
    return "state" if f"{os.sep}checkpoint" in text else text


def test_a_full_disk_at_any_moment_of_a_save_keeps_every_good_checkpoint(small_filesystem):
    directory = os.path.join(small_filesystem, "run")
    model, optimizer = make(width=256)  # a checkpoint of ~35 KB: about ten pages
    manager = Manager(directory, max_to_keep=2, model=model, optimizer=optimizer)
    saved = {}
    for _ in range(2):
        train(model, optimizer)
        saved[number(manager.save())] = arrays(model, optimizer)
    stages = set()
    for pages in range(0, 24):  # from nothing free, a page more each time, to a whole save
        train(model, optimizer)
        filler = fill(small_filesystem, pages * 4096)
        latest = max(saved)
        try:
            path = manager.save()
        except Exception as e:  # noqa: BLE001 - whichever layer ran out of space
            assert "No space left on device" in str(e), repr(e)
            stages.add(stage(e))
            assert traces(directory, latest + 1) == [], str(e)  # nothing of the failed save
            assert manager.latest_checkpoint == os.path.join(directory, f"ckpt-{latest}")
            check_state_file(directory, manager.checkpoints)
        else:
            assert number(path) == latest + 1  # a failed save costs no number either
            saved[number(path)] = arrays(model, optimizer)
        finally:
            os.remove(filler)
        kept = sorted(saved)[-2:]
        assert manager.checkpoints == [os.path.join(directory, f"ckpt-{n}") for n in kept]
    # TF's data file, TF's in-place index (the write that used to leave an empty index), and
    # the state file: the disk filled up during each of them.
    assert {"data", "index", "state"} <= stages, stages
    for n in sorted(saved)[-2:]:  # each kept checkpoint restores bit for bit
        fresh_model, fresh_optimizer = make(width=256)
        checkpoint.restore(
            os.path.join(directory, f"ckpt-{n}"), model=fresh_model, optimizer=fresh_optimizer
        )
        assert same(arrays(fresh_model, fresh_optimizer), saved[n])
    fresh_model, fresh_optimizer = make(width=256)
    path, report = Manager(directory, model=fresh_model, optimizer=fresh_optimizer).restore()
    assert len(report) == 0, str(report)  # a failed save is not later "interrupted"
    manager.close()


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_writing_the_sidecar_names_the_file_and_keeps_nothing(tmp_path, monkeypatch):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=2, model=model, optimizer=optimizer)
    good = manager.save()
    before = arrays(model, optimizer)
    train(model, optimizer)
    real_open = open

    def open_failing_for_the_sidecar(path, *args, **kwargs):
        if str(path).endswith(".gradguard.json.tmp"):
            enospc()
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_failing_for_the_sidecar)
    with pytest.raises(OSError) as raised:
        manager.save()
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC
    message = str(raised.value)
    assert (
        str(tmp_path / "ckpt-2.gradguard.json") in message and "No space left on device" in message
    )
    assert traces(tmp_path, 2) == [] and manager.checkpoints == [good]
    check_state_file(tmp_path, [good])
    fresh_model, fresh_optimizer = make()
    path, report = Manager(tmp_path, model=fresh_model, optimizer=fresh_optimizer).restore()
    assert path == good and len(report) == 0, str(report)
    assert same(arrays(fresh_model, fresh_optimizer), before)
    assert manager.save() == str(tmp_path / "ckpt-2")  # the number is not lost either


def test_a_save_that_leaves_an_empty_index_costs_no_good_checkpoint(tmp_path, monkeypatch):
    # TensorFlow writes the merged index in place: a full disk at that moment leaves it empty.
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=2, model=model, optimizer=optimizer)
    good = [manager.save(), manager.save()]
    inner_write = manager._write

    def write_then_disk_full(prefix):
        inner_write(prefix)
        open(prefix + ".index", "wb").close()
        enospc()

    monkeypatch.setattr(manager, "_write", write_then_disk_full)
    for _ in range(3):  # the same process carrying on, as training loops do
        with pytest.raises(OSError):
            manager.save()
    monkeypatch.undo()
    assert manager.checkpoints == good and traces(tmp_path, 3) == []
    check_state_file(tmp_path, good)
    # A new Manager that does not restore first, saving at once: it keeps the newest good one.
    model2, optimizer2 = make()
    other = Manager(tmp_path, max_to_keep=2, model=model2, optimizer=optimizer2)
    manager.close()
    new = other.save()
    assert other.checkpoints == [good[1], new]
    other.close()


def test_rotation_skips_a_broken_index_left_by_a_plain_tf_save(tmp_path):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=2, model=model, optimizer=optimizer)
    good = [manager.save(), manager.save()]
    # What tf.train.CheckpointManager (and gradguard before) left after a full disk.
    shutil.copy(good[1] + ".data-00000-of-00001", tmp_path / "ckpt-3.data-00000-of-00001")
    open(tmp_path / "ckpt-3.index", "wb").close()
    new = manager.save()
    assert new == str(tmp_path / "ckpt-4")
    assert manager.checkpoints == [good[1], new]  # ckpt-3 did not count; ckpt-2 is kept
    assert traces(tmp_path, 3) == []
    check_state_file(tmp_path, [good[1], new])
    manager.close()


def test_the_state_file_failing_rolls_the_new_checkpoint_back(tmp_path, monkeypatch):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=1, model=model, optimizer=optimizer)
    good = manager.save()
    real_open = open

    def open_failing_for_the_state(path, *args, **kwargs):
        if os.path.basename(str(path)) == "checkpoint.tmp":
            enospc()
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_failing_for_the_state)
    with pytest.raises(OSError) as raised:
        manager.save()
    monkeypatch.undo()
    assert str(tmp_path / "checkpoint") in str(raised.value)
    assert manager.checkpoints == [good] and traces(tmp_path, 2) == []
    check_state_file(tmp_path, [good])


# --- durability: what reaches the disk before what ----------------------------------------------


def test_every_file_and_the_directory_are_fsynced_before_the_index_counts(tmp_path, monkeypatch):
    model, optimizer = make()
    manager = Manager(tmp_path, max_to_keep=1, model=model, optimizer=optimizer)
    manager.save()
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", os.fspath(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    prefix = manager.save()
    monkeypatch.undo()
    index = events.index(("replace", prefix + ".index"))
    synced = [path for op, path in events[:index] if op == "fsync"]
    for name in (".data-00000-of-00001", ".gradguard.json", ".index"):
        staged = os.path.join(prefix + durable.STAGING, os.path.basename(prefix) + name)
        assert staged in synced, (name, events)
    last_data = max(
        i for i, (op, path) in enumerate(events) if op == "replace" and ".data-" in path
    )
    assert ("fsync", str(tmp_path)) in events[last_data:index]  # data renames on disk first
    assert ("fsync", str(tmp_path)) in events[index:]
    state = events.index(("replace", str(tmp_path / "checkpoint")))
    assert index < state and ("fsync", str(tmp_path / "checkpoint.tmp")) in events[index:state]
    manager.close()


# --- one writer ---------------------------------------------------------------------------------

HOLDER = """
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
from gradguard.checkpoint import Manager
manager = Manager(sys.argv[1], step=tf.Variable(1))
manager.save()
print("saved", os.getpid(), flush=True)
sys.stdin.readline()  # hold the lock until told
"""


def start_holder(directory):
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    line = child.stdout.readline()
    assert line.startswith("saved"), line
    return child, int(line.split()[1])


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    child, pid = start_holder(tmp_path)
    try:
        manager = Manager(tmp_path, step=tf.Variable(2))
        with pytest.raises(DirectoryLockedError) as raised:
            manager.save()
        message = str(raised.value)
        assert f"pid {pid}" in message and "on host" in message and str(tmp_path) in message
        assert raised.value.holder["pid"] == pid
        assert manager.checkpoints == [str(tmp_path / "ckpt-1")]  # nothing written
        # Reading is not writing: restoring while the other process holds the lock is fine.
        path, report = manager.restore()
        assert path == str(tmp_path / "ckpt-1") and len(report) == 0
    finally:
        child.communicate("\n", timeout=60)
    assert child.returncode == 0
    # It ended and let go cleanly: the next writer takes the lock without a word.
    assert manager.save() == str(tmp_path / "ckpt-2")
    manager.close()


def test_the_lock_of_a_killed_writer_is_taken_over_and_said_so(tmp_path, caplog):
    child, pid = start_holder(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait()
    manager = Manager(tmp_path, step=tf.Variable(2))
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)  # conftest keeps tests at ERROR
    try:
        with caplog.at_level(logging.WARNING):
            assert manager.save() == str(tmp_path / "ckpt-2")
    finally:
        absl_logging.set_verbosity(verbosity)
    took_over = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert took_over and f"pid {pid}" in took_over[0], caplog.text
    manager.close()


def test_managers_of_one_process_share_the_lock(tmp_path):
    first = Manager(tmp_path, max_to_keep=3, step=tf.Variable(1))
    first.save()
    second = Manager(tmp_path, max_to_keep=3, step=tf.Variable(1))  # a notebook cell run again
    second.restore()
    assert second.save() == str(tmp_path / "ckpt-2")
    first.close()
    second.close()


# --- saying what happened -----------------------------------------------------------------------


def test_directory_deleted_under_the_manager_is_reported_not_a_fresh_start(tmp_path):
    directory = tmp_path / "run"
    model, optimizer = make()
    manager = Manager(directory, model=model, optimizer=optimizer)
    manager.save()
    last = manager.save()
    shutil.rmtree(directory)
    with pytest.raises(checkpoint.CheckpointMismatchError) as raised:
        manager.restore()
    gone = raised.value.report.findings[-1]
    assert gone.code == "checkpoint-corrupt" and str(directory) in gone.message
    assert last in gone.message and "deleted" in gone.message
    # Saving again starts the directory anew (and takes the lock again).
    assert number(manager.save()) >= 1 and manager.restore()[0] is not None
    manager.close()


def test_the_newest_checkpoint_deleted_is_reported_and_the_older_restored(tmp_path):
    model, optimizer = make()
    manager = Manager(tmp_path, model=model, optimizer=optimizer)
    older = manager.save()
    newest = manager.save()
    for f in glob.glob(newest + ".*"):
        os.remove(f)
    path, report = manager.restore()
    assert path == older
    assert any(newest in f.message and "gone" in f.message for f in report.findings), str(report)
    manager.close()


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_missing_or_unreadable_sidecar_says_the_config_cannot_be_compared(tmp_path, damage):
    model, optimizer = make()
    manager = Manager(tmp_path, model=model, optimizer=optimizer)
    manager.save()
    latest = manager.save()
    sidecar = latest + ".gradguard.json"
    if damage == "missing":
        os.remove(sidecar)
    else:
        with open(sidecar, "w") as f:
            f.write("{not json")
    model2, optimizer2 = make()
    path, report = Manager(tmp_path, model=model2, optimizer=optimizer2).restore()
    assert path == latest  # the values are fine: it restores
    (said,) = report.findings
    assert said.code == "checkpoint-corrupt" and said.severity.value == "warning"
    assert sidecar in said.message and "cannot be compared" in said.message
    assert (
        "checkpoint-corrupt"
        in checkpoint.validate(latest, model=model2, optimizer=optimizer2).codes()
    )
    manager.close()


SECOND_WRITER = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
from gradguard.checkpoint import Manager
from gradguard.checkpoint.lock import DirectoryLockedError
try:
    Manager(sys.argv[1], step=tf.Variable(9)).save()
except DirectoryLockedError as e:
    print("refused", e.holder["pid"])
else:
    print("saved")
"""


def test_a_forked_child_letting_go_does_not_unlock_the_parent(tmp_path):
    manager = Manager(tmp_path, step=tf.Variable(1))
    manager.save()
    child = os.fork()
    if child == 0:  # the child inherits the lock's descriptor; closing must not unlock it
        try:
            manager.close()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    other = subprocess.run(
        [sys.executable, "-c", SECOND_WRITER, str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.stdout.split() == ["refused", str(os.getpid())], other.stdout + other.stderr
    manager.close()
