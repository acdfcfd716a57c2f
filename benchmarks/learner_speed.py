r"""Learner-only speed: ms per training step on synthetic batches.

    python -m benchmarks.learner_speed [--agents=shallow,deep]
        [--unrolls=20,100] [--threads=1,2] [--xla=false] [--batch_size=32]
        [--precisions=float32] [--min_s=8] [--quick]
        [--out=benchmarks/results/learner_speed.json]

One learner step (`Learner.step_function`: V-trace, RMSProp, gradient
clipping, as in training; no weight publication; XLA-compiled for
--xla=true, as `--jit_compile` does in training; in bfloat16 mixed
precision for --precisions=bfloat16, as `--precision` does), on a fixed
random batch
[B, T+1, ...], repeated for at least --min_s seconds (and 3 steps) after 2
warm-up steps (tracing excluded). Agents:

  * shallow: the Atari agent (shallow torso, feed-forward), frames uint8
    [84, 84, 4], 6 actions (Pong);
  * deep: the DMLab agent (deep ResNet torso, LSTM 256), frames uint8
    [72, 96, 3], 9 actions.

Each (agent, T, intra-op threads) runs in a fresh process (TF's thread
counts are fixed at start-up; inter-op threads = intra-op threads). It
reports wall and CPU ms per step and the frames per second one learner
could absorb at that speed (B x T x 4 action repeats per step). No server
is started; the run is still put in a private network namespace like the
other benchmarks.
"""

import argparse
import os
import time

from benchmarks import _common

PRESETS = {
    "shallow": dict(torso="shallow", use_lstm=False, frame=(84, 84, 4),
                    num_actions=6),
    "deep": dict(torso="deep", use_lstm=True, frame=(72, 96, 3),
                 num_actions=9),
}


def _measure(agent_name, unroll, threads, batch_size, min_s, xla,
             precision, out):
    """Worker process: builds a learner, times train_step, puts a dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from impala_tf.runtime import precision as precision_lib  # pylint: disable=g-import-not-at-top
    precision_lib.apply(precision)
    from impala_tf import agents  # pylint: disable=g-import-not-at-top
    from impala_tf.algorithm import learner as learner_lib  # pylint: disable=g-import-not-at-top
    from impala_tf import types  # pylint: disable=g-import-not-at-top
    p = PRESETS[agent_name]
    agent = agents.AgentConfig(p["torso"], p["num_actions"], p["use_lstm"],
                               False).build()
    obs_spec = {"frame": tf.TensorSpec(p["frame"], tf.uint8)}
    spec = types.trajectory_spec(p["num_actions"], obs_spec, unroll,
                                 agent.state_spec(None))
    config = learner_lib.LearnerConfig(
        batch_size=batch_size, unroll_length=unroll, num_action_repeats=4,
        total_environment_frames=10 ** 12, learning_rate=6e-4, decay=0.99,
        momentum=0.0, epsilon=0.01, entropy_cost=0.01, baseline_cost=0.5,
        discounting=0.99, reward_clipping="abs_one", max_grad_norm=40.0)
    learner = learner_lib.Learner(agent, config)
    learner.build(tf.nest.map_structure(
        lambda s: tf.TensorSpec([batch_size] + s.shape.as_list(), s.dtype),
        spec))
    batch = _common.synthetic_batch(spec, batch_size, p["num_actions"])
    step = learner.step_function(xla)
    t0 = time.perf_counter()
    for _ in range(2):
        step(batch)["num_steps"].numpy()
    first_s = time.perf_counter() - t0
    steps, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while steps < 3 or time.perf_counter() - wall0 < min_s:
        step(batch)["num_steps"].numpy()
        steps += 1
    wall = (time.perf_counter() - wall0) / steps
    cpu = (time.process_time() - cpu0) / steps
    out.put({"agent": agent_name, "unroll": unroll, "threads": threads,
             "xla": xla, "precision": precision,
             "batch_size": batch_size, "steps": steps,
             "ms_per_step": 1e3 * wall, "cpu_ms_per_step": 1e3 * cpu,
             "frames_per_s": batch_size * unroll * 4 / wall,
             "trace_and_warmup_s": first_s})


def run(agent_name, unroll, threads, batch_size, min_s, xla=False,
        precision="float32"):
    return _common.run_in_process(
        _measure, (agent_name, unroll, threads, batch_size, min_s, xla,
                   precision))


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learner_speed",
                                     description=__doc__)
    parser.add_argument("--agents", default="shallow,deep")
    parser.add_argument("--unrolls", default="20,100")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--xla", default="false",
                        help="comma list of false,true: the step compiled "
                        "by XLA (--jit_compile) or not")
    parser.add_argument("--precisions", default="float32",
                        help="comma list of float32,bfloat16 (bfloat16: "
                        "mixed precision, impala_tf.runtime.precision)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--min_s", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true",
                        help="shallow only, T=20, 3 s per measurement")
    parser.add_argument("--out",
                        default="benchmarks/results/learner_speed.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.unrolls, args.min_s = "shallow", "20", 3.0
    rows = []
    for agent_name in args.agents.split(","):
        for unroll in (int(t) for t in args.unrolls.split(",")):
            for threads in (int(t) for t in args.threads.split(",")):
                for xla in (x.strip().lower() == "true"
                            for x in args.xla.split(",")):
                    for prec in args.precisions.split(","):
                        row = run(agent_name, unroll, threads,
                                  args.batch_size, args.min_s, xla,
                                  prec.strip())
                        rows.append(row)
                        print(f"[learner_speed] {agent_name} T={unroll} "
                              f"threads={threads} xla={xla} {prec}: "
                              f"{row['ms_per_step']:.0f} ms/step "
                              f"({row['cpu_ms_per_step']:.0f} ms CPU)",
                              flush=True)
    table = _common.format_table(rows, [
        ("agent", "agent", "{}"), ("unroll", "T", "{}"),
        ("batch_size", "B", "{}"), ("threads", "threads", "{}"),
        ("xla", "XLA", "{}"), ("precision", "precision", "{}"),
        ("ms_per_step", "ms/step", "{:.0f}"),
        ("cpu_ms_per_step", "CPU ms/step", "{:.0f}"),
        ("frames_per_s", "frames/s", "{:,.0f}")])
    print(table)
    report = {"benchmark": "learner_speed", "machine": _common.machine(),
              "presets": {k: dict(v, frame=list(v["frame"]))
                          for k, v in PRESETS.items()},
              "results": rows, "table": table.splitlines()}
    print(f"[learner_speed] written to "
          f"{_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    _common.run_main("benchmarks.learner_speed", main)
