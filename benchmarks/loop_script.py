"""A user's training script, unchanged: timed run plainly and under `gradguard run`.

`overhead.py` runs it both ways in fresh processes, and a third way with `--step trainstep`:
the hand-written step replaced by `gradguard.TrainStep`, so that its first call is timed as a
user meets it (in a fresh process, AutoGraph and all). It times its own steps after warm-up (the
process start-up and TensorFlow import are not a training cost) and prints one JSON line:
``{"loop_script": {"ms_per_step": [...], "trace_count": 1, "first_step_s": ...}}``.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--workload", default="mlp", choices=sorted(workloads.WORKLOADS))
parser.add_argument("--steps", type=int, default=100, help="steps per timed window")
parser.add_argument("--windows", type=int, default=5)
parser.add_argument("--warmup", type=int, default=20)
parser.add_argument("--step", choices=["plain", "trainstep"], default="plain")
args = parser.parse_args()

workload = workloads.WORKLOADS[args.workload]
model, optimizer, loss_fn = workload.model(), workload.optimizer(), workload.loss()
x, y = workload.data()


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


traces = train_step.experimental_get_tracing_count
if args.step == "trainstep":
    import gradguard

    train_step = gradguard.TrainStep(model, optimizer, loss_fn)

    def traces():
        return train_step.tracing_count


start = time.perf_counter()
train_step(x, y).numpy()
first_step_s = time.perf_counter() - start
for _ in range(args.warmup):
    loss = train_step(x, y)
loss.numpy()

ms_per_step, cpu_ms_per_step = [], []
for _ in range(args.windows):
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = train_step(x, y)
    loss.numpy()  # block once per window, as a loop that logs now and then would
    ms_per_step.append((time.perf_counter() - start) * 1e3 / args.steps)
    cpu_ms_per_step.append((time.process_time() - start_cpu) * 1e3 / args.steps)

result = {
    "ms_per_step": ms_per_step,
    "cpu_ms_per_step": cpu_ms_per_step,
    "trace_count": traces(),
    "first_step_s": first_step_s,
    "final_loss": float(loss),
}
print(json.dumps({"loop_script": result}), flush=True)
