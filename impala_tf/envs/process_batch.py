"""Environments stepped in parallel processes, every step waiting for all.

`ProcessBatch` is an `envs.batch.EnvironmentBatch` (same calls, same
buffers, same semantics) whose N environments live in `num_processes`
child processes, each holding a contiguous group of them as its own
`envs.batch.make` batch (`DmEnvBatch`, or `AtariEnvironmentBatch` for Atari
with `vector_env`). One process per environment is `num_processes=N`.

A call (`reset_into`, `step_into`) writes the actions into memory shared
with the children, tells every child through its pipe, and returns once
every child has answered: the batch moves at the pace of its slowest
process at every step (batched A2C with a synchronous step, the paper's
Table 1). Each child writes its environments' column (reward, done,
game_over, episode return and length, frame) into shared memory [N, ...];
the parent copies it into the caller's buffers at column t.

Wait accounting: each child times its own work d_i; per step the batch
adds the wall time w (the parent's, from the first send to the last
answer) and the mean time a child waited for the slowest, mean_i(max_j d_j
- d_i), to `record(wall_s, straggler_s)` if given (the run's progress
records, `runtime.architectures`).

Observations must be a uint8 'frame' (no text). A child that raises sends
the error's first line back and exits; the parent raises `RuntimeError`
with it (the actor exits and its supervisor restarts it). Children end
with their parent (they poll its pid). No TensorFlow is imported here or
in the children.
"""

import collections
import multiprocessing
import os
import signal
import threading
import time

import numpy as np

from impala_tf.envs import batch as env_batch

_PARENT_POLL_S = 1.0
_CLOSE_TIMEOUT_S = 10.0

# The buffer fields one call writes, as `types.Trajectory` names them.
_Outputs = collections.namedtuple("_Outputs", ["reward", "done",
                                               "observation"])
_Column = collections.namedtuple(
    "_Column", ["env_outputs", "game_over", "episode_return",
                "episode_step"])


def _shared(ctx, shape, dtype):
    """(RawArray, its numpy view of `shape` and `dtype`)."""
    dtype = np.dtype(dtype)
    raw = ctx.RawArray("b", max(1, int(np.prod(shape)) * dtype.itemsize))
    return raw, _view(raw, shape, dtype)


def _view(raw, shape, dtype):
    n = int(np.prod(shape))
    return np.frombuffer(raw, np.dtype(dtype), count=n).reshape(shape)


def _column(arrays, lo, hi):
    """The shared arrays of environments lo..hi-1 as buffers of one column
    (each [n, 1, ...]), as `EnvironmentBatch` calls write them."""
    views = {k: v[lo:hi, None] for k, v in arrays.items()}
    return _Column(
        env_outputs=_Outputs(reward=views["reward"], done=views["done"],
                             observation={"frame": views["frame"]}),
        game_over=views["game_over"], episode_return=views["episode_return"],
        episode_step=views["episode_step"])


_FIELDS = (("reward", np.float32), ("done", np.bool_),
           ("game_over", np.bool_), ("episode_return", np.float32),
           ("episode_step", np.int32))


def _first_line(e):
    text = str(e).strip()
    return f"{type(e).__name__}" + (
        f": {text.splitlines()[0][:300]}" if text else "")


def _watch_parent(parent_pid):
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)  # pylint: disable=protected-access


