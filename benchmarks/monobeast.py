r"""TorchBeast's MonoBeast and impala_tf trained side by side on Pong.

    python -m benchmarks.monobeast --torchbeast=DIR --python=PYTHON
        [--rounds=2] [--warmup_s=30] [--measure_s=60] [--configs=2:64:1]
        [--monobeast_flags="--num_actors=4 ..."]
        [--out=benchmarks/results/monobeast_side_by_side.json]
        [-- extra impala_tf experiment flags]

Nothing of TorchBeast is in this repository: DIR is a checkout of
facebookresearch/torchbeast and PYTHON an interpreter with torch (CPU),
gymnasium, ale-py and opencv-python-headless. MonoBeast's
`atari_wrappers` speak the old gym API (reset() -> observation, step() ->
4 values, `np_random.randint`); this script writes a small `gym` module of
its own over gymnasium and ale-py into a temporary folder put first on
MonoBeast's PYTHONPATH (`GYM_SHIM` below), so MonoBeast runs unmodified on
`PongNoFrameskip-v4` (no frame skip in ALE, MonoBeast's NoopReset,
MaxAndSkip 4, EpisodicLife, FireReset, WarpFrame 84x84, FrameStack 4;
sticky actions off, as impala_tf's Pong).

Each round trains MonoBeast (its defaults unless --monobeast_flags: 4
actors, batch 8, unroll 80, 2 learner threads, the shallow model, CPU)
and then each impala_tf config of `benchmarks.throughput` (ACTORS:ENVS:
VECTOR), alternately, and the raw-emulator ceiling before each. For each
run: frames/s over --measure_s seconds after the first report plus
--warmup_s (MonoBeast: its "Steps N" log lines; an agent step is 4
frames), and the CPU seconds its whole process tree used in that window,
so frames per CPU-second, which other load on the machine does not lower.
"""

import argparse
import datetime
import os
import re
import signal
import subprocess
import tempfile
import time

from benchmarks import _common
from benchmarks import throughput

GYM_SHIM = '''"""gym's old API over gymnasium + ale-py (for MonoBeast's wrappers)."""
import os
import ale_py
import gymnasium
import numpy as np
from gymnasium import spaces  # noqa: F401

gymnasium.register_envs(ale_py)


class Wrapper:
    def __init__(self, env):
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def step(self, action):
        return self.env.step(action)

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def close(self):
        return self.env.close()

    @property
    def unwrapped(self):
        return self.env.unwrapped

    @property
    def spec(self):
        return self.env.spec

    def __getattr__(self, name):
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


class ObservationWrapper(Wrapper):
    def reset(self, **kwargs):
        return self.observation(self.env.reset(**kwargs))

    def step(self, action):
        obs, reward, done, info = self.env.step(action)
        return self.observation(obs), reward, done, info


class RewardWrapper(Wrapper):
    def step(self, action):
        obs, reward, done, info = self.env.step(action)
        return obs, self.reward(reward), done, info


class _Unwrapped:
    def __init__(self, env, seed):
        self._env = env
        self.np_random = np.random.RandomState(seed)

    def __getattr__(self, name):
        return getattr(self._env, name)


class _Legacy:
    def __init__(self, env, seed):
        self._env, self._seed = env, seed
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.spec = env.spec
        self.unwrapped = _Unwrapped(env.unwrapped, seed)

    def seed(self, seed):
        self._seed = int(seed)
        self.unwrapped.np_random = np.random.RandomState(self._seed)

    def reset(self, **kwargs):
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs, reward, terminated or truncated, info

    def close(self):
        self._env.close()


_made = [0]


def make(env_id):
    _made[0] += 1
    return _Legacy(gymnasium.make(env_id), os.getpid() * 100 + _made[0])
'''

_STEPS = re.compile(r"^\[INFO:\d+ monobeast:\d+ (\S+ \S+)\] Steps (\d+) @")


def _monobeast_reports(log_path):
    """[(unix time, agent steps)] from MonoBeast's "Steps N @" lines."""
    out = []
    with open(log_path, errors="replace") as f:
        for line in f:
            m = _STEPS.match(line)
            if m:
                t = datetime.datetime.strptime(m.group(1),
                                               "%Y-%m-%d %H:%M:%S,%f")
                out.append((t.timestamp(), int(m.group(2))))
    return out


