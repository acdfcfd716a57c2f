"""Helpers shared by the tests and the benchmarks.

* Isolation: TF's gRPC server listens on every interface whatever address it
  is given, so anything that starts a learner runs in a private network
  namespace with only loopback up (`isolated`, the one place that launch
  line is written; `can_isolate`, `in_private_network`).
* Processes: impala commands in their own process group, killed with
  everything they started when they end or time out (`run_impala`,
  `run_isolated_script`, `kill_group`).
* /proc: one parser of a process's stat line (`proc_stat`) and of the
  machine's CPU counters (`machine_jiffies`), for process trees, process
  groups and CPU use; the network sockets processes hold open to the
  outside (`open_ports`: listening TCP, bound UDP).
* Tiny configurations: the toy level and flags small enough for tests
  (`TOY_LEVEL`, `TINY_FLAGS`, `tiny_train_config`).
* Stand-ins: `NullTransport`, an actor's `transport.ActorTransport` that
  serves fixed weights and keeps what it is sent (no server), and
  `ListBatches`, a learner's `transport.BatchSource` over given batches.

No pytest and no TensorFlow at import time: benchmarks use it too.
"""

import collections
import os
import shlex
import shutil
import socket
import subprocess
import sys

from impala_tf import transport
from impala_tf.runtime import processes as processes_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOY_LEVEL = "impala_tf.envs.toy:colour_choice"
# A feed-forward agent learning the toy level in seconds (add --logdir and
# --total_environment_frames).
TINY_FLAGS = ["--level_name=" + TOY_LEVEL, "--use_lstm=false",
              "--batch_size=8", "--unroll_length=10", "--num_actors=2",
              "--log_interval_s=2", "--learning_rate=0.002"]


# -- Isolation. -------------------------------------------------------------

def can_isolate():
    """True if `unshare -n` works here (root or user namespaces)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-n", "true"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    return probe.returncode == 0


def in_private_network():
    """True if this process sees no network interface but loopback."""
    try:
        return all(name == "lo" for _, name in socket.if_nameindex())
    except OSError:
        return False


def isolated(shell, mount=False):
    """argv running bash `shell` in a fresh network namespace, loopback up
    (and a fresh mount namespace if `mount`)."""
    return (["unshare"] + (["-m"] if mount else []) + ["-n", "bash", "-c",
                                                       "ip link set lo up && "
                                                       + shell])


def isolated_command(args):
    """argv running `args` in a fresh network namespace; with bash's exec,
    the process started is `args` itself."""
    return isolated("exec " + " ".join(shlex.quote(a) for a in args))


def kill_group(proc):
    """SIGKILLs the process group led by `proc` (started with
    `start_new_session=True`), whatever is left of it, and reaps `proc`
    (`runtime.processes.kill`)."""
    processes_lib.kill(proc, group=True)


def run_impala(flags, timeout=240, env=None, module="impala_tf.cli.experiment",
               isolate=True):
    """Runs `python -m module flags...` (isolated unless told otherwise) in
    its own process group, killed when it ends or times out; returns a
    `CompletedProcess` with text stdout and stderr. A timeout raises
    AssertionError with the ends of both streams."""
    args = [sys.executable, "-m", module] + list(flags)
    cmd = isolated_command(args) if isolate else args
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    out, err = _communicate(
        proc, timeout, lambda o, e: (
            f"command timed out after {timeout}s: {' '.join(args)}\n"
            f"stdout:\n{o[-3000:]}\nstderr:\n{e[-3000:]}"))
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _communicate(proc, timeout, describe_timeout):
    """(stdout, stderr) of `proc`; its process group is killed at the end.
    On a timeout raises AssertionError(describe_timeout(stdout, stderr))."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(describe_timeout(out, err)) from None
    finally:
        kill_group(proc)  # Anything left behind.


def run_isolated_script(script, timeout, cwd=REPO, env=None):
    """Runs a bash script (`set -u`; `$PY` is this Python) in a fresh network
    namespace, stdout and stderr together; returns (returncode, output).
    Everything it started is killed when it ends or times out."""
    cmd = isolated("set -u\n" + script)
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", PY=sys.executable)
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out, _ = _communicate(
        proc, timeout,
        lambda o, _: f"scenario timed out after {timeout}s:\n" + o[-4000:])
    return proc.returncode, out


# -- /proc. -----------------------------------------------------------------

