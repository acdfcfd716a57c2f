"""Actor processes on this machine, restarted when they die or hang.

Each actor is a separate OS process (`multiprocessing` spawn context, so it
gets a fresh TensorFlow), running `actor.run_local_actor`: through shared
memory handed to it at spawn (its `SharedSlots` and the learner's
`SharedWeights`), or against the learner's gRPC address.
`ActorSupervisor.poll()` (called by the learner's main thread about twice a
second):

  * restarts an actor that exited or was killed, after a delay that doubles
    with each failure in a row (1 s, 2 s, 4 s ... at most 60 s); an actor
    that ran `healthy_after_s` before dying starts a fresh count;
  * kills an actor whose environment call (`step`, `reset`, ...) has run
    longer than `env_timeout_s` (the heartbeat of `watchdog`), naming the
    level, and restarts it;
  * raises `ActorsFailing` when one actor failed `max_consecutive_failures`
    times in a row, each soon after starting: a level that can never run.

Every event is one log line; the counts (`stats()`) go into progress.jsonl.
An environment that raises makes its actor print one line naming the level
and exit with `ENV_ERROR_EXIT`. A partly sent trajectory never reaches the
learner: one unroll batch is one enqueue request, which TensorFlow runs only
once it has arrived whole. Actor processes ignore SIGINT (the learner
handles Ctrl-C and closes the queue, which ends them) and exit by themselves
within `_PARENT_POLL_S` if the learner process dies.
"""

import multiprocessing
import os
import signal
import sys
import time
import traceback

from impala_tf.runtime import processes
from impala_tf.runtime import watchdog

ENV_ERROR_EXIT = 3
_PARENT_POLL_S = 1.0


class ActorsFailing(RuntimeError):
    """An actor keeps failing right after it starts; one sentence."""


