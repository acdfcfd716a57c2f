r"""Actor-only speed: environments, inference, unrolls and the transport.

    python -m benchmarks.actor_speed [--parts=env,inference,unroll,transport]
        [--envs=32] [--seconds=2] [--quick]
        [--out=benchmarks/results/actor_speed.json]

All in CPU time per unit of work (robust to other load on the machine),
with TensorFlow on one intra-op and one inter-op thread, as in an actor
process. Each measurement is repeated 3 times (interleaved) and the minimum
kept.

  env        microseconds per agent step (4 frames) of Pong with random
             actions: raw ALE (frame skip 4 inside ALE, no preprocessing: the
             ceiling's work), N `AtariEnvironment`s stepped in a loop (the
             default for other suites), and one `AtariBatch` of N games
             (`--vector_env`).
  inference  ms per batched policy call (`policy.FlatPolicy`, shallow
             feed-forward agent) and microseconds per observation, for
             batches 1..64.
  unroll     `Actor.unroll()` with no transport: agent steps/s and CPU
             microseconds per agent step, for 1, 16 and 32 environments per
             actor, with and without `--vector_env`.
  transport  one actor process enqueuing unrolls (T=20, 32 per call, Atari
             frames; a weight pull per call) into a learner process that
             takes batches of 32, through `transport.grpc` (TF gRPC queue,
             tf.data) and through `transport.shared_memory`:
             CPU microseconds per trajectory on each side. Runs in a private
             network namespace.
"""

import argparse
import multiprocessing
import os
import time

from benchmarks import _common

UNROLL = 20