def _child_main(level_set, level_ids, seeds, vector_env, raw, frame_shape,
                lo, hi, conn, parent_pid):
    """A child: builds environments lo..hi-1, then serves commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="exit-with-parent").start()
    n = len(level_ids)
    arrays = {k: _view(raw[k], (n,), d) for k, d in _FIELDS}
    arrays["frame"] = _view(raw["frame"], (n,) + tuple(frame_shape),
                            np.uint8)
    actions = _view(raw["actions"], (n,), np.int32)
    column = _column(arrays, lo, hi)
    try:
        envs = env_batch.make(level_set, level_ids[lo:hi], seeds[lo:hi],
                              vector_env=vector_env)
    except Exception as e:  # pylint: disable=broad-except
        conn.send(("error", "construction", _first_line(e)))
        return
    conn.send(("ready", envs.observation_spec()))
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            return  # The parent is gone.
        start = time.perf_counter()
        try:
            if command == "close":
                envs.close()
                conn.send(("closed", 0.0))
                return
            if command == "reset":
                envs.reset_into(0, column)
            else:
                for k in ("done", "game_over", "episode_return",
                          "episode_step"):
                    arrays[k][lo:hi] = 0
                envs.step_into(actions[lo:hi], 0, column)
        except Exception as e:  # pylint: disable=broad-except
            conn.send(("error", command, _first_line(e)))
            return
        conn.send(("ok", time.perf_counter() - start))


class ProcessBatch(env_batch.EnvironmentBatch):
    """N environments in `num_processes` processes, stepped in lock-step.

    Args:
      level_set: a `registry.LevelSet` (picklable).
      level_ids: N level indices; seeds: N seeds (as `envs.batch.make`).
      num_processes: child processes (1..N); environments are split into
        contiguous groups of nearly equal size.
      frame_shape: (H, W, C) of the uint8 'frame' observation.
      vector_env: passed to `envs.batch.make` in each child.
      monitor: optional callable(index, call) (`envs.batch`'s hook), told
        before each batched call with the first environment's index.
      record: optional callable(wall_s, straggler_s) after each step (the
        module doc's accounting).
      ctx: a `multiprocessing` context (default: spawn).

    Raises RuntimeError (one sentence naming the environment group and the
    child's error) if a child fails or exits.
    """

    def __init__(self, level_set, level_ids, seeds, num_processes,
                 frame_shape, vector_env=True, monitor=None, record=None,
                 ctx=None):
        ctx = ctx or multiprocessing.get_context("spawn")
        level_ids = [int(i) for i in level_ids]
        seeds = [int(s) for s in seeds]
        n = len(level_ids)
        if not 1 <= num_processes <= n:
            raise ValueError(f"num_processes={num_processes} must be between "
                             f"1 and the {n} environments")
        self._monitor = monitor or (lambda index, call: None)
        self._record = record
        self._n = n
        raw, self._arrays = {}, {}
        for k, dtype in _FIELDS:
            raw[k], self._arrays[k] = _shared(ctx, (n,), dtype)
        raw["frame"], self._arrays["frame"] = _shared(
            ctx, (n,) + tuple(frame_shape), np.uint8)
        raw["actions"], self._actions = _shared(ctx, (n,), np.int32)
        bounds = np.cumsum([0] + [len(c) for c in np.array_split(
            np.arange(n), num_processes)])
        self._groups = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        self._procs, self._conns = [], []
        self._spec = None
        try:
            for lo, hi in self._groups:
                parent_end, child_end = ctx.Pipe()
                p = ctx.Process(
                    target=_child_main, name=f"impala-envs-{lo}-{hi - 1}",
                    args=(level_set, level_ids, seeds, vector_env, raw,
                          tuple(frame_shape), lo, hi, child_end,
                          os.getpid()), daemon=True)
                self._monitor(lo, "construction")
                p.start()
                child_end.close()
                self._procs.append(p)
                self._conns.append(parent_end)
            for i in range(len(self._groups)):
                self._spec = self._receive(i, "construction")
        except BaseException:
            self._kill()
            raise
        self.durations = np.zeros(len(self._groups))  # The last call's d_i.

    @property
    def num_envs(self):
        return self._n

    @property
    def num_processes(self):
        return len(self._groups)

    def observation_spec(self):
        return self._spec

    def _receive(self, i, call):
        lo, hi = self._groups[i]
        try:
            answer = self._conns[i].recv()
        except (EOFError, OSError):
            code = self._procs[i].exitcode
            raise RuntimeError(
                f"the process of environments {lo}..{hi - 1} exited "
                f"(status {code}) during {call}") from None
        if answer[0] == "error":
            raise RuntimeError(f"environments {lo}..{hi - 1} failed in "
                               f"{answer[1]}: {answer[2]}")
        return answer[1]

    def _broadcast(self, command):
        """Sends `command` to every child, waits for all; returns the wall
        seconds and each child's own seconds."""
        start = time.perf_counter()
        for conn in self._conns:
            conn.send(command)
        for i in range(len(self._conns)):
            self.durations[i] = self._receive(i, command)
        return time.perf_counter() - start

    def _copy_out(self, t, buffers, flags):
        a = self._arrays
        buffers.env_outputs.observation["frame"][:, t] = a["frame"]
        if flags:
            buffers.env_outputs.reward[:, t] = a["reward"]
            buffers.env_outputs.done[:, t] = a["done"]
            buffers.game_over[:, t] = a["game_over"]
            buffers.episode_return[:, t] = a["episode_return"]
            buffers.episode_step[:, t] = a["episode_step"]

    def reset_into(self, t, buffers):
        self._monitor(0, "reset")
        self._broadcast("reset")
        self._copy_out(t, buffers, flags=False)

    def step_into(self, actions, t, buffers):
        self._monitor(0, "step")
        self._actions[:] = actions
        wall = self._broadcast("step")
        self._copy_out(t, buffers, flags=True)
        if self._record is not None:
            d = self.durations
            self._record(wall, float(np.mean(d.max() - d)))

    def _kill(self):
        for p in self._procs:
            if p.is_alive():
                p.kill()
            p.join(5)

    def close(self):
        """Closes every environment and ends the children (killed if they
        do not end within 10 s)."""
        self._monitor(0, "close")
        try:
            for conn in self._conns:
                try:
                    conn.send("close")
                except (BrokenPipeError, OSError):
                    pass
            deadline = time.monotonic() + _CLOSE_TIMEOUT_S
            for p in self._procs:
                p.join(max(0.0, deadline - time.monotonic()))
        finally:
            self._kill()
            for conn in self._conns:
                conn.close()


def maker(num_processes, frame_shape, record=None):
    """A callable with `envs.batch.make`'s signature building a
    `ProcessBatch` of `num_processes` processes."""
    def make(level_set, level_ids, seeds, vector_env=True, monitor=None):
        return ProcessBatch(level_set, level_ids, seeds, num_processes,
                            frame_shape, vector_env=vector_env,
                            monitor=monitor, record=record)
    return make
