r"""Start a learner and N actor processes on this machine, the distributed way.

    impala-tf launch --listen_on_all_interfaces
        --num_actor_processes=4 [--num_learners=1]
        [--learner_address=HOST:PORT] [--dry_run] [trainer flags...]
    impala-tf launch ...                                 (the same)

Every process is a separate `python -m impala_tf.cli.experiment` with a role
(`--job_name=learner|actor --task=N`), exactly as on a cluster: the
learner(s) serve on TensorFlow gRPC and the actors connect to them over
gRPC. The launcher prints the command of each role, and the command to run
on other machines to add actors there; it forwards SIGINT/SIGTERM to the
learners (they checkpoint and stop; the actors follow), restarts an actor
that fails while training goes on, and exits with the learners' status once
they are done. Flags other than its own go unchanged to every role.

With --num_learners=K > 1 it starts K synchronous learners
(`--learner_hosts`, `distributed.LearnerCluster`); actor i sends to learner
i % K.

The learners' TensorFlow servers have no authentication and listen on every
network interface (TensorFlow cannot bind them to one), so the launcher
starts nothing without --listen_on_all_interfaces, which it passes to the
learners only. `--help` (or `--helpshort`) prints the launcher's flags,
`--helpfull` also the trainer's; both start nothing.
"""

import argparse
import functools
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from impala_tf import errors
from impala_tf.errors import UsageError
from impala_tf.runtime import processes

ROLE_FLAGS = ("--job_name", "--task", "--learner_hosts", "--learner_address")
LISTEN_FLAG = "--listen_on_all_interfaces"


def _is_listen_flag(flag):
    return flag.split("=")[0] in (LISTEN_FLAG, "--no" + LISTEN_FLAG[2:])


def _allows_listening(flags):
    """True if the last --[no]listen_on_all_interfaces in `flags` says
    yes (absl's spellings)."""
    value = False
    for flag in flags:
        if _is_listen_flag(flag):
            name, _, arg = flag.partition("=")
            value = name == LISTEN_FLAG and arg.lower() in ("", "true", "1")
    return value


