r"""Where the CPU time of one agent step goes, actor and learner.

    python -m benchmarks.profile_step [--precisions=float32,bfloat16]
        [--batch_sizes=32,8] [--envs=64] [--unrolls=4] [--rounds=1]
        [--out=benchmarks/results/profile_step.json]

An agent step is one step of one environment (4 frames with the action
repeats). For each precision (`--precision`, interleaved over --rounds) one
actor process and one learner process run as in training (Pong, shallow
agent, unroll 20, shared-memory transport, one TensorFlow thread each) and
the real objects are timed in place:

  * the actor process (`actor.Actor` over `envs.batch.make`'s
    `AtariEnvironmentBatch` of --envs games, a `shared_memory.SlotSender`
    into real `SharedSlots`, weights pulled from real `SharedWeights`)
    alternates instrumented and plain unrolls. In an instrumented unroll
    the methods below are replaced on their instances by timers that
    charge the process CPU time spent inside each call, less the time of
    the timed calls nested in it, to its category:

      emulation      ALE `act` (every raw frame, action repeats and no-op
                     starts included) and `reset_game`
      emulation      `AleGame.act` itself: its action-repeat loop, lives and
      (repeat loop)  game-over checks and the max-pool of the last two frames
      preprocessing  ALE `getScreenGrayscale`, `BatchResizer` (84x84 area
                     resize), `FrameStack.push`/`restart`, the copy of the
                     stacks into the trajectory buffer
      env loop       `AtariBatch.step`'s Python loop over the games and
                     `step_into`'s bookkeeping (rewards, episode tally)
      inference      `FlatPolicy.__call__` (one batched policy step)
      transport      `SlotSender.pull_weights`, the assignment of the
                     pulled weights, `SlotSender.enqueue`
      actor other    the rest of `Actor.unroll` (carrying the last step,
                     writing actions, logits and baselines)

    Each timed call costs the timer itself (two process-CPU clock reads and
    a Python call); it is measured on a no-op in the same process and half
    of it is taken off the category, half off its caller's. The plain
    unrolls (no timers) give the uninstrumented CPU per agent step to check
    the sum against.

  * the learner process publishes the weights (`WeightWriter`, inside the
    step, as in training) and, for each --batch_sizes B, takes batches of B
    from a `SlotReceiver` over the actor's slots and runs the real
    `Learner` step on them: learner-side transport (the producer thread's
    copy out of the slots and DLPack, thread CPU time) and the step
    (process CPU time less the producer's), both divided by B x T.

CPU time, not wall time: the machine may be shared. Results to
`benchmarks/results/profile_step.json`, with the machine record.
"""

import argparse
import multiprocessing
import os
import threading
import time

from benchmarks import _common
from benchmarks._instrument import CATEGORIES
from benchmarks._instrument import TOP
from benchmarks._instrument import Profiler
from benchmarks._instrument import instrument
from benchmarks._instrument import timer_cost

UNROLL = 20


def _config(envs, precision):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from impala_tf import agents  # pylint: disable=g-import-not-at-top
    from impala_tf.envs import registry  # pylint: disable=g-import-not-at-top
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    return actor_lib.ActorConfig(
        registry.parse_level_name("atari/pong"),
        agents.AgentConfig("shallow", 6, False, False),
        {"frame": tf.TensorSpec([84, 84, 4], tf.uint8)}, UNROLL, envs,
        envs, seed=1, vector_env=True, precision=precision)


