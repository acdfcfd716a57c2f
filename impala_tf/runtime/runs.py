"""A run directory: its checks, its saved configuration, its checkpoints.

Layout of `--logdir`:
  run_config.json   the network, the level and the learner settings the
                    run trains with now (`resume`), and a history of the
                    learner settings that changed at each resume
  checkpoints/      `tf.train.CheckpointManager` files (atomic state file;
                    saved and restored by `checkpoints`)
  progress.jsonl    one JSON record per log interval (`progress`)
  train/            TensorBoard summaries
  train.lock        held (flock) by the process training in it, if any;
                    holds that process's pid

Every failure here raises `RunError` with one readable sentence, before
anything in the directory is overwritten.
"""

import fcntl
import json
import os
import tempfile

from impala_tf import errors
from impala_tf.runtime import progress

CONFIG_FILE = "run_config.json"
LOCK_FILE = "train.lock"


class RunError(errors.UsageError):
    """A problem with --logdir or its contents; the message is one sentence."""


def _network_description(config):
    """The fields that must match for a checkpoint to be reusable."""
    a = config.actor
    return {
        "agent": a.agent.torso,
        "use_lstm": a.agent.use_lstm,
        "use_instruction": a.agent.use_instruction,
        "num_actions": a.agent.num_actions,
        "observation": {k: v.shape.as_list()
                        for k, v in sorted(a.observation_spec.items())},
    }


class RunDirectory:
    """Checks and prepares `logdir`; raises `RunError` on bad input."""

    def __init__(self, logdir):
        self.logdir = logdir
        if os.path.exists(logdir) and not os.path.isdir(logdir):
            raise RunError(f"--logdir {logdir} is a file, not a directory")
        try:
            os.makedirs(logdir, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=logdir):
                pass
        except OSError as e:
            raise RunError(
                f"--logdir {logdir} is not writable ({e.strerror})") from None
        self.checkpoint_dir = os.path.join(logdir, "checkpoints")
        self._lock = None

    def claim(self):
        """Makes this process the one training in the directory until
        `release` or its exit (an flock on train.lock, which the kernel
        drops even on SIGKILL, so a killed run leaves no stale lock).

        Raises RunError, naming the holder's pid, if another process
        trains in it: two trainers in one directory would interleave
        their progress records and overwrite each other's checkpoints.
        Reading the directory (`--mode=test`, `export`) needs no claim.
        """
        if self._lock is not None:
            return
        path = os.path.join(self.logdir, LOCK_FILE)
        f = open(path, "a+")  # pylint: disable=consider-using-with
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunError(
                f"--logdir {self.logdir} is in use by another training "
                f"process (pid {holder}); stop it first or use another "
                "--logdir") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock = f

    def release(self):
        """Lets another process train in the directory (see `claim`)."""
        if self._lock is not None:
            self._lock.close()  # Closing the file drops the flock.
            self._lock = None

    @property
    def config_path(self):
        return os.path.join(self.logdir, CONFIG_FILE)

    def saved_config(self):
        """The run_config.json of an earlier run, or None."""
        if not os.path.exists(self.config_path):
            return None
        try:
            with open(self.config_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            raise RunError(f"{self.config_path} is unreadable or corrupt; "
                           "move it away to start afresh") from None

    def check_compatible(self, config):
        saved = self.saved_config()
        if saved is None:
            return
        want = _network_description(config)
        have = saved.get("network", {})
        for key in want:
            if have.get(key) != want[key]:
                raise RunError(
                    f"--logdir {self.logdir} holds a run with {key}="
                    f"{have.get(key)!r} but this run has {key}={want[key]!r};"
                    " use another --logdir or the same agent and level")

    def write_config(self, config, frames=0):
        """Writes run_config.json: what `config` trains with from `frames`
        on (the restored checkpoint's frames, 0 for a new run).

        'learner' holds every `LearnerConfig` field as trained with;
        'history' lists, oldest first, each start whose learner settings
        differ from the previous start's: {'frames': N, 'changed': {field:
        [before, after]}} (carried over from the file it replaces).
        """
        learner = {k: getattr(config.learner, k)
                   for k in config.learner.__dataclass_fields__}
        saved = self.saved_config() or {}
        history = list(saved.get("history", []))
        before = saved.get("learner")
        if before is not None:
            changed = {k: [before.get(k), v] for k, v in learner.items()
                       if before.get(k) != v}
            if changed:
                history.append({"frames": int(frames), "changed": changed})
        record = {
            "network": _network_description(config),
            "level_name": config.actor.level_set.name,
            "unroll_length": config.actor.unroll_length,
            "learner": learner,
            "history": history,
        }
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        os.replace(tmp, self.config_path)

    def repair_progress(self):
        """Drops a half-written last line of progress.jsonl (a killed run)."""
        progress.repair(self.logdir)