def train_monobeast(args, shim_dir, workdir, index):
    """One MonoBeast run; frames/s and CPU over the measurement window."""
    log_path = os.path.join(workdir, f"monobeast_{index}.log")
    cmd = ([args.python, "-m", "torchbeast.monobeast",
            "--env=PongNoFrameskip-v4", "--disable_cuda",
            f"--savedir={workdir}", f"--xpid=mb{index}",
            "--total_steps=1000000000"] + args.monobeast_flags.split())
    env = dict(os.environ, PYTHONPATH=f"{shim_dir}:{args.torchbeast}",
               OMP_NUM_THREADS="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=args.torchbeast, stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + args.startup_timeout_s
        while not [r for r in _monobeast_reports(log_path) if r[1] > 0]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MonoBeast did not start; see {log_path}")
            time.sleep(0.5)
        time.sleep(args.warmup_s)
        first = _monobeast_reports(log_path)[-1]
        cpu0 = _common.tree_cpu_s(proc.pid)
        busy0 = _common.testing.machine_jiffies()
        time.sleep(args.measure_s)
        cpu1 = _common.tree_cpu_s(proc.pid)
        busy1 = _common.testing.machine_jiffies()
        last = _monobeast_reports(log_path)[-1]
        if proc.poll() is not None or last[0] <= first[0]:
            raise RuntimeError(f"MonoBeast stopped reporting; see {log_path}")
        wall = args.measure_s
        frames_per_s = 4 * (last[1] - first[1]) / (last[0] - first[0])
        cpu = (cpu1 - cpu0) / wall
        machine = ((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
                   * (os.cpu_count() or 1))
        return {"system": "MonoBeast", "config": args.monobeast_flags
                or "defaults", "fps": frames_per_s, "cpu_total": cpu,
                "cpu_others": max(0.0, machine - cpu),
                "measured_s": last[0] - first[0]}
    finally:
        _stop_group(proc)


def _stop_group(proc):
    """Stops MonoBeast (SIGINT, its own way out), then kills what is left
    of its process group; a second SIGTERM or Ctrl-C meanwhile waits until
    this is done."""
    blocked = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def main(argv):
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monobeast",
                                     description=__doc__)
    parser.add_argument("--torchbeast", required=True,
                        help="a checkout of facebookresearch/torchbeast")
    parser.add_argument("--python", required=True,
                        help="an interpreter with torch, gymnasium, ale-py "
                        "and opencv-python-headless")
    parser.add_argument("--monobeast_flags", default="",
                        help="MonoBeast flags (default: its defaults)")
    parser.add_argument("--configs", default="2:64:1",
                        help="impala_tf configs ACTORS:ENVS:VECTOR, as "
                        "benchmarks.throughput")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup_s", type=float, default=30.0)
    parser.add_argument("--measure_s", type=float, default=60.0)
    parser.add_argument("--ceiling_s", type=float, default=10.0)
    parser.add_argument("--startup_timeout_s", type=float, default=300.0)
    parser.add_argument("--out", default="benchmarks/results/"
                        "monobeast_side_by_side.json")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.torchbeast, "torchbeast",
                                       "monobeast.py")):
        print(f"error: --torchbeast: {args.torchbeast} has no "
              "torchbeast/monobeast.py")
        return 2
    if not os.access(args.python, os.X_OK):
        print(f"error: --python: {args.python} is not an interpreter")
        return 2
    configs = [throughput._parse_config(c, parser)  # pylint: disable=protected-access
               for c in args.configs.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="impala_monobeast_") as work:
        shim = os.path.join(work, "shim", "gym")
        os.makedirs(shim)
        with open(os.path.join(shim, "__init__.py"), "w") as f:
            f.write(GYM_SHIM)
        index = 0
        for r in range(args.rounds):
            runs = [None] + configs
            for config in runs:
                index += 1
                ceiling, per_cpu = _common.raw_emulator_ceiling(
                    os.cpu_count() or 1, args.ceiling_s, per_cpu_second=True)
                label = "MonoBeast" if config is None else f"impala_tf {config}"
                print(f"[monobeast] round {r + 1}: {label} (ceiling "
                      f"{ceiling:,.0f} frames/s) ...", flush=True)
                if config is None:
                    row = train_monobeast(args, os.path.dirname(shim), work,
                                          index)
                else:
                    row = {"system": "impala_tf",
                           "config": ":".join(map(str, config))
                                     + (" " + " ".join(extra) if extra
                                        else "")}
                    row.update(throughput.train(config, args, extra, work,
                                                index))
                row.update(round=r + 1, ceiling_fps=ceiling,
                           ceiling_frames_per_cpu_s=per_cpu,
                           frames_per_cpu_s=row["fps"]
                           / max(row["cpu_total"], 1e-9))
                row["cpu_s_per_frame"] = 1.0 / max(row["frames_per_cpu_s"],
                                                   1e-9)
                row["ratio_to_ceiling"] = row["fps"] / ceiling
                rows.append(row)
                print(f"[monobeast]   {row['fps']:,.0f} frames/s, "
                      f"{1e6 * row['cpu_s_per_frame']:.0f} CPU us/frame",
                      flush=True)
    table = _common.format_table(rows, [
        ("round", "round", "{}"), ("system", "system", "{}"),
        ("config", "config", "{}"), ("fps", "frames/s", "{:,.0f}"),
        ("cpu_total", "CPU (cores)", "{:.2f}"),
        ("cpu_s_per_frame", "CPU s/frame", "{:.2e}"),
        ("ceiling_fps", "ceiling", "{:,.0f}"),
        ("ratio_to_ceiling", "/ceiling", "{:.2f}"),
        ("cpu_others", "CPU others", "{:.2f}")])
    print(table)
    report = {"benchmark": "monobeast_side_by_side",
              "machine": _common.machine(),
              "monobeast_command": "python -m torchbeast.monobeast "
                                   "--env=PongNoFrameskip-v4 --disable_cuda "
                                   + args.monobeast_flags,
              "frames": "4 per agent step (action repeat 4) for both",
              "warmup_s": args.warmup_s, "measure_s": args.measure_s,
              "results": rows, "table": table.splitlines()}
    print(f"[monobeast] written to {_common.write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    _common.run_main("benchmarks.monobeast", main)