def _actor_process(envs, precision, unrolls, slots, weights, events, out):
    """An actor as `run_local_actor` builds it; alternates instrumented
    and plain unrolls (after a warm-up), puts a dict on `out`, then acts on
    until the learner has its measurements (`events`: actor done, learner
    done)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_memory  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_weights  # pylint: disable=g-import-not-at-top
    config = _config(envs, precision)
    actor_lib._set_up_process(config)  # pylint: disable=protected-access
    agent = actor_lib.build_agent(config)
    transport = shared_memory.SlotSender(
        slots, shared_weights.WeightReader(weights))
    actor = actor_lib.Actor(config, 0, agent, transport)
    steps = envs * UNROLL
    try:
        for _ in range(2):  # Warm-up: tracing, caches.
            transport.enqueue(actor.unroll())
        profiler = Profiler("actor other")
        plain = []
        for _ in range(unrolls):
            patches = instrument(actor, transport, profiler)
            profiler.start()
            transport.enqueue(actor.unroll())
            profiler.stop()
            patches.undo()
            t0 = time.process_time()
            transport.enqueue(actor.unroll())
            plain.append(time.process_time() - t0)
        overhead = timer_cost(Profiler("actor other"))
        cpu = profiler.corrected(overhead)
        fine = {k: 1e6 * cpu.get(k, 0.0) / (unrolls * steps)
                for k in CATEGORIES}
        result = {
            "fine_us": fine,
            "top_us": {t: sum(v for k, v in fine.items()
                              if CATEGORIES[k] == t) for t in TOP},
            "instrumented_us": 1e6 * sum(profiler.cpu.values())
                               / (unrolls * steps),
            "timer_cost_us_per_call": 1e6 * overhead,
            "timed_calls_per_agent_step": sum(profiler.calls.values())
                                          / (unrolls * steps),
            "plain_us": [1e6 * c / steps for c in plain],
        }
        out.put(("actor", result))
        while not events[1].is_set():  # The learner may need more batches.
            transport.enqueue(actor.unroll())
    except Exception as e:  # pylint: disable=broad-except
        out.put(("actor", {"error": repr(e)}))
    finally:
        events[0].set()
        actor.close()


def _receiver(shared_memory, slots, spec, actor_done):
    """A `SlotReceiver` over `slots` whose batches end once the actor is
    done (its iterator then stops instead of waiting forever)."""
    receiver = shared_memory.SlotReceiver([slots], spec)
    threading.Thread(target=lambda: (actor_done.wait(), receiver.close()),
                     daemon=True).start()
    return receiver


def _learner_process(envs, precision, batch_sizes, steps, slots, weights,
                     events, out):
    """Publishes weights; per batch size, times the learner-side transport
    and the learner step on the actor's batches; then takes the actor's
    batches until it is done (`events`: actor done, learner done)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from impala_tf.runtime import precision as precision_lib  # pylint: disable=g-import-not-at-top
    precision_lib.apply(precision)
    from impala_tf.algorithm import learner as learner_lib  # pylint: disable=g-import-not-at-top
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_memory  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_weights  # pylint: disable=g-import-not-at-top
    config = _config(envs, precision)
    spec = actor_lib.trajectory_spec(config, actor_lib.build_agent(config))
    writer = shared_weights.WeightWriter(weights)
    producer = {"cpu": 0.0}
    real_tensors = shared_memory.tensors

    def timed_tensors(flat):  # The producer thread's DLPack hand-over.
        t0 = time.thread_time()
        try:
            return real_tensors(flat)
        finally:
            producer["cpu"] += time.thread_time() - t0

    shared_memory.tensors = timed_tensors
    rows = []
    try:
        for b in batch_sizes:
            agent = actor_lib.build_agent(config)
            lconfig = learner_lib.LearnerConfig(
                batch_size=b, unroll_length=UNROLL, num_action_repeats=4,
                total_environment_frames=10 ** 12, learning_rate=6e-4,
                decay=0.99, momentum=0.0, epsilon=0.01, entropy_cost=0.01,
                baseline_cost=0.5, discounting=0.99,
                reward_clipping="abs_one", max_grad_norm=40.0)
            learner = learner_lib.Learner(agent, lconfig,
                                          publish=writer.publish)
            learner.build(tf.nest.map_structure(
                lambda s, b=b: tf.TensorSpec([b] + s.shape.as_list(),
                                             s.dtype), spec))
            writer.publish(agent.trainable_variables, 0)
            receiver = _receiver(shared_memory, slots, spec, events[0])
            real_next = receiver.next_batch

            def timed_next(batch_size, real_next=real_next):
                t0 = time.thread_time()
                try:
                    return real_next(batch_size)
                finally:
                    producer["cpu"] += time.thread_time() - t0

            receiver.next_batch = timed_next
            batches = receiver.batches(b, 1)
            step = learner.step_function(False)
            for _ in range(2):  # Tracing and warm-up.
                step(next(batches))["num_steps"].numpy()
            p0, c0, n = producer["cpu"], time.process_time(), 0
            wait = 0.0
            while n < steps * 32 // b:
                w0 = time.thread_time()
                batch = next(batches)
                wait += time.thread_time() - w0
                step(batch)["num_steps"].numpy()
                n += 1
            total = time.process_time() - c0
            moved = producer["cpu"] - p0
            agent_steps = n * b * UNROLL
            rows.append({"batch_size": b, "steps": n,
                         "step_cpu_ms": 1e3 * (total - moved - wait) / n,
                         "learner_us": 1e6 * (total - moved - wait)
                                       / agent_steps,
                         "transport_us": 1e6 * moved / agent_steps})
            receiver.close()
        out.put(("learner", rows))
        events[1].set()
        receiver = _receiver(shared_memory, slots, spec, events[0])
        for _ in receiver.batches(envs, 1):  # Keep the actor's slots free.
            pass
    except Exception as e:  # pylint: disable=broad-except
        out.put(("learner", {"error": repr(e)}))
    finally:
        events[1].set()
        writer.close()