def _say(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def actor_process_main(config, task, address, stop_event, parent_pid,
                       heartbeat=None, slots=None, weights=None):
    """Entry point of a local actor process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The learner gone, nobody reads our data: exit.
    processes.exit_with_parent(parent_pid, poll_s=_PARENT_POLL_S)
    if stop_event is not None and stop_event.is_set():
        os._exit(0)  # Stopped while starting: nothing to close.
    if heartbeat is not None:
        watchdog.mark_running(heartbeat)
    from absl import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity(logging.WARNING)
    from impala_tf.runtime import actor as actor_lib  # pylint: disable=g-import-not-at-top
    from impala_tf.envs import batch as env_batch  # pylint: disable=g-import-not-at-top
    try:
        actor_lib.run_local_actor(
            config, task, address, stop_event, slots=slots,
            weights=weights,
            make_environments=watchdog.guarded(env_batch.make, heartbeat))
    except watchdog.EnvironmentFailure as e:
        _say(f"[impala] actor {task}: {e}")
        if os.environ.get("IMPALA_TF_DEBUG"):
            traceback.print_exc()
        os._exit(ENV_ERROR_EXIT)
    except Exception as e:  # pylint: disable=broad-except
        if stop_event is not None and stop_event.is_set():
            os._exit(0)  # The learner is shutting down under us.
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        _say(f"[impala] actor {task} failed: {type(e).__name__}"
             + (f": {detail}" if detail else ""))
        if os.environ.get("IMPALA_TF_DEBUG"):
            traceback.print_exc()
        os._exit(1)


class ActorSupervisor:
    """Starts, watches, restarts and stops local actor processes.

    Args:
      actor_config: `actor.ActorConfig`.
      address: the learner's "host:port" (None: no server; shared memory).
      num_actors: processes to keep running.
      spawn: False for a learner that waits for remote actors only.
      log: callable(str) for one-line events.
      restart_delay_s: wait before the first restart of a dead actor; it
        doubles with each further failure in a row, up to
        `max_restart_delay_s`.
      env_timeout_s: kill an actor whose environment call runs longer (0:
        never).
      max_consecutive_failures: raise `ActorsFailing` from `poll()` when one
        actor failed this many times in a row (0: never).
      healthy_after_s: an actor that ran this long before dying was healthy;
        its failure count starts again.
      target: the process entry point (tests replace it).
      make_slots: if given, callable(multiprocessing context) -> one actor's
        `transport.shared_memory.SharedSlots`; each actor gets its own (kept across
        its restarts, listed in `slots`) and sends trajectories through it.
      weights: with `make_slots`, the learner's
        `transport.shared_weights.SharedWeights`, handed to every actor: its
        weights and the learner's "done" come from there.
    """

    def __init__(self, actor_config, address, num_actors, spawn=True,
                 log=print, restart_delay_s=1.0, env_timeout_s=0.0,
                 max_restart_delay_s=60.0, max_consecutive_failures=10,
                 healthy_after_s=60.0, target=None, make_slots=None,
                 weights=None):
        self._config = actor_config
        self._address = address
        self._num = num_actors if spawn else 0
        self._log = log
        self._delay = restart_delay_s
        self._max_delay = max_restart_delay_s
        self._env_timeout = env_timeout_s
        self._max_failures = max_consecutive_failures
        self._healthy_after = healthy_after_s
        self._target = target or actor_process_main
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._procs = {}  # task -> Process, or None while waiting to restart.
        self._started = {}
        self._restart_at = {}
        self._failures = {}
        self._killed_hung = set()
        self._heartbeats = {}
        self.restarts = 0
        self.env_errors = 0
        self.env_timeouts = 0
        self._stopping = False
        self.slots = ([make_slots(self._ctx) for _ in range(self._num)]
                      if make_slots is not None else None)
        self._weights = weights

    def _start_one(self, task):
        heartbeat = self._heartbeats.get(task)
        if heartbeat is None:
            heartbeat = self._ctx.RawArray("d", watchdog.HEARTBEAT_SIZE)
            self._heartbeats[task] = heartbeat
        watchdog.clear(heartbeat)
        args = (self._config, task, self._address, self._stop, os.getpid(),
                heartbeat)
        if self.slots is not None:
            args += (self.slots[task], self._weights)
        p = self._ctx.Process(target=self._target, name=f"impala-actor-{task}",
                              args=args, daemon=False)
        p.start()
        self._procs[task] = p
        self._started[task] = time.monotonic()

    def start(self):
        for task in range(self._num):
            self._start_one(task)

    def stop_restarting(self):
        """From now on dead actors stay dead (the learner is stopping)."""
        self._stopping = True

    def _kill_if_hung(self, task, p, now):
        late = watchdog.overdue(self._heartbeats[task], self._env_timeout, now)
        if late is None:
            return
        level_id, call, running = late
        level = watchdog.level_label(self._config.level_set, level_id)
        self._log(f"[impala] actor {task}: environment {level} has not "
                  f"returned from {call}() for {running:.0f} s (--env_timeout_s"
                  f"={self._env_timeout:g}); killing the actor")
        self.env_timeouts += 1
        self._killed_hung.add(task)
        p.kill()
        p.join(5)

    def _describe_exit(self, task, code):
        if task in self._killed_hung:
            self._killed_hung.discard(task)
            return "was stopped by the environment watchdog"
        if code == ENV_ERROR_EXIT:
            self.env_errors += 1
            return "stopped because its environment raised"
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def poll(self):
        """Restarts dead actors and kills hung ones; call it regularly."""
        if self._stopping:
            return
        now = time.monotonic()
        for task, p in list(self._procs.items()):
            if p is None:
                if now >= self._restart_at[task]:
                    self._start_one(task)
                continue
            if p.is_alive():
                self._kill_if_hung(task, p, now)
                if p.is_alive():
                    continue
            how = self._describe_exit(task, p.exitcode)
            lived = now - self._started[task]
            failures = (1 if lived >= self._healthy_after
                        else self._failures.get(task, 0) + 1)
            self._failures[task] = failures
            p.close()
            self._procs[task] = None
            if self._max_failures and failures >= self._max_failures:
                raise ActorsFailing(
                    f"actor {task} failed {failures} times in a row, each "
                    f"within {self._healthy_after:.0f} s of starting (last "
                    f"it {how}); stopping the run")
            delay = min(self._max_delay, self._delay * 2 ** (failures - 1))
            self._restart_at[task] = now + delay
            self.restarts += 1
            self._log(f"[impala] actor {task} {how}; restarting it in "
                      f"{delay:g} s (restart {self.restarts})")

    def stats(self):
        return {"actors_alive": sum(p is not None and p.is_alive()
                                    for p in self._procs.values()),
                "actor_restarts": self.restarts,
                "env_errors": self.env_errors,
                "env_timeouts": self.env_timeouts}

    def pids(self):
        return {t: p.pid for t, p in self._procs.items() if p is not None}

    def running(self, task):
        """Whether actor `task` is past its start-up: its heartbeat says it
        steps its environments."""
        heartbeat = self._heartbeats.get(task)
        return heartbeat is not None and watchdog.running(heartbeat)

    def stop(self, timeout_s=15.0):
        """Asks actors to stop, then terminates and kills stragglers.

        Actors still starting (importing TensorFlow; no environment or
        connection yet) are killed at once rather than waited for.
        """
        self._stopping = True
        self._stop.set()
        procs = [p for p in self._procs.values() if p is not None]
        processes.kill([p for task, p in self._procs.items()
                        if p is not None
                        and not watchdog.running(self._heartbeats[task])])
        processes.stop(procs, timeout_s=5.0, wait_s=timeout_s)
