"""A run directory: its checks, its saved configuration, its checkpoints.

Layout of `--logdir`:
  run_config.json   the network and level the run was started with
  checkpoints/      `tf.train.CheckpointManager` files (atomic state file)
  progress.jsonl    one JSON record per log interval (`progress`)
  train/            TensorBoard summaries

Every failure here raises `RunError` with one readable sentence, before
anything in the directory is overwritten.
"""

import json
import os
import tempfile

from impala_tf import progress

CONFIG_FILE = "run_config.json"


class RunError(Exception):
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

    def write_config(self, config):
        record = {
            "network": _network_description(config),
            "level_name": config.actor.level_set.name,
            "unroll_length": config.actor.unroll_length,
            "learner": {k: getattr(config.learner, k)
                        for k in config.learner.__dataclass_fields__},
        }
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        os.replace(tmp, self.config_path)

    def latest_checkpoint(self):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # An unreadable state file is our error.
        try:
            return tf.train.latest_checkpoint(self.checkpoint_dir)
        finally:
            logger.setLevel(level)

    def _complete_checkpoints(self):
        """Prefixes with an index file (not the `_temp` of a killed save)."""
        if not os.path.isdir(self.checkpoint_dir):
            return []
        return sorted(n[:-len(".index")] for n in os.listdir(
            self.checkpoint_dir) if n.endswith(".index"))

    def restore(self, checkpoint, manager=None):
        """Restores the latest checkpoint into `checkpoint`; returns its path.

        Returns None when there is none. A corrupt or mismatched checkpoint
        raises `RunError` and changes nothing on disk. Leftovers of a save
        that was killed (`ckpt-N_temp/`, files the 'checkpoint' state file
        does not name) are ignored: the state file is only rewritten, by an
        atomic rename, once a save is complete.
        """
        del manager  # The manager reads the same state file.
        path = self.latest_checkpoint()
        if path is None:
            if self._complete_checkpoints():
                raise RunError(
                    f"{self.checkpoint_dir} has checkpoint files but its "
                    "'checkpoint' state file is missing or unreadable; it is "
                    "corrupt, so move it away to start afresh")
            return None
        status = None
        try:
            status = checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError) as e:
            raise RunError(
                f"checkpoint {path} was written by a different agent "
                f"({_first_line(e)}); use another --logdir or the agent and "
                "level it was trained with") from None
        except Exception as e:  # pylint: disable=broad-except
            # Truncated files raise IndexError, bad checksums DataLossError.
            others = [p for p in self._complete_checkpoints()
                      if p != os.path.basename(path)]
            hint = (f", or name an older one ({', '.join(others)}) in its "
                    "'checkpoint' file" if others else "")
            raise RunError(
                f"checkpoint {path} is corrupt ({type(e).__name__}: "
                f"{_first_line(e)}); move the checkpoints directory away to "
                f"start afresh{hint}") from None
        finally:
            if status is not None:  # test/export restore the agent only.
                status.expect_partial()
        return path

    def repair_progress(self):
        """Drops a half-written last line of progress.jsonl (a killed run)."""
        progress.repair(self.logdir)


def _first_line(error):
    text = str(error).strip()
    return (text.splitlines()[0][:200].rstrip(".") if text
            else type(error).__name__)
