"""Checkpoints of a run: what is saved, saving it, restoring it.

A checkpoint holds the agent, the optimizer (its slots), the learner's
counters and its hyperparameters (`make_checkpoint`; a checkpoint written
before the hyperparameters were variables restores with the config's). `Checkpoints` saves them under
`<logdir>/checkpoints` with `tf.train.CheckpointManager`, which writes the
files under temporary names, renames them, then atomically replaces the
'checkpoint' state file: a process killed mid-save leaves the previous
checkpoint current. A save is refused while some weight is not finite (the
last good checkpoint stays current).

With a `progress.EpisodeWindows` (the returns behind the progress
records' means), a checkpoint holds it too, as JSON (`_JsonState`), and
restoring puts it back; a checkpoint without it (written before) restores
everything else.

`restore` reads the checkpoint the state file names. Every problem (a
corrupt or missing state file, truncated or damaged files, a checkpoint of
another network) raises `runs.RunError` with one readable sentence and
changes nothing on disk.
"""

import json
import os

import tensorflow as tf

from impala_tf.runtime import runs


class _JsonState(tf.train.experimental.PythonState):
    """An object's `state()` dict in a checkpoint, as a JSON string; a
    restore calls its `load(dict)`."""

    def __init__(self, obj):
        self._obj = obj
        self.restored = False

    def serialize(self):
        return json.dumps(self._obj.state())

    def deserialize(self, string_value):
        self._obj.load(json.loads(string_value))
        self.restored = True


def make_checkpoint(learner, episodes=None):
    """A `tf.train.Checkpoint` of a `learner.Learner`'s state, and of
    `episodes` (a `progress.EpisodeWindows`) if given."""
    extra = {"episodes": _JsonState(episodes)} if episodes is not None else {}
    return tf.train.Checkpoint(
        agent=learner.agent, optimizer=learner.optimizer,
        num_steps=learner.num_steps, num_frames=learner.num_frames,
        nonfinite_skips=learner.nonfinite_skips,
        hyperparameters=learner.hparams, **extra)


def _predates_hyperparameters(path):
    """True for a checkpoint saved before hyperparameters were variables."""
    names = [name for name, _ in tf.train.list_variables(path)]
    return not any(n.startswith("hyperparameters/") for n in names)


def _assert_matched(status, checkpoint, path):
    """`assert_existing_objects_matched`, except that an older checkpoint
    (no hyperparameters, no optimizer epsilon) need only match the agent."""
    try:
        status.assert_existing_objects_matched()
    except AssertionError:
        agent = getattr(checkpoint, "agent", None)
        if agent is None or not _predates_hyperparameters(path):
            raise
        agent_only = tf.train.Checkpoint(agent=agent).restore(path)
        agent_only.expect_partial()
        agent_only.assert_existing_objects_matched()


def weights_finite(learner):
    """True if every float variable (weights, optimizer slots) is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(v)) for v in learner.variables
              if v.dtype.is_floating]
    return bool(tf.reduce_all(checks).numpy()) if checks else True


def latest(checkpoint_dir):
    """The path of the checkpoint the state file names, or None."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # An unreadable state file is our error.
    try:
        return tf.train.latest_checkpoint(checkpoint_dir)
    finally:
        logger.setLevel(level)


def _complete(checkpoint_dir):
    """Prefixes with an index file (not the `_temp` of a killed save)."""
    if not os.path.isdir(checkpoint_dir):
        return []
    return sorted(n[:-len(".index")] for n in os.listdir(checkpoint_dir)
                  if n.endswith(".index"))


