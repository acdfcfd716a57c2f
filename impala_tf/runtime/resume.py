"""What a resumed run trains with: the flags, the checkpoint, or the start.

A run directory that already holds a checkpoint is resumed (`trainer`).
Three things decide what the resumed run trains with, and this module is
the one place each is decided:

  * The learning-rate horizon (`LearnerConfig.learning_rate_decay_frames`,
    the frame where the linear decay reaches 0) is fixed when the run
    starts: a run given none takes `total_environment_frames`, and
    run_config.json records the value. A resumed run keeps the recorded
    horizon unless `--learning_rate_decay_frames` is given, so resuming
    with a larger `--total_environment_frames` trains longer at the rates
    the schedule had reached instead of raising the learning rate again
    (`resolve_horizon`, before the learner is built).
  * The evolvable hyperparameters (`hyperparameters.NAMES`: learning rate,
    entropy cost, RMSProp epsilon, gradient-norm clip) are learner
    variables saved in checkpoints. `--resume_hyperparameters=flags` (the
    default) sets them from the flags after the restore, as a run did
    before they were variables; `checkpoint` keeps the checkpoint's
    (population-based training: a member's evolved values). Either way one
    line names every value that differs, and the config returned carries
    the values trained with (`reconcile_hyperparameters`, after the
    restore).
  * run_config.json records that config (`runs.RunDirectory.write_config`),
    with a history of what changed at each resume.

Plain Python over the learner's `hyperparameters()` and
`set_hyperparameters()`; no TensorFlow is imported here.
"""

import dataclasses
import math

POLICIES = ("flags", "checkpoint")


def resolve_horizon(learner_config, saved_config, resuming):
    """The learner config with `learning_rate_decay_frames` set.

    learner_config: the `LearnerConfig` from the flags (its horizon None
      when `--learning_rate_decay_frames` was not given).
    saved_config: the run directory's run_config.json (dict) or None.
    resuming: whether a checkpoint will be restored.

    Returns (config, note): note is a line to print, or None. Given
    explicitly, the flag wins; else a resumed run keeps the horizon its
    run_config.json records (that of a run started before horizons were
    recorded: its `learning_rate_decay_frames`, or its
    `total_environment_frames`); else the run's own
    `total_environment_frames`.
    """
    c = learner_config
    if c.learning_rate_decay_frames is not None:
        return c, None
    saved = (saved_config or {}).get("learner", {}) if resuming else {}
    kept = (saved.get("learning_rate_decay_frames")
            or saved.get("total_environment_frames"))
    if not kept:
        return dataclasses.replace(
            c, learning_rate_decay_frames=c.total_environment_frames), None
    note = None
    if int(kept) != c.total_environment_frames:
        note = (f"[impala] learning rate: decays to 0 at {int(kept):,} "
                "frames, as when the run started (--total_environment_"
                f"frames={c.total_environment_frames:,} does not move it; "
                "--learning_rate_decay_frames does)")
    return dataclasses.replace(c, learning_rate_decay_frames=int(kept)), note


def reconcile_hyperparameters(learner_config, learner, policy):
    """After a restore: the evolvable hyperparameters to train with.

    learner_config: the `LearnerConfig` from the flags.
    learner: the restored `learner.Learner` (`hyperparameters()`,
      `set_hyperparameters()`).
    policy: "flags" (set the learner's from the flags) or "checkpoint"
      (keep the learner's).

    Returns (config, note): the config with the values trained with, and a
    line naming each value that differs between the checkpoint and the
    flags (None when none does). Raises ValueError for an unknown policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"--resume_hyperparameters must be one of "
                         f"{', '.join(POLICIES)}, got {policy!r}")
    held = learner.hyperparameters()
    flags = {n: float(getattr(learner_config, n)) for n in held}
    differ = [n for n in held
              if not math.isclose(held[n], flags[n], rel_tol=1e-12,
                                  abs_tol=0.0)]
    if not differ:
        return learner_config, None
    changes = ", ".join(f"{n} {held[n]:.6g} -> {flags[n]:.6g}"
                        if policy == "flags" else
                        f"{n}={held[n]:.6g} (flag {flags[n]:.6g})"
                        for n in differ)
    if policy == "flags":
        learner.set_hyperparameters({n: flags[n] for n in differ})
        return learner_config, ("[impala] resumed with the flags' "
                                "hyperparameters (checkpoint -> flags): "
                                + changes)
    return (dataclasses.replace(learner_config,
                                **{n: held[n] for n in differ}),
            "[impala] resumed with the checkpoint's hyperparameters "
            "(--resume_hyperparameters=checkpoint): " + changes)
