"""Shared pieces of the speed benchmarks (throughput, learner, actor).

* `ensure_private_network(module)`: re-runs the benchmark inside a private
  network namespace (`unshare -n`, loopback only) unless it already is in
  one: TF's gRPC servers listen on every interface.
* `raw_emulator_ceiling(processes, seconds)`: the machine's ceiling, P
  processes stepping raw ALE Pong (ALE's own frame skip 4, random actions,
  no preprocessing), in frames/s summed over the processes.
* `ProcessCpu`: CPU seconds of a process tree between two instants;
  `tree_cpu_s(root)`; `machine_busy(seconds)` (/proc, `impala_tf.testing`).
* `machine()`, `write_json(path, report)`, `format_table(rows, columns)`,
  `parse_sources(parser, text, marker)` and `commit_of(source)` (a
  checkout's short commit) for --sources.
"""

import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import time

from impala_tf import testing
from impala_tf.runtime import curves
from impala_tf.runtime import processes

REPO = testing.REPO
_ISOLATED = "IMPALA_BENCHMARK_ISOLATED"


def ensure_private_network(module):
    """Re-executes `python -m module <argv>` under `unshare -n` if needed.

    Returns only in the private namespace; otherwise exits with the inner
    run's status. Exits with a message if `unshare` is not available.
    """
    if os.environ.get(_ISOLATED) or testing.in_private_network():
        return
    inner = [sys.executable, "-m", module] + sys.argv[1:]
    try:
        # unshare and bash exec: the child's pid is the inner benchmark's.
        proc = subprocess.Popen(testing.isolated_command(inner), cwd=REPO,
                                env=dict(os.environ, **{_ISOLATED: "1"}))
    except FileNotFoundError:
        sys.exit("error: needs `unshare -n` (root or user namespaces) to "
                 "keep TF's gRPC servers off the network")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda s, _: proc.send_signal(s))
    sys.exit(proc.wait())


def _emulate(game, seconds, warmup_s, seed, out):
    import ale_py  # pylint: disable=g-import-not-at-top
    import ale_py.roms  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setInt("frame_skip", 4)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(ale_py.roms.get_rom_path(game)))
    actions = ale.getMinimalActionSet()
    choice = np.random.default_rng(seed).integers(
        0, len(actions), 1 << 16)
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    counting = False
    while True:
        now = time.perf_counter()
        if not counting and now - start >= warmup_s:
            counting, steps, start = True, 0, now
            cpu = time.process_time()
        elif counting and now - start >= seconds:
            break
        ale.act(actions[choice[steps & 0xFFFF]])
        steps += 1
        if ale.game_over():
            ale.reset_game()
    out.put((4 * steps, time.perf_counter() - start,
             time.process_time() - cpu))


def raw_emulator_ceiling(processes, seconds, game="pong", warmup_s=1.0,
                         per_cpu_second=False):
    """Frames/s of `processes` raw ALE emulators running at once (summed).

    With `per_cpu_second`, returns (frames/s, frames per CPU-second of the
    emulators): the second does not drop when other work shares the CPUs.
    """
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    results = gather([ctx.Process(target=_emulate,
                                  args=(game, seconds, warmup_s, 1 + i, out))
                      for i in range(processes)],
                     out, timeout_s=seconds + warmup_s + 120)
    fps = sum(frames / wall for frames, wall, _ in results)
    if not per_cpu_second:
        return fps
    return fps, (sum(frames for frames, _, _ in results)
                 / max(sum(cpu for _, _, cpu in results), 1e-9))


def gather(procs, out, timeout_s, join_s=30):
    """Starts `procs`, returns one result per process from queue `out`
    (in arrival order), then joins them, killing any still alive."""
    for p in procs:
        p.start()
    try:
        return [out.get(timeout=timeout_s) for _ in procs]
    finally:
        processes.stop(procs, timeout_s=0, wait_s=join_s)


def run_main(module, main):
    """`if __name__ == "__main__"` of a benchmark: re-run `module` in a
    private network namespace, exit cleanly on SIGTERM, exit with main's
    status."""
    ensure_private_network(module)
    exit_on_sigterm()
    sys.exit(main(sys.argv[1:]))


def tree_cpu_s(root):
    """CPU seconds (user + system) of `root` and its live descendants."""
    ticks = sum(st.cpu_ticks for st in testing.process_tree(root).values())
    return ticks / os.sysconf("SC_CLK_TCK")