HELP_FLAGS = ("help", "helpshort", "helpfull", "h", "?")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one `error:` sentence and exit
    status 2 (`errors.fail`), without the usage lines."""

    def error(self, message):
        errors.fail(message)


def _help_asked(argv):
    """"full" if argv asks for --helpfull, "short" for --help, --helpshort,
    -h or -? (absl's and argparse's spellings), else None."""
    asked = None
    for arg in argv:
        if arg == "--":
            break
        name, _, value = arg.lstrip("-").partition("=")
        if (arg.startswith("-") and name in HELP_FLAGS
                and value.lower() not in ("false", "0")):
            asked = "full" if name == "helpfull" else asked or "short"
    return asked


def _trainer_help():
    """The help of the flags every role takes (the trainer's)."""
    # pylint: disable=import-outside-toplevel
    from absl import flags
    from impala_tf.cli import flags as train_flags
    flag_values = train_flags.define_train_flags(flags.FlagValues())
    text = flag_values.get_help(include_special_flags=False)
    return text.split(":\n", 1)[1]  # Without the defining module's name.


def parse_args(argv):
    """Returns (launcher namespace, flags passed on to every role). Help
    (see `_help_asked`) is printed and exits 0; a bad command line exits 2
    with one sentence."""
    parser = _Parser(
        prog="impala-tf launch",
        description=__doc__.split("\n\n")[2],
        epilog="Any other --flag goes to every role (impala-tf launch "
               "--helpfull lists them).")
    parser.add_argument("--num_actor_processes", type=int, default=2,
                        help="actor processes to start here (default 2)")
    parser.add_argument("--num_learners", type=int, default=1,
                        help="synchronous learner processes (default 1)")
    parser.add_argument("--learner_address", default=None,
                        help="HOST:PORT for the (first) learner (default: "
                             "localhost and a free port)")
    parser.add_argument("--dry_run", action="store_true",
                        help="print the commands and exit")
    asked = _help_asked(argv)
    if asked:
        parser.print_help()
        if asked == "full":
            print("\nflags passed on to every role (the trainer's):")
            print(_trainer_help())
        sys.exit(0)
    args, rest = parser.parse_known_args(argv)
    for flag in rest:
        if flag.split("=")[0] in ROLE_FLAGS:
            parser.error(f"{flag.split('=')[0]} is set by the launcher")
        if not flag.startswith("--"):
            parser.error(f"unexpected argument {flag!r}")
    if args.num_actor_processes < 0 or args.num_learners < 1:
        parser.error("--num_actor_processes >= 0 and --num_learners >= 1")
    if not _allows_listening(rest):
        parser.error(
            "the learners serve TensorFlow's gRPC server, which has no "
            "authentication and listens on every network interface, so "
            "anyone who reaches its port can run code as this user; pass "
            f"{LISTEN_FLAG} to start them anyway, on a private network only")
    return args, rest


def plan(args, flags, python=sys.executable):
    """The commands: (learner commands, actor commands, remote template)."""
    if args.learner_address:
        host, _, port = args.learner_address.rpartition(":")
        if not host or not port.isdigit() or int(port) == 0:
            raise UsageError("--learner_address must be HOST:PORT with a "
                             "fixed port")
        ports = [int(port)] + [processes.free_port()
                               for _ in range(args.num_learners - 1)]
    else:
        host = "localhost"
        ports = [processes.free_port() for _ in range(args.num_learners)]
    base = [python, "-m", "impala_tf.cli.experiment"]
    public = host
    if host in ("localhost", "127.0.0.1"):
        public = socket.getfqdn()
        if public.startswith("localhost"):
            public = socket.gethostname()
    if args.num_learners == 1:
        where = [f"--learner_address={host}:{ports[0]}"]
        remote_where = [f"--learner_address={public}:{ports[0]}"]
        learners = [base + ["--job_name=learner"] + where + flags]
    else:
        hosts = ",".join(f"{host}:{p}" for p in ports)
        where = [f"--learner_hosts={hosts}"]
        remote_where = ["--learner_hosts=" + ",".join(
            f"{public}:{p}" for p in ports)]
        learners = [base + ["--job_name=learner", f"--task={k}"] + where
                    + flags for k in range(args.num_learners)]
    # Actors listen nowhere: the consent is the learners' only.
    actor_flags = [f for f in flags if not _is_listen_flag(f)]
    actors = [base + ["--job_name=actor", f"--task={i}"] + where
              + actor_flags for i in range(args.num_actor_processes)]
    remote = (["python", "-m", "impala_tf.cli.experiment", "--job_name=actor",
               "--task=N"] + remote_where + actor_flags)
    return learners, actors, remote


class Launcher:
    """Runs the planned processes; `run()` returns the exit status.

    Args:
      learners, actors: the argv of each learner and actor process.
      log: callable(str) for one-line events.
      restart_delay_s: wait before restarting a failed actor.
      actor_grace_s: how long actors may take to exit by themselves once
        the learners are done.
      stop_timeout_s: SIGTERM to SIGKILL for actors still running then.
    """

    def __init__(self, learners, actors, log=print, restart_delay_s=2.0,
                 actor_grace_s=30.0, stop_timeout_s=10.0):
        self._learner_cmds = learners
        self._actor_cmds = actors
        self._log = log
        self._delay = restart_delay_s
        self._actor_grace_s = actor_grace_s
        self._stop_timeout_s = stop_timeout_s
        self._learners = []
        self._actors = {}
        self._stopping = False

    @staticmethod
    def _start(cmd):
        return subprocess.Popen(
            cmd, start_new_session=True,
            preexec_fn=functools.partial(processes.die_with_parent,
                                         os.getpid()))

    def _all(self):
        return self._learners + list(self._actors.values())

    def _on_signal(self, signum, _frame):
        name = signal.Signals(signum).name
        if self._stopping:
            self._log(f"[launch] {name} again: killing every process")
            processes.kill(self._all(), group=True)
            return
        self._stopping = True
        self._log(f"[launch] {name}: asking the learners to stop")
        for p in self._learners:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    def run(self):
        previous = {s: signal.signal(s, self._on_signal)
                    for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._learners = [self._start(c) for c in self._learner_cmds]
            for i, cmd in enumerate(self._actor_cmds):
                self._actors[i] = self._start(cmd)
            while any(p.poll() is None for p in self._learners):
                time.sleep(0.5)
                failed = [p for p in self._learners
                          if p.poll() not in (None, 0)]
                if failed and not self._stopping:
                    self._log("[launch] a learner failed; stopping the "
                              "others")
                    self._on_signal(signal.SIGTERM, None)
                if not self._stopping:
                    self._restart_failed_actors()
            codes = [p.returncode for p in self._learners]
            self._wait_for_actors()
            code = next((c for c in codes if c), 0)
            return 128 - code if code < 0 else code
        finally:
            processes.kill(self._all(), group=True)
            for s, h in previous.items():
                signal.signal(s, h)

    def _restart_failed_actors(self):
        for i, p in list(self._actors.items()):
            code = p.poll()
            if code not in (None, 0):
                self._log(f"[launch] actor {i} exited with status {code}; "
                          "restarting it")
                processes.kill(p, group=True)  # What it left behind.
                time.sleep(self._delay)
                self._actors[i] = self._start(self._actor_cmds[i])

    def _wait_for_actors(self):
        """The learners are done: actors see the closed queue and exit;
        those still running after `actor_grace_s` get SIGTERM, then
        SIGKILL after `stop_timeout_s`."""
        actors = list(self._actors.values())
        if processes.wait(actors, self._actor_grace_s):
            left = [i for i, p in self._actors.items() if p.poll() is None]
            self._log(f"[launch] actors {left} still running "
                      f"{self._actor_grace_s:g}s after the learner; "
                      "stopping them")
            processes.stop(actors, self._stop_timeout_s, group=True)


def main(argv=None):
    """The launcher; returns its exit status (bad input: exits 2 with one
    sentence)."""
    args, flags = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        learners, actors, remote = plan(args, flags)
    except UsageError as e:
        errors.fail(str(e))
    say = lambda m: print(m, flush=True)
    for k, cmd in enumerate(learners):
        say(f"[launch] learner {k}: {shlex.join(cmd)}")
    for i, cmd in enumerate(actors):
        say(f"[launch] actor {i}: {shlex.join(cmd)}")
    say("[launch] to add actors on other machines, run there (N = "
        f"{len(actors)}, {len(actors) + 1}, ...; the learner port(s) must be "
        "reachable from them, on a private network only):\n    "
        + shlex.join(remote))
    if args.dry_run:
        return 0
    return Launcher(learners, actors, log=say).run()


if __name__ == "__main__":
    sys.exit(main())
