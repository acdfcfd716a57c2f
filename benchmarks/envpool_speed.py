r"""EnvPool's Atari against impala_tf's `AtariBatch`, CPU per agent step.

    PYTHONPATH=. /tmp/envpool-venv/bin/python -m benchmarks.envpool_speed
        [--envs=64] [--threads=1,2] [--seconds=5] [--rounds=2]
        [--out=benchmarks/results/envpool_speed.json]

EnvPool is not a dependency of impala_tf: run this with an interpreter
that has it (e.g. a throwaway venv made with --system-site-packages from
the project's, `pip install envpool` in it). Without it the script says so
and exits with status 2.

Both sides play Pong with the same preprocessing (impala_tf's training
settings, `atari57.evaluation.training_env_kwargs`): action repeat 4 with
the max of the last two raw frames, grayscale, 84x84 area resize, a stack
of 4, 1..30 no-op starts, life loss ending an episode, the 108,000-frame
cap (27,000 agent steps), sticky actions off, minimal action set, no fire
reset, rewards unclipped. EnvPool returns stacks [N, 4, 84, 84]; the
"+ copy" variant also transposes them into an [N, 84, 84, 4] buffer, as an
actor's trajectory buffer needs.

Measured, interleaved over --rounds (A, B, A, B): CPU time of this
process (all its threads: EnvPool's workers included) per agent step (4
frames) with uniformly random actions, and agent steps per wall second;
the raw emulator (ALE's own frame skip 4, no preprocessing: the
throughput benchmark's ceiling) as the reference. A check of identical
observations: one game on each side with no no-op start (EnvPool:
noop_max=1) stepped with the same actions; how many pixels of the
stacked observations differ.
"""

import argparse
import os
import sys
import time

from benchmarks import _common


def _cpu_per_call(fn, seconds):
    for _ in range(3):
        fn()
    calls, c0, w0 = 0, time.process_time(), time.perf_counter()
    while time.process_time() - c0 < seconds:
        fn()
        calls += 1
    return ((time.process_time() - c0) / calls,
            (time.perf_counter() - w0) / calls)


def _envpool(envpool, n, threads, noop_max=30, seed=1):
    return envpool.make(
        "Pong-v5", env_type="gymnasium", num_envs=n, batch_size=n,
        num_threads=threads, seed=seed, stack_num=4, frame_skip=4,
        noop_max=noop_max, episodic_life=True, reward_clip=False,
        use_fire_reset=False, img_height=84, img_width=84, gray_scale=True,
        use_inter_area_resize=True, max_episode_steps=27000,
        repeat_action_probability=0.0, full_action_space=False)


def variants(envpool, n, threads, rng):
    """{name: callable() doing one step of all n games}."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    import ale_py  # pylint: disable=g-import-not-at-top
    import ale_py.roms  # pylint: disable=g-import-not-at-top
    from impala_tf.envs import atari_vector  # pylint: disable=g-import-not-at-top
    from impala_tf.envs import registry  # pylint: disable=g-import-not-at-top
    out = {}
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("frame_skip", 4)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(ale_py.roms.get_rom_path("pong")))
    actions = ale.getMinimalActionSet()

    def raw():
        for a in rng.integers(0, len(actions), n):
            ale.act(actions[a])
            if ale.game_over():
                ale.reset_game()

    out["raw ALE, frame skip 4 (ceiling)"] = raw
    batch = atari_vector.make_batch(registry.parse_level_name("atari/pong"),
                                    [0] * n, range(n))
    buf = np.zeros((n, 84, 84, 4), np.uint8)
    batch.reset(out=buf)
    out["AtariBatch (impala_tf)"] = lambda: batch.step(
        rng.integers(0, 6, n), out=buf)
    for t in threads:
        env = _envpool(envpool, n, t)
        env.reset()
        num_actions = env.action_space.n

        def step(env=env, num_actions=num_actions):
            return env.step(rng.integers(0, num_actions, n))

        def step_copy(step=step):
            obs = step()[0]
            np.copyto(buf, obs.transpose(0, 2, 3, 1))

        out[f"EnvPool, {t} thread(s)"] = step
        out[f"EnvPool, {t} thread(s) + copy"] = step_copy
    return out


def same_observations(envpool, steps=300):
    """One game each side, no no-op start, the same actions: the fraction
    of stacked-observation pixels that differ and the largest difference."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    from impala_tf.envs import atari_vector  # pylint: disable=g-import-not-at-top
    mine = atari_vector.AtariBatch(["pong"], [0], noop_max=0)
    theirs = _envpool(envpool, 1, 1, noop_max=1, seed=0)
    a = mine.reset()
    b = theirs.reset()[0].transpose(0, 2, 3, 1)
    rng = np.random.default_rng(0)
    differ, total, worst, ended = 0, 0, 0, None
    for t in range(steps):
        d = np.abs(a.astype(int) - b.astype(int))
        differ += int((d > 0).sum())
        total += d.size
        worst = max(worst, int(d.max()))
        act = rng.integers(0, 6, 1)
        a, _, done, _ = mine.step(act)
        obs, _, term, trunc, _ = theirs.step(act)
        b = obs.transpose(0, 2, 3, 1)
        if done[0] or term[0] or trunc[0]:
            ended = t
            break
    return {"steps": steps if ended is None else ended + 1,
            "pixels_differing": differ / total, "max_difference": worst,
            "num_actions": [mine.num_actions[0],
                            int(theirs.action_space.n)]}


def main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.envpool_speed", description=__doc__)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out",
                        default="benchmarks/results/envpool_speed.json")
    args = parser.parse_args(argv)
    try:
        import envpool  # pylint: disable=g-import-not-at-top
    except ImportError:
        print(f"error: envpool is not importable from {sys.executable}; "
              "run this with an interpreter that has it")
        return 2
    import numpy as np  # pylint: disable=g-import-not-at-top
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)
    fns = variants(envpool, args.envs, threads, rng)
    runs = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            cpu, wall = _cpu_per_call(fn, args.seconds)
            runs[name].append((1e6 * cpu / args.envs,
                               args.envs / wall))
    rows = [{"env": name, "n": args.envs,
             "us_per_step": min(c for c, _ in got),
             "us_per_step_runs": [c for c, _ in got],
             "steps_per_s": max(s for _, s in got)}
            for name, got in runs.items()]
    ours = runs["AtariBatch (impala_tf)"]
    for row in rows:
        row["vs_atari_batch"] = row["us_per_step"] / min(c for c, _ in ours)
    check = same_observations(envpool)
    table = _common.format_table(rows, [
        ("env", "environment", "{}"), ("n", "N", "{}"),
        ("us_per_step", "CPU us/agent step", "{:.0f}"),
        ("vs_atari_batch", "/AtariBatch", "{:.2f}"),
        ("steps_per_s", "agent steps/s", "{:,.0f}")])
    print(table)
    print(f"same actions, no no-op start: {check}")
    report = {"benchmark": "envpool_speed", "machine": _common.machine(),
              "envpool": envpool.__version__,
              "python": sys.version.split()[0],
              "installed_with": "pip install envpool (a cp311 manylinux "
                                "wheel) into a venv made with "
                                "--system-site-packages from the project's",
              "rounds": args.rounds, "seconds": args.seconds,
              "results": rows, "same_observations": check,
              "table": table.splitlines()}
    print(f"[envpool_speed] written to {_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _common.exit_on_sigterm()
    sys.exit(main(sys.argv[1:]))
