"""A PBT member's side, inside its learner process: `PbtHook`.

The learner loop runs the hook after every step (`LearnerLoop(hooks=...)`,
between steps, in the loop's thread). After the burn-in it gathers the
returns of finished episodes (of fresh trajectories only, under replay);
once it has `ready_episodes` of them it

  1. computes the member's fitness (`fitness`);
  2. exploit: picks another member at random and, if that one's fitness is
     more than `copy_threshold` higher, loads its latest complete checkpoint
     into the running learner (`copy_from`);
  3. explore: multiplies each evolved hyperparameter by the factor or its
     inverse with the perturbation probability (`pbt.explore`) and sets them
     for the next update (`Learner.set_hyperparameters`);
  4. saves a checkpoint: the state after the copy and the exploration;
  5. writes its fitness record (`pbt_population.Population.write_fitness`;
     after the save, so others copy recent weights);
  6. appends the event to pbt.jsonl.

Save first, then log: a member killed before step 4 resumes from before
the copy and pbt.jsonl has no event of it; one killed after step 6
resumes from the checkpoint that the event names, with its weights and
hyperparameters; one killed in between resumes with the copy but without
its event. pbt.jsonl may miss an event; it never records a copy or a
change that a restarted member lost.
"""

import os
import shutil
import time

import numpy as np
import tensorflow as tf

from impala_tf.pbt import rule as pbt_rule
from impala_tf.runtime import progress


def fitness(returns_by_level, level_set):
    """The member's fitness from {level name: [episode returns]}.

    Human-normalised scores as fractions (0 = random, 1.0 = human), so that
    the absolute copy threshold of 0.05 is the paper's 5 points of it on
    every game and level (Appendix F): one Atari game or DMLab-30 level,
    its mean return normalised (`LevelSet.human_normalized`, uncapped); a
    suite's level set, its headline score (`LevelSet.headline_score`:
    DMLab-30's mean capped score, Atari-57's median). A level without
    reference scores (a `MODULE:FUNCTION` level): its mean return. Other
    level sets, or a headline not computable yet (DMLab-30 before every
    level has returns): the mean of the per-level mean returns.
    """
    means = {level: float(np.mean(r)) for level, r in returns_by_level.items()
             if r}
    if len(level_set.levels) == 1:
        [(level, mean)] = means.items()
        score = level_set.human_normalized(level, mean)
        return mean if score is None else score / 100.0
    headline = level_set.headline_score(means)
    if headline is not None:
        return headline / 100.0
    return float(np.mean(list(means.values())))


def copy_from(learner, prefix):
    """Loads a donor's checkpoint `prefix` into the running learner.

    Copied: the agent's weights, the optimizer's state (RMSProp mean
    squares, momentum) and the hyperparameters (Appendix F copies weights
    and hyperparameters). Kept: the member's own counters (frames, steps,
    skipped updates), so its frame budget, its place on the learning-rate
    schedule and its actors' policy versions go on from where they were.
    """
    status = tf.train.Checkpoint(
        agent=learner.agent, optimizer=learner.optimizer,
        hyperparameters=learner.hparams).restore(prefix)
    status.expect_partial()  # The counters are not read.
    status.assert_existing_objects_matched()


class PbtHook:
    """Callable(out) for `LearnerLoop(hooks=...)`: evolves this member.

    Args:
      learner: the member's `learner.Learner`.
      checkpoints: its `checkpoints.Checkpoints` (saved after each
        exploit and explore, before the fitness record and the event).
      population: the `pbt_population.Population`.
      member: this member's index.
      rule: a `pbt_rule.Rule`.
      level_set: the run's `envs.registry.LevelSet` (fitness, level names).
      rng: a `numpy.random.Generator` (the pick and the perturbations).
      say: callable(str) for one-line events.
    """

    def __init__(self, learner, checkpoints, population, member, rule,
                 level_set, rng, say=print):
        self._learner, self._checkpoints = learner, checkpoints
        self._population, self._member = population, member
        self._rule, self._levels, self._rng = rule, level_set, rng
        self._say = say
        self._returns = {name: [] for name in level_set.levels}
        self._count = 0

    def __call__(self, out):
        frames = int(out["num_frames"])
        if frames < self._rule.burn_in_frames:
            return
        for level_id, ret, _ in progress.finished_episodes(out):
            self._returns[self._levels.levels[level_id]].append(ret)
            self._count += 1
        if not self._rule.ready(frames, self._count):
            return
        value = fitness(self._returns, self._levels)
        self._returns = {name: [] for name in self._levels.levels}
        self._count = 0
        self.evolve(frames, value)

    def evolve(self, frames, value):
        """Steps 2-6 above for fitness `value` at `frames`; returns the
        event written to pbt.jsonl (dict)."""
        pop, me = self._population, self._member
        before = self._learner.hyperparameters()
        others = [m for m in range(pop.size) if m != me]
        picked = int(self._rng.choice(others))
        record = pop.read_fitness(picked)
        other = None if record is None else record["fitness"]
        copied, donor = False, None
        if pbt_rule.should_copy(value, other, self._rule.copy_threshold):
            scratch = os.path.join(pop.member_dir(me), "pbt_copy")
            donor = pop.copy_latest_checkpoint(picked, scratch)
            if donor is not None:
                copy_from(self._learner, donor)
                copied = True
                shutil.rmtree(scratch, ignore_errors=True)
        new = pbt_rule.explore(self._learner.hyperparameters(), self._rng,
                               self._rule)
        self._learner.set_hyperparameters(new)
        saved = self._checkpoints.save()  # Before anything says so.
        pop.write_fitness(me, {"member": me, "frames": frames,
                               "fitness": value, "time": time.time(),
                               "hyperparameters": before})
        event = {"time": time.time(), "member": me, "frames": frames,
                 "fitness": value, "picked": picked,
                 "picked_fitness": other, "copied": copied,
                 "donor_checkpoint": (os.path.basename(donor)
                                      if copied else None),
                 "checkpoint": saved and os.path.basename(saved),
                 "hyperparameters": new}
        pop.append_event(event)
        self._say(f"[pbt] member {me} at {frames:,} frames: fitness "
                  f"{value:.4g}; member {picked} "
                  + ("has no fitness yet" if other is None else
                     f"{other:.4g}") + ("; copied its weights and "
                                        "hyperparameters" if copied else "")
                  + "; now " + ", ".join(f"{k}={v:.3g}"
                                         for k, v in new.items()))
        return event