def profile(envs, precision, batch_sizes, unrolls, learner_steps):
    """One actor process and one learner process; returns their dicts."""
    from impala_tf.agents import policy  # pylint: disable=g-import-not-at-top
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_memory  # pylint: disable=g-import-not-at-top
    from impala_tf.transport import shared_weights  # pylint: disable=g-import-not-at-top
    ctx = multiprocessing.get_context("spawn")
    config = _config(envs, "float32")
    agent = actor_lib.build_agent(config)
    slots = shared_memory.SharedSlots(actor_lib.trajectory_spec(config, agent),
                                      envs, 2, ctx)
    weights = shared_weights.SharedWeights(policy.variable_specs(agent), ctx)
    events, out = (ctx.Event(), ctx.Event()), ctx.Queue()
    procs = [
        ctx.Process(target=_learner_process,
                    args=(envs, precision, batch_sizes, learner_steps, slots,
                          weights, events, out)),
        ctx.Process(target=_actor_process,
                    args=(envs, precision, unrolls, slots, weights, events,
                          out))]
    got = dict(_common.gather(procs, out, timeout_s=900))
    for side, result in got.items():
        if isinstance(result, dict) and "error" in result:
            raise RuntimeError(f"the {side} process failed: {result['error']}")
    return got


def summarise(precision, envs, actor, learner):
    """Rows per batch size: CPU us per agent step by top-level category."""
    rows = []
    for lrow in learner:
        row = {"precision": precision, "envs_per_actor": envs,
               "batch_size": lrow["batch_size"]}
        row.update({k: v for k, v in actor["top_us"].items()})
        row["transport"] += lrow["transport_us"]
        row["transport_learner"] = lrow["transport_us"]
        row["learner"] = lrow["learner_us"]
        row["learner_step_cpu_ms"] = lrow["step_cpu_ms"]
        row["total"] = sum(row[t] for t in TOP) + row["learner"]
        row["actor_plain"] = sum(actor["plain_us"]) / len(actor["plain_us"])
        rows.append(row)
    return rows


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_step",
                                     description=__doc__)
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--batch_sizes", default="32,8")
    parser.add_argument("--envs", type=int, default=64,
                        help="environments per actor (the default run's)")
    parser.add_argument("--unrolls", type=int, default=4,
                        help="instrumented unrolls (as many plain ones)")
    parser.add_argument("--learner_steps", type=int, default=6,
                        help="measured learner steps at batch 32 (x 32/B "
                        "at batch B)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/profile_step.json")
    args = parser.parse_args(argv)
    precisions = [p.strip() for p in args.precisions.split(",")]
    bad = [p for p in precisions if p not in ("float32", "bfloat16")]
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        batch_sizes = []
    if bad or args.envs < 1 or args.unrolls < 1 or not batch_sizes or min(
            batch_sizes) < 1:
        print("error: --precisions takes float32,bfloat16; --batch_sizes "
              "positive integers; --envs and --unrolls at least 1")
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raw = []
    rows = []
    for r in range(args.rounds):
        for precision in precisions:
            print(f"[profile_step] round {r + 1}: {precision} ...", flush=True)
            got = profile(args.envs, precision, batch_sizes, args.unrolls,
                          args.learner_steps)
            raw.append({"round": r + 1, "precision": precision, **got})
            rows += summarise(precision, args.envs, got["actor"],
                              got["learner"])
    columns = ([("precision", "precision", "{}"), ("batch_size", "B", "{}")]
               + [(t, t, "{:.0f}") for t in TOP]
               + [("learner", "learner", "{:.0f}"),
                  ("total", "total", "{:.0f}"),
                  ("actor_plain", "actor uninstrumented", "{:.0f}")])
    table = _common.format_table(rows, columns)
    print("CPU us per agent step (4 frames)\n" + table)
    report = {"benchmark": "profile_step", "machine": _common.machine(),
              "unroll_length": UNROLL, "envs_per_actor": args.envs,
              "units": "CPU microseconds per agent step (one environment "
                       "step, 4 frames)",
              "categories": CATEGORIES, "results": rows, "raw": raw,
              "table": table.splitlines()}
    print(f"[profile_step] written to {_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    _common.run_main("benchmarks.profile_step", main)
