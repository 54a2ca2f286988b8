"""tf.distribute: the same weights and findings on 2 replicas as on one device.

Logical devices must be configured before TensorFlow starts, so these run in subprocesses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent / "distributed"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def mirrored():
    out = subprocess.run(
        [sys.executable, str(HERE / "mirrored.py")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "case",
    [
        "classifier",  # (a traced cross-entropy's classes, counted on one device only)
        "cross_replica",  # (gradients reduced, then applied once outside strategy.run)
        "clipped",
        "plain_function_loss",
        "tiny_lr",
        "accumulate",
        "guard",
        "jit_clipped",
        "jit_tiny_lr",
    ],
)
def test_mirrored_matches_one_device(mirrored, case):
    single, replicated = mirrored[case]["single"], mirrored[case]["mirrored"]
    for a, b in zip(single[0], replicated[0]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    assert single[1] == replicated[1]
    if len(single) > 2:  # the global gradient norm, logged on both: the all-reduced one
        np.testing.assert_allclose(single[2], replicated[2], rtol=1e-5)


def test_replicas_fold_every_step_and_count_each_step_once(mirrored):
    # Each replica would need its own rows: under a strategy TrainStep and the guard keep none.
    # A guard made outside the scope makes its state in the strategy of the model's variables:
    # made plain, every replica assigned it: two calls counted four steps and four gradient calls.
    assert mirrored["built_optimizer"] == {
        "single": [True, [[True, 2]], 2],
        "mirrored": [False, [[False, 2]], 2],
    }


def test_a_nan_is_traced_to_its_layer_on_replicas_as_on_one_device(mirrored):
    single, replicated = mirrored["nan_origin"]["single"], mirrored["nan_origin"]["mirrored"]
    assert single == replicated and replicated["layer"] == "bad_sqrt", replicated


def test_batches_the_strategy_split_are_trained_on_and_judged(mirrored):
    assert mirrored["distributed_batches"] == [6, []]


def test_mirrored_findings_are_the_planted_ones(mirrored):
    assert mirrored["tiny_lr"]["mirrored"][1] == ["update-too-small", "weights-unchanged"]
    assert mirrored["clipped"]["mirrored"][1] == []
    assert mirrored["jit_tiny_lr"]["mirrored"][1] == ["update-too-small", "weights-unchanged"]
    assert mirrored["jit_clipped"]["mirrored"][1] == []


def test_a_loss_averaged_or_summed_per_replica_is_found(mirrored):
    # tf.reduce_mean on each replica's examples, the replicas' gradients summed: twice the step.
    codes = mirrored["per_replica_loss"]
    assert "loss-averaged-per-replica" in codes["replica-mean"]
    silents = ("global", "keras", "one-device-mean", "divided-then-summed", "one-device-sum")
    for silent in (*silents, "weights-divided", "halved-mean", "penalties-summed"):
        assert "loss-averaged-per-replica" not in codes[silent], (silent, codes[silent])
        assert "loss-summed-per-replica" not in codes[silent], (silent, codes[silent])
    # Summed over the replica's examples and never divided by the global batch (hunt22 p02).
    for summed in ("replica-sum", "keras-sum", "halved-sum", "l2-loss"):
        assert "loss-summed-per-replica" in codes[summed], (summed, codes[summed])
        assert "loss-averaged-per-replica" not in codes[summed], (summed, codes[summed])


def test_mirrored_activations_count_every_replicas_examples(mirrored):
    # Unit 0 fires only on the second replica's slice: alive, as on one device.
    single, replicated = mirrored["activations"]["single"], mirrored["activations"]["mirrored"]
    assert single[0] == replicated[0] == 0.5
    assert single[1] == replicated[1] == []  # half dead is below the 0.6 default


def test_mirrored_bad_input_is_named(mirrored):
    errors = mirrored["bad_input"]
    assert "outside the strategy's scope" in errors["outside_scope"]
    assert "63 examples cannot be split evenly over 2 replicas" in errors["indivisible_batch"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_worker_agrees_and_only_the_chief_writes(tmp_path):
    ports = [str(_free_port()), str(_free_port())]
    log_dir = tmp_path / "logs"
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "multi_worker.py"),
                str(i),
                *ports,
                str(log_dir),
                str(outs[i]),
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        results = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, results):
        assert w.returncode == 0, err[-3000:]
    chief, other = (json.loads(p.read_text()) for p in outs)
    assert chief["replicas"] == 2
    assert chief["codes"] == other["codes"] == ["update-too-small", "weights-unchanged"]
    np.testing.assert_allclose(chief["losses"], other["losses"], rtol=1e-6)
    for a, b in zip(chief["weights"], other["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6)
    event_files = list(log_dir.rglob("events.out.tfevents.*"))
    assert len(event_files) == 1, event_files  # the chief's