# state: 'R', 'S', 'Z', ...; cpu_ticks: user + system, in SC_CLK_TCK ticks.
ProcStat = collections.namedtuple("ProcStat",
                                  ["state", "ppid", "pgid", "cpu_ticks"])


def proc_stat(pid):
    """`ProcStat` of process `pid` from /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or ')'.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return ProcStat(fields[0], int(fields[1]), int(fields[2]),
                        int(fields[11]) + int(fields[12]))
    except (IndexError, ValueError):
        return None


def processes():
    """{pid: ProcStat} of every process this one can see."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = proc_stat(int(name))
            if stat is not None:
                table[int(name)] = stat
    return table


def process_tree(root):
    """{pid: ProcStat} of `root` and its live descendants."""
    table = processes()
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, stat in table.items():
            if stat.ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: table[pid] for pid in tree if pid in table}


def group_members(pgid):
    """Live (not zombie) pids of process group `pgid`."""
    return [pid for pid, stat in processes().items()
            if stat.pgid == pgid and stat.state != "Z"]


def cmdline(pid):
    """The command line of `pid` (arguments joined by spaces), or None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _socket_inodes(pid):
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _proc_net_address(hex_address):
    """'0100007F:1F90' (/proc/net/tcp: little-endian words) ->
    '127.0.0.1:8080'."""
    host, port = hex_address.split(":")
    raw = b"".join(bytes.fromhex(host[i:i + 8])[::-1]
                   for i in range(0, len(host), 8))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return f"{socket.inet_ntop(family, raw)}:{int(port, 16)}"


def open_ports(pids):
    """[(pid, protocol, 'address:port')] of the TCP sockets in LISTEN state
    and the UDP sockets that processes `pids` hold (matched by socket inode
    from /proc/<pid>/fd against /proc/<pid>/net/{tcp,tcp6,udp,udp6}, so it
    works inside or outside a private network namespace); [] if none."""
    found = []
    for pid in pids:
        inodes = _socket_inodes(pid)
        if not inodes:
            continue
        for protocol in ("tcp", "tcp6", "udp", "udp6"):
            try:
                with open(f"/proc/{pid}/net/{protocol}") as f:
                    rows = [line.split() for line in f.readlines()[1:]]
            except OSError:
                continue
            for row in rows:
                # st 0A: TCP_LISTEN; column 9: the socket's inode.
                if row[9] in inodes and (protocol.startswith("udp")
                                         or row[3] == "0A"):
                    found.append((pid, protocol, _proc_net_address(row[1])))
    return found


def machine_jiffies():
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat
    (busy: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


# -- Tiny configurations. ---------------------------------------------------

def tiny_train_config(logdir, torso="shallow", num_actions=2, use_lstm=False,
                      reward_clipping="abs_one", level=TOY_LEVEL):
    """A `config.TrainConfig` for one actor on the toy level's 24x24 frames,
    batches of 2 unrolls of 5 steps, 1000 frames (imports TensorFlow)."""
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    from impala_tf import agents
    from impala_tf import config as config_lib
    from impala_tf.envs import registry

    level_set = registry.parse_level_name(level)
    obs = {"frame": tf.TensorSpec([24, 24, 3], tf.uint8)}
    agent = agents.AgentConfig(torso, num_actions, use_lstm, False)
    return config_lib.TrainConfig(
        logdir=str(logdir), num_actors=1, learner_address="localhost:0",
        actor=config_lib.ActorConfig(level_set, agent, obs, unroll_length=5,
                                     envs_per_actor=1, queue_capacity=2,
                                     seed=1, vector_env=False),
        learner=config_lib.LearnerConfig(
            batch_size=2, unroll_length=5, num_action_repeats=1,
            total_environment_frames=1000, learning_rate=0.01,
            epsilon=0.01, entropy_cost=0.01,
            reward_clipping=reward_clipping, max_grad_norm=40.0))


# -- Synthetic data. -----------------------------------------------------------

def random_batch(batch_size, unroll_length, num_actions, frame_size, seed=0,
                 state_spec=None, reward_scale=1.0):
    """A fixed random learner batch: `types.Trajectory` of tensors, each
    [B, T+1, ...] (frames uint8 [B, T+1, S, S, 3]; no gradient). With
    `state_spec` (the agent's `state_spec(B)`), a random nonzero initial
    core state, as after an earlier unroll; else none. (Imports
    TensorFlow.)"""
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import tensorflow as tf
    from impala_tf import types

    rng = np.random.default_rng(seed)
    b, n = batch_size, unroll_length + 1
    state = ()
    if state_spec is not None:
        state = tf.nest.map_structure(
            lambda s: tf.constant(rng.normal(size=s.shape), tf.float32),
            state_spec)
    return types.Trajectory(
        level_id=tf.zeros([b], tf.int32),
        policy_version=tf.zeros([b], tf.int64),
        agent_state=state,
        env_outputs=types.EnvOutput(
            reward=tf.constant(reward_scale * rng.normal(size=[b, n]),
                               tf.float32),
            done=tf.constant(rng.random([b, n]) < 0.2),
            observation={"frame": tf.constant(
                rng.integers(0, 256, [b, n, frame_size, frame_size, 3]),
                tf.uint8)}),
        agent_outputs=types.AgentOutput(
            action=tf.constant(rng.integers(0, num_actions, [b, n]),
                               tf.int32),
            policy_logits=tf.constant(rng.normal(size=[b, n, num_actions]),
                                      tf.float32),
            baseline=tf.constant(rng.normal(size=[b, n]), tf.float32)),
        game_over=tf.zeros([b, n], tf.bool),
        episode_return=tf.zeros([b, n], tf.float32),
        episode_step=tf.zeros([b, n], tf.int32),
        replayed=tf.zeros([b], tf.bool))


def write_progress(logdir, returns, frames_per_record, level="toy",
                   num_action_repeats=1, episode_steps=10, extra=None):
    """Writes `<logdir>/progress.jsonl` as the trainer does: one record per
    entry of `returns`, `frames_per_record` frames apart; None: no episode
    finished yet, else a full window (`progress.RETURN_WINDOW` episodes) of
    that return, so the record's `episode_return_mean` is it and its
    window is full. `extra`: a dict merged into every record. Returns
    `logdir` as a string. (Imports TensorFlow, for the summaries.)
    """
    # pylint: disable=import-outside-toplevel
    import numpy as np
    from impala_tf.runtime import progress

    width = progress.RETURN_WINDOW
    logger = progress.ProgressLogger(
        str(logdir), [level], num_action_repeats=num_action_repeats,
        total_frames=len(returns) * frames_per_record, interval_s=0.0,
        console=None, extra=(lambda: dict(extra)) if extra else None)
    for i, ret in enumerate(returns):
        game_over = np.zeros([2, width], bool)
        episode_return = np.zeros([2, width], np.float32)
        if ret is not None:
            game_over[1] = True
            episode_return[1] = ret
        logger.add({
            "num_frames": (i + 1) * frames_per_record, "num_steps": i + 1,
            "policy_lag": np.zeros([width]), "nonfinite_skips": 0,
            "game_over": game_over, "episode_return": episode_return,
            "episode_step": np.full([2, width], episode_steps),
            "level_id": np.zeros([width], int), "total_loss": 1.0})
        logger.log()
    logger.close()
    return str(logdir)


# -- Stand-ins. ---------------------------------------------------------------

class NullTransport(transport.ActorTransport):
    """Fixed weights in, trajectories counted (and the last ones kept).

    Args:
      weights: list of np.ndarray in `trainable_variables` order.
      version: the int version `pull_weights` reports.
      stop_after: raise `tf.errors.CancelledError` (the learner is done) at
        the pull after this many enqueues; None: never.
    """

    def __init__(self, weights, version=0, stop_after=None):
        self.weights, self.version = list(weights), version
        self.stop_after = stop_after
        self.enqueued = 0       # enqueue calls
        self.trajectories = 0   # trajectories received (N per call)
        self.last = None        # a copy of the last nest received
        self.closed = False

    def pull_weights(self):
        if self.stop_after is not None and self.enqueued >= self.stop_after:
            import tensorflow as tf  # pylint: disable=g-import-not-at-top
            raise tf.errors.CancelledError(None, None, "the test is done")
        return self.weights, self.version

    def enqueue(self, trajectories):
        import numpy as np  # pylint: disable=g-import-not-at-top
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        self.last = tf.nest.map_structure(np.copy, trajectories)
        self.enqueued += 1
        self.trajectories += len(tf.nest.flatten(trajectories)[0])

    def close(self):
        self.closed = True


class ListBatches(transport.BatchSource):
    """The given batches in order, then the end (or `close()`)."""

    def __init__(self, batches):
        self._batches = list(batches)
        self.closed = False

    def __next__(self):
        if self.closed or not self._batches:
            raise StopIteration
        return self._batches.pop(0)

    def close(self):
        self.closed = True
