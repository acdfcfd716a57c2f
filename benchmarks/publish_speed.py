r"""The weight publication's cost: shared memory against the gRPC server.

    python -m benchmarks.publish_speed [--agents=shallow] [--rounds=2]
        [--min_s=6] [--batch_size=32] [--unroll=20]
        [--out=benchmarks/results/publish_speed.json]

For each agent (presets of `benchmarks.learner_speed`: shallow, the Atari
agent; deep, the DMLab one) and each way a learner publishes its weights:

  * none: no publication;
  * shm: `transport.shared_weights.WeightWriter` (a `tf.numpy_function`
    copying the weights into `SharedWeights`; what local actors read, no
    server);
  * grpc: `transport.grpc.LearnerServer` (assignments to resource variables
    a TF server serves to remote actors),

it measures, in a fresh process (one learner thread, as on 2 CPUs with 2
local actors): the publication alone in a `tf.function` (median ms); one
whole learner step with it (`Learner.step_function`, B x T, no XLA: mean
ms); and what an actor's pull of the weights costs (median ms:
`WeightReader.pull_weights` / a same-process `grpc.ActorClient`). Modes
alternate over --rounds (none, shm, grpc, then backwards) so that a change
in the machine's load hits all of them. Runs in a private network namespace
(the grpc mode starts a server).
"""

import argparse
import os
import statistics
import time

from benchmarks import _common
from benchmarks import learner_speed

MODES = ("none", "shm", "grpc")


def _median_ms(fn, min_s, at_least=20):
    fn()
    times, t_end = [], time.perf_counter() + min_s
    while len(times) < at_least or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _measure(agent_name, mode, batch_size, unroll, min_s, out):
    """Worker process: one mode; puts a dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # pylint: disable=g-import-not-at-top
    from impala_tf import agents
    from impala_tf import config as config_lib
    from impala_tf.algorithm import learner as learner_lib
    from impala_tf.agents import policy
    from impala_tf import types
    from impala_tf.transport import grpc
    from impala_tf.transport import shared_weights
    # pylint: enable=g-import-not-at-top
    p = learner_speed.PRESETS[agent_name]
    address = f"localhost:{grpc.pick_free_port()}"
    if mode == "grpc":  # Before any variable, as the trainer does.
        grpc.start_learner_server(address)
    obs_spec = {"frame": tf.TensorSpec(p["frame"], tf.uint8)}
    agent = policy.create_variables(
        agents.AgentConfig(p["torso"], p["num_actions"], p["use_lstm"],
                           False).build(), obs_spec)
    spec = types.trajectory_spec(p["num_actions"], obs_spec, unroll,
                                 agent.state_spec(None))
    var_specs = policy.variable_specs(agent)
    publisher = pull = None
    if mode == "shm":
        weights = shared_weights.SharedWeights(var_specs)
        publisher = shared_weights.WeightWriter(weights)
        pull = shared_weights.WeightReader(weights).pull_weights
    elif mode == "grpc":
        publisher = grpc.LearnerServer(spec, var_specs, batch_size)
    config = config_lib.LearnerConfig(
        batch_size=batch_size, unroll_length=unroll, num_action_repeats=4,
        total_environment_frames=10 ** 12, learning_rate=6e-4,
        epsilon=0.01, entropy_cost=0.01, reward_clipping="abs_one",
        max_grad_norm=40.0)
    learner = learner_lib.Learner(
        agent, config,
        publish=publisher.publish if publisher is not None else None)
    learner.build(types.batch_spec(spec, batch_size))
    row = {"agent": agent_name, "mode": mode,
           "weight_mb": sum(int(np.prod(v.shape)) * v.dtype.size
                            for v in agent.trainable_variables) / 2 ** 20,
           "publish_ms": None, "pull_ms": None}
    if publisher is not None:
        publish_only = tf.function(lambda: publisher.publish(
            agent.trainable_variables, learner.num_steps))
        row["publish_ms"] = _median_ms(publish_only, min_s / 3)
        if mode == "grpc":
            publish_only()
            client = grpc.ActorClient(address, spec, var_specs, batch_size,
                                      connect_timeout_s=60)
            pull = client.pull_weights
        row["pull_ms"] = _median_ms(pull, min_s / 3)
    batch = _common.synthetic_batch(spec, batch_size, p["num_actions"])
    step = learner.step_function(False)
    for _ in range(2):
        step(batch)["num_steps"].numpy()
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < min_s:
        step(batch)["num_steps"].numpy()
        steps += 1
    row["step_ms"] = 1e3 * (time.perf_counter() - t0) / steps
    row["steps"] = steps
    out.put(row)


def run(agent_name, mode, batch_size, unroll, min_s):
    return _common.run_in_process(
        _measure, (agent_name, mode, batch_size, unroll, min_s))


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_speed",
                                     description=__doc__)
    parser.add_argument("--agents", default="shallow")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min_s", type=float, default=6.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--unroll", type=int, default=20)
    parser.add_argument("--out",
                        default="benchmarks/results/publish_speed.json")
    args = parser.parse_args(argv)
    rows = []
    for agent_name in args.agents.split(","):
        for r in range(args.rounds):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                row = run(agent_name, mode, args.batch_size, args.unroll,
                          args.min_s)
                row["round"] = r
                rows.append(row)
                print(f"[publish_speed] {agent_name} {mode} round {r}: step "
                      f"{row['step_ms']:.1f} ms, publish "
                      f"{row['publish_ms']} ms, pull {row['pull_ms']} ms",
                      flush=True)
    summary = []
    for agent_name in args.agents.split(","):
        for mode in MODES:
            mine = [r for r in rows
                    if r["agent"] == agent_name and r["mode"] == mode]
            mean = lambda k, m=mine: (None if m[0][k] is None else
                                      statistics.mean(r[k] for r in m))
            summary.append({"agent": agent_name, "mode": mode,
                            "weight_mb": mine[0]["weight_mb"],
                            "step_ms": mean("step_ms"),
                            "publish_ms": mean("publish_ms"),
                            "pull_ms": mean("pull_ms")})
    table = _common.format_table(summary, [
        ("agent", "agent", "{}"), ("mode", "publication", "{}"),
        ("weight_mb", "weights MB", "{:.2f}"),
        ("step_ms", "learner step ms", "{:.1f}"),
        ("publish_ms", "publish ms", "{:.2f}"),
        ("pull_ms", "actor pull ms", "{:.2f}")])
    print(table)
    report = {"benchmark": "publish_speed", "machine": _common.machine(),
              "batch_size": args.batch_size, "unroll": args.unroll,
              "results": rows, "summary": summary,
              "table": table.splitlines()}
    print(f"[publish_speed] written to "
          f"{_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    _common.run_main("benchmarks.publish_speed", main)