class ProcessCpu:
    """CPU cores used by a process tree: `start()`, then `stop()` ->
    {'root': cores, 'children': [cores, ...], 'total': cores}."""

    def __init__(self, root):
        self._root = root
        self._start = None
        self._t0 = None

    def start(self):
        self._start = {pid: st.cpu_ticks for pid, st in
                       testing.process_tree(self._root).items()}
        self._t0 = time.monotonic()

    def stop(self):
        end = testing.process_tree(self._root)
        dt = max(time.monotonic() - self._t0, 1e-9)
        hz = os.sysconf("SC_CLK_TCK")
        used = {pid: (st.cpu_ticks - self._start.get(pid, 0)) / hz / dt
                for pid, st in end.items()}
        children = sorted((c for pid, c in used.items()
                           if pid != self._root and c > 0.02), reverse=True)
        return {"root": used.get(self._root, 0.0), "children": children,
                "total": sum(used.values())}


def exit_on_sigterm():
    """SIGTERM raises SystemExit, so `finally` blocks stop what we started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def machine_busy(seconds=2.0):
    """CPUs' worth of work the whole machine did over `seconds`."""
    busy0, total0 = testing.machine_jiffies()
    time.sleep(seconds)
    busy1, total1 = testing.machine_jiffies()
    return ((busy1 - busy0) / max(total1 - total0, 1.0)
            * (os.cpu_count() or 1))


def wait_until_quiet(max_wait_s, threshold=0.3, log=print):
    """Waits (up to `max_wait_s`) until others use < `threshold` CPUs.

    Returns the load seen last. For shared machines: other users' work
    lowers both the ceiling and training, but not always equally.
    """
    deadline = time.monotonic() + max_wait_s
    load = machine_busy()
    while load >= threshold and time.monotonic() < deadline:
        log(f"[benchmark] machine busy ({load:.2f} CPUs); waiting")
        time.sleep(8.0)
        load = machine_busy()
    return load


def synthetic_batch(spec, batch_size, num_actions, seed=0):
    """A fixed random learner batch for timing: the trajectory nest of
    `spec` (one trajectory), each leaf [batch_size, ...] as `tf.Tensor`s;
    frames uniform uint8, actions in [0, num_actions), 2% of the booleans
    set, none marked replayed (every frame counts, as from actors)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)

    def fill(s):
        shape = [batch_size] + s.shape.as_list()
        if s.dtype == tf.uint8:
            return tf.constant(rng.integers(0, 256, shape, np.uint8))
        if s.dtype == tf.bool:
            return tf.constant(rng.random(shape) < 0.02)
        if s.dtype.is_integer:
            return tf.constant(rng.integers(0, num_actions, shape).astype(
                s.dtype.as_numpy_dtype))
        return tf.constant(rng.standard_normal(shape).astype(np.float32))

    return tf.nest.map_structure(fill, spec)._replace(
        replayed=tf.zeros([batch_size], tf.bool))


def run_in_process(target, args, timeout_s=900):
    """Runs `target(*args, out)` in a fresh spawned process (its own
    TensorFlow settings) and returns what it puts on `out` (a queue)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    return gather([ctx.Process(target=target, args=tuple(args) + (out,))],
                  out, timeout_s)[0]


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from impala_tf.runtime import precision  # pylint: disable=import-outside-toplevel
    return {"cpu": model, "cpus": os.cpu_count(),
            "cpu_flags": sorted(precision.cpu_flags() & set(CPU_FLAGS)),
            "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


# The CPU features that decide speed here, recorded with every result
# (`machine`): vector width and native bfloat16.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile",
             "amx_bf16")


format_table = curves.format_table  # rows: dicts; (key, header, format).


def parse_sources(parser, text, marker):
    """--sources' checkouts as absolute paths (default: this one); the
    argparse `parser` exits with one sentence if one lacks the file
    `marker` (a path inside a checkout)."""
    sources = [os.path.abspath(d) for d in (
        text.split(",") if text else [REPO])]
    for d in sources:
        if not os.path.isfile(os.path.join(d, marker)):
            parser.error(f"--sources: {d} is not an impala_tf checkout")
    return sources


def commit_of(source):
    """The short commit of checkout `source` (or its folder name)."""
    try:
        out = subprocess.run(["git", "-C", source, "rev-parse", "--short",
                              "HEAD"], capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.path.basename(os.path.abspath(source))


def write_json(path, report):
    path = os.path.join(REPO, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, path)
    return path
