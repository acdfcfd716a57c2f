"""One machine: the members of a population as supervised processes.

`MemberProcesses` starts one `python -m impala_tf.cli.pbt --pbt_member=i ...`
process per member, each in its own process group (with its actors) and
with its output appended to `<logdir>/member_<i>/console.log`. `poll()`
restarts a member that died (a signal, a crash): it resumes from its
checkpoint like any run. A member that exits 0 is done; one that exits 2
(bad input) stops the population. `stop()` asks every member to stop
(SIGTERM: it saves a checkpoint) and kills what is left after a grace
period. `EventPrinter` says each new event of pbt.jsonl. No TensorFlow
here.
"""

import os
import subprocess

from impala_tf.pbt import population as pbt_population
from impala_tf.runtime import processes

BAD_INPUT = 2


class EventPrinter:
    """Says each new event of a population's pbt.jsonl in one line, and
    how many torn lines it skipped whenever that number grows.

    Args:
      population: the `pbt_population.Population`.
      say: callable(str).
    """

    def __init__(self, population, say=print):
        self._population, self._say = population, say
        self._seen = population.event_log().events  # Said before.
        self._torn = 0

    def poll(self):
        """Says what was appended since the last call."""
        events, torn = self._population.event_log()
        for e in events[len(self._seen):]:
            self._say(f"[pbt] member {e['member']} at {e['frames']:,} "
                      f"frames: fitness {e['fitness']:.4g}"
                      + (f", copied member {e['picked']}" if e["copied"]
                         else ""))
        if torn > self._torn:
            self._say(pbt_population.torn_lines_sentence(
                self._population.logdir, torn))
        self._seen, self._torn = events, torn


class PopulationFailed(Exception):
    """A member cannot run (bad input, or it keeps dying); one sentence."""


class MemberProcesses:
    """The members' processes on this machine.

    Args:
      commands: {member: argv} of each member's process.
      logs: {member: path} of the file its output is appended to.
      say: callable(str) for one-line events.
      max_restarts: restarts allowed per member before `PopulationFailed`.
    """

    def __init__(self, commands, logs, say=print, max_restarts=5):
        self._commands, self._logs, self._say = commands, logs, say
        self._max_restarts = max_restarts
        self._procs = {}
        self.restarts = {m: 0 for m in commands}
        self.done = set()

    def _start(self, member):
        os.makedirs(os.path.dirname(self._logs[member]), exist_ok=True)
        with open(self._logs[member], "ab") as log:
            self._procs[member] = subprocess.Popen(
                self._commands[member], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._say(f"[pbt] member {member}: started (pid "
                  f"{self._procs[member].pid}, output in "
                  f"{self._logs[member]})")

    def start(self):
        for member in self._commands:
            self._start(member)

    def pids(self):
        """{member: pid} of the running members."""
        return {m: p.pid for m, p in self._procs.items()}

    def poll(self):
        """Restarts dead members; True while some member still runs.
        Raises `PopulationFailed` (after `stop()`)."""
        for member, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            processes.kill(proc, group=True)  # Its actors, if any are left.
            del self._procs[member]
            if code == 0:
                self.done.add(member)
                self._say(f"[pbt] member {member}: finished")
                continue
            if (code == BAD_INPUT
                    or self.restarts[member] >= self._max_restarts):
                self.stop()
                why = ("rejected its flags" if code == BAD_INPUT else
                       f"died {self.restarts[member] + 1} times")
                raise PopulationFailed(
                    f"member {member} {why} (exit status {code}); see "
                    f"{self._logs[member]}")
            self.restarts[member] += 1
            self._say(f"[pbt] member {member}: exited with status {code}; "
                      f"restarting it (restart {self.restarts[member]})")
            self._start(member)
        return bool(self._procs)

    def stop(self, grace_s=90.0):
        """SIGTERM to every member (each saves a checkpoint), then SIGKILL
        to whatever is left of their process groups after `grace_s`."""
        processes.stop(list(self._procs.values()), grace_s, group=True)
        self._procs.clear()
