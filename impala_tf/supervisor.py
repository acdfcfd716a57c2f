"""Actor processes on this machine, restarted when they die.

Each actor is a separate OS process (`multiprocessing` spawn context, so it
gets a fresh TensorFlow), running `actor.run_actor` against the learner's
address. The supervisor restarts an actor that exits with an error or is
killed, logs it, and counts restarts (`stats()`, written into progress.jsonl).
Actor processes ignore SIGINT (the learner handles Ctrl-C and closes the
queue, which ends them) and exit by themselves if the learner process dies.
"""

import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback

_PARENT_POLL_S = 1.0


def _watch_parent(parent_pid):
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)  # The learner is gone: nobody reads our data.
        time.sleep(_PARENT_POLL_S)


def actor_process_main(config, task, address, stop_event, parent_pid):
    """Entry point of a local actor process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from absl import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity(logging.WARNING)
    threading.Thread(target=_watch_parent, args=(parent_pid,),
                     daemon=True).start()
    from impala_tf import actor as actor_lib  # After fork-safety settings.
    try:
        actor_lib.run_actor(config, task, address, stop_event)
    except Exception as e:  # pylint: disable=broad-except
        levels = ", ".join(config.level_set.levels[:3])
        sys.stderr.write(
            f"[impala] actor {task} on {levels} failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            "\n")
        if os.environ.get("IMPALA_TF_DEBUG"):
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


class ActorSupervisor:
    """Starts, watches and stops local actor processes.

    Args:
      actor_config: `actor.ActorConfig`.
      address: the learner's "host:port".
      num_actors: processes to keep running.
      spawn: False for a learner that waits for remote actors only.
      log: callable(str) for one-line events.
      restart_delay_s: wait before restarting a dead actor.
    """

    def __init__(self, actor_config, address, num_actors, spawn=True,
                 log=print, restart_delay_s=1.0):
        self._config = actor_config
        self._address = address
        self._num = num_actors if spawn else 0
        self._log = log
        self._delay = restart_delay_s
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._procs = {}
        self.restarts = 0
        self._stopping = False

    def _start_one(self, task):
        p = self._ctx.Process(
            target=actor_process_main, name=f"impala-actor-{task}",
            args=(self._config, task, self._address, self._stop,
                  os.getpid()), daemon=False)
        p.start()
        self._procs[task] = p

    def start(self):
        for task in range(self._num):
            self._start_one(task)

    def poll(self):
        """Restarts actors that died; call it regularly."""
        if self._stopping:
            return
        for task, p in list(self._procs.items()):
            if p.is_alive():
                continue
            code = p.exitcode
            how = (f"killed by {signal.Signals(-code).name}" if code < 0
                   else f"exited with status {code}")
            self._log(f"[impala] actor {task} {how}; restarting it")
            self.restarts += 1
            p.close()
            time.sleep(self._delay)
            self._start_one(task)

    def stats(self):
        return {"actors_alive": sum(p.is_alive()
                                    for p in self._procs.values()),
                "actor_restarts": self.restarts}

    def pids(self):
        return {t: p.pid for t, p in self._procs.items()}

    def stop(self, timeout_s=15.0):
        """Asks actors to stop, then terminates and kills stragglers."""
        self._stopping = True
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for p in self._procs.values():
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self._procs.values():
            if p.is_alive():
                p.terminate()
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