def _cpu_per_call(fn, seconds, reps=3):
    """Min over `reps` of CPU seconds per call of fn() (after 3 warm-ups)."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(reps):
        calls, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            fn()
            calls += 1
        best = min(best, (time.process_time() - start) / calls)
    return best


def _level_set():
    from impala_tf.envs import registry  # pylint: disable=g-import-not-at-top
    return registry.parse_level_name("atari/pong")


def part_env(n, seconds):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import ale_py  # pylint: disable=g-import-not-at-top
    import ale_py.roms  # pylint: disable=g-import-not-at-top
    from impala_tf.envs import atari_vector  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(0)
    level_set = _level_set()
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("frame_skip", 4)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(ale_py.roms.get_rom_path("pong")))
    actions = ale.getMinimalActionSet()

    def raw():
        ale.act(actions[rng.integers(6)])
        if ale.game_over():
            ale.reset_game()

    envs = [level_set.make(0, seed=i) for i in range(n)]
    for env in envs:
        env.reset()

    def loop():
        for env, a in zip(envs, rng.integers(0, 6, n)):
            if env.step(int(a)).last():
                env.reset()

    batch = atari_vector.make_batch(level_set, [0] * n, range(n))
    batch.reset()
    out = np.zeros((n, 84, 84, 4), np.uint8)
    rows = [
        {"env": "raw ALE, frame skip 4 (ceiling)", "n": 1,
         "us_per_step": 1e6 * _cpu_per_call(raw, seconds)},
        {"env": "AtariEnvironment in a loop", "n": n,
         "us_per_step": 1e6 * _cpu_per_call(loop, seconds) / n},
        {"env": "AtariBatch", "n": n,
         "us_per_step": 1e6 * _cpu_per_call(
             lambda: batch.step(rng.integers(0, 6, n), out), seconds) / n}]
    return rows


def part_inference(seconds):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from impala_tf import agents  # pylint: disable=g-import-not-at-top
    from impala_tf.agents import policy as policy_lib  # pylint: disable=g-import-not-at-top
    agent = agents.AgentConfig("shallow", 6, False, False).build()
    obs_spec = {"frame": tf.TensorSpec([84, 84, 4], tf.uint8)}
    rows = []
    for n in (1, 8, 16, 32, 64):
        policy = policy_lib.FlatPolicy(agent, obs_spec, n)
        frames = np.random.default_rng(0).integers(
            0, 256, (n, 84, 84, 4), np.uint8)
        args = (np.zeros(n, np.int32), np.zeros(n, np.float32),
                np.zeros(n, bool), {"frame": frames}, ())
        cpu = _cpu_per_call(lambda: policy(*args), seconds)
        rows.append({"batch": n, "ms_per_call": 1e3 * cpu,
                     "us_per_observation": 1e6 * cpu / n})
    return rows


def part_unroll(seconds):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    from impala_tf import agents  # pylint: disable=g-import-not-at-top
    from impala_tf import testing  # pylint: disable=g-import-not-at-top
    level_set = _level_set()
    rows = []
    for n, vector in ((1, False), (16, False), (16, True), (32, False),
                      (32, True)):
        config = actor_lib.ActorConfig(
            level_set, agents.AgentConfig("shallow", 6, False, False),
            {"frame": tf.TensorSpec([84, 84, 4], tf.uint8)}, UNROLL, n, n,
            seed=1, vector_env=vector)
        agent = actor_lib.build_agent(config)
        actor = actor_lib.Actor(config, 0, agent, testing.NullTransport(
            [v.numpy() for v in agent.trainable_variables]))
        cpu = _cpu_per_call(actor.unroll, seconds, reps=2)
        wall0, calls = time.perf_counter(), 0
        while time.perf_counter() - wall0 < seconds:
            actor.unroll()
            calls += 1
        wall = (time.perf_counter() - wall0) / calls
        actor.close()
        rows.append({"envs_per_actor": n, "vector_env": vector,
                     "steps_per_s": n * UNROLL / wall,
                     "us_per_step": 1e6 * cpu / (n * UNROLL)})
    return rows


def _spec_and_agent():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from impala_tf import agents  # pylint: disable=g-import-not-at-top
    from impala_tf.agents import policy  # pylint: disable=g-import-not-at-top
    from impala_tf import types  # pylint: disable=g-import-not-at-top
    obs = {"frame": tf.TensorSpec([84, 84, 4], tf.uint8)}
    agent = policy.create_variables(
        agents.AgentConfig("shallow", 6, False, False).build(), obs)
    return (types.trajectory_spec(6, obs, UNROLL, agent.state_spec(None)),
            agent)


def _transport_learner(port, seconds, out, slots=None):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from impala_tf.agents import policy  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import grpc  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_memory  # pylint: disable=g-import-not-at-top
    grpc.start_learner_server(f"localhost:{port}")
    spec, agent = _spec_and_agent()
    server = grpc.LearnerServer(spec, policy.variable_specs(agent), 32)
    server.publish(agent.trainable_variables, 0)
    # As the trainer: the same kind of batch source either way.
    if slots is None:
        iterator = server.batches(32, 1)
    else:
        iterator = shared_memory.SlotReceiver([slots], spec).batches(32, 1)
    take = lambda it: next(it).level_id[0]  # pylint: disable=unnecessary-lambda-assignment

    take(iterator)
    batches, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        take(iterator).numpy()
        batches += 1
    out.put(("learner", 32 * batches / (time.perf_counter() - wall0),
             (time.process_time() - cpu0) / (32 * batches)))
    server.close()


def _transport_actor(port, out, slots=None):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from impala_tf.agents import policy  # pylint: disable=g-import-not-at-top
    from impala_tf import types  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import grpc  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_memory  # pylint: disable=g-import-not-at-top
    spec, agent = _spec_and_agent()
    client = grpc.ActorClient(f"localhost:{port}", spec,
                              policy.variable_specs(agent), 32)
    if slots is not None:
        client = shared_memory.SlotSender(slots, client)
    buffers = types.zero_trajectories(spec, 32)
    frames = buffers.env_outputs.observation["frame"]
    frames[:] = np.random.default_rng(0).integers(0, 256, frames.shape,
                                                  np.uint8)
    calls, cpu0 = 0, time.process_time()
    try:
        while True:
            client.pull_weights()
            client.enqueue(buffers)
            calls += 1
    except tf.errors.OpError:
        pass  # The learner closed the queue.
    out.put(("actor", None, (time.process_time() - cpu0) / (32 * calls)))


def part_transport(seconds):
    from impala_tf.transport import grpc  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_memory  # pylint: disable=g-import-not-at-top
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for kind in ("grpc", "shared memory"):
        port = grpc.pick_free_port()
        slots = None
        if kind == "shared memory":  # One slot of 32, as 2 actors x 64 have.
            slots = shared_memory.SharedSlots(_spec_and_agent()[0], 32, 1,
                                              ctx)
        out = ctx.Queue()
        procs = [ctx.Process(target=_transport_learner,
                             args=(port, 4 * seconds, out, slots)),
                 ctx.Process(target=_transport_actor, args=(port, out, slots))]
        got = {side: (rate, cpu) for side, rate, cpu
               in _common.gather(procs, out, timeout_s=300)}
        rate = got["learner"][0]
        rows += [{"transport": kind, "side": side,
                  "trajectories_per_s": rate,
                  "us_per_trajectory": 1e6 * cpu,
                  "us_per_agent_step": 1e6 * cpu / UNROLL}
                 for side, (_, cpu) in sorted(got.items())]
    return rows


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.actor_speed",
                                     description=__doc__)
    parser.add_argument("--parts", default="env,inference,unroll,transport")
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true",
                        help="0.5 s per measurement")
    parser.add_argument("--out", default="benchmarks/results/actor_speed.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 0.5
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    report = {"benchmark": "actor_speed", "machine": _common.machine(),
              "unroll_length": UNROLL}
    tables = {
        "env": (lambda: part_env(args.envs, args.seconds),
                [("env", "environment", "{}"), ("n", "N", "{}"),
                 ("us_per_step", "CPU us/agent step", "{:.0f}")]),
        "inference": (lambda: part_inference(args.seconds),
                      [("batch", "batch", "{}"),
                       ("ms_per_call", "CPU ms/call", "{:.2f}"),
                       ("us_per_observation", "CPU us/observation",
                        "{:.0f}")]),
        "unroll": (lambda: part_unroll(args.seconds),
                   [("envs_per_actor", "envs/actor", "{}"),
                    ("vector_env", "vector env", "{}"),
                    ("steps_per_s", "agent steps/s", "{:,.0f}"),
                    ("us_per_step", "CPU us/agent step", "{:.0f}")]),
        "transport": (lambda: part_transport(max(args.seconds, 2.0)),
                      [("transport", "transport", "{}"),
                       ("side", "side", "{}"),
                       ("trajectories_per_s", "trajectories/s", "{:,.0f}"),
                       ("us_per_trajectory", "CPU us/trajectory", "{:.0f}"),
                       ("us_per_agent_step", "CPU us/agent step",
                        "{:.0f}")]),
    }
    for part in args.parts.split(","):
        fn, columns = tables[part]
        rows = fn()
        table = _common.format_table(rows, columns)
        print(f"== {part}\n{table}", flush=True)
        report[part] = {"results": rows, "table": table.splitlines()}
    print(f"[actor_speed] written to {_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    _common.run_main("benchmarks.actor_speed", main)