def restore(checkpoint, checkpoint_dir):
    """Restores the latest checkpoint into `checkpoint`; returns its path.

    Returns None when there is none. A corrupt or mismatched checkpoint
    raises `runs.RunError` and changes nothing on disk. Leftovers of a save
    that was killed (`ckpt-N_temp/`, files the 'checkpoint' state file does
    not name) are ignored: the state file is only rewritten, by an atomic
    rename, once a save is complete. `checkpoint` may hold a part of what
    was saved (the agent alone, for evaluation).
    """
    path = latest(checkpoint_dir)
    if path is None:
        if _complete(checkpoint_dir):
            raise runs.RunError(
                f"{checkpoint_dir} has checkpoint files but its "
                "'checkpoint' state file is missing or unreadable; it is "
                "corrupt, so move it away to start afresh")
        return None
    status = None
    try:
        status = checkpoint.restore(path)
        _assert_matched(status, checkpoint, path)
    except (ValueError, AssertionError) as e:
        raise runs.RunError(
            f"checkpoint {path} was written by a different agent "
            f"({_first_line(e)}); use another --logdir or the agent and "
            "level it was trained with") from None
    except Exception as e:  # pylint: disable=broad-except
        # Truncated files raise IndexError, bad checksums DataLossError.
        others = [p for p in _complete(checkpoint_dir)
                  if p != os.path.basename(path)]
        hint = (f", or name an older one ({', '.join(others)}) in its "
                "'checkpoint' file" if others else "")
        raise runs.RunError(
            f"checkpoint {path} is corrupt ({type(e).__name__}: "
            f"{_first_line(e)}); move the checkpoints directory away to "
            f"start afresh{hint}") from None
    finally:
        if status is not None:  # test/export restore the agent only.
            status.expect_partial()
    return path


def _first_line(error):
    text = str(error).strip()
    return (text.splitlines()[0][:200].rstrip(".") if text
            else type(error).__name__)


class Checkpoints:
    """A learner's checkpoints in one directory: restore, then save.

    Args:
      checkpoint_dir: `runs.RunDirectory.checkpoint_dir`.
      learner: the `learner.Learner` saved and restored.
      say: callable(str) for one-line events.
      max_to_keep: checkpoints kept on disk.
      episodes: a `progress.EpisodeWindows` saved and restored with the
        learner, or None.
    """

    def __init__(self, checkpoint_dir, learner, say=print, max_to_keep=3,
                 episodes=None):
        self._dir, self._learner, self._say = checkpoint_dir, learner, say
        self._checkpoint = make_checkpoint(learner, episodes)
        self._episodes = episodes
        self.episodes_restored = False
        self._restored = None
        self._max_to_keep = max_to_keep
        self._manager = None  # Made at the first save, after `restore`.

    def restore(self):
        """Restores the latest checkpoint, if any; returns its path or None
        (`runs.RunError` on a bad one). Call it before the first `save`:
        it words a bad state file before the manager reads it.

        The learner must match the checkpoint; the episode windows are
        restored where the checkpoint has them (`episodes_restored`)."""
        # The learner alone must match: a checkpoint from before the
        # episode windows were saved restores too. Kept: variables made
        # after the restore (optimizer slots) take their values from it.
        self._restored = make_checkpoint(self._learner)
        path = restore(self._restored, self._dir)
        self.episodes_restored = False
        if path is not None and self._episodes is not None:
            state = _JsonState(self._episodes)
            tf.train.Checkpoint(episodes=state).restore(path).expect_partial()
            self.episodes_restored = state.restored
        return path

    @property
    def _saver(self):
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self._checkpoint, self._dir, max_to_keep=self._max_to_keep)
        return self._manager

    def save(self):
        """Saves unless a weight is not finite (then says so, keeps the
        last good one and returns None); returns the checkpoint's path.

        A checkpoint of the step already saved is not written again: its
        number is the step, and `tf.train.CheckpointManager` would rewrite
        the current checkpoint's files in place, which a kill could damage.
        Within a step the loop saves only after every change (the update,
        then the hooks: `learner_loop`), so the state is the same; the
        existing path is returned.
        """
        latest = self._saver.latest_checkpoint
        if not weights_finite(self._learner):
            self._say("[impala] NOT saving a checkpoint: some weights are "
                      f"not finite; the last good one is {latest}")
            return None
        if latest is not None and latest.endswith(
                f"-{int(self._learner.num_steps.numpy())}"):
            return latest
        return self._saver.save(checkpoint_number=self._learner.num_steps)
