r"""Population-based training (paper Appendix F).

    impala-tf pbt --logdir=pop --population_size=4 \
        --num_actors=1 [trainer flags...]
    impala-tf pbt ...                                  (the same)

`--logdir` is the population's directory (`pbt_population`); member i is an
ordinary training run in `<logdir>/member_<i>` (progress.jsonl, TensorBoard,
resume, `impala-tf test|export`). Every trainer flag is passed through to
the members.

* Without `--pbt_member`, this process starts every member as a process on
  this machine and supervises them (`pbt_supervisor`): a member that dies is
  restarted and resumes from its checkpoint; Ctrl-C or SIGTERM stops them
  all, each saving a checkpoint.
* With `--pbt_member=i` it runs member i only, in this process: one task of
  a Kubernetes Indexed Job or a Slurm array over a shared filesystem.
* With `--plot` it draws each member's fitness and hyperparameters against
  frames from pbt.jsonl (`pbt_plot`).

A member's initial learning rate, entropy cost and epsilon are drawn from
Table D.1's ranges by a generator seeded with (--seed, i)
(`pbt.initial`), whatever the flags or a --flagfile set, unless
`--pbt_hold` names them: a held one starts at the flag's value (or the
level's default) in every member; `--pbt_fixed=i:name=value` fixes member
i's. One line at start says which were drawn and which held. A member is
the trainer's config built from the flags with its own hyperparameters,
seed (--seed + 1000 i, its environments) and directory, trained by
`trainer.train` in this process; its learner evolves the hyperparameters
with `pbt_member.PbtHook`, and a restarted member keeps its evolved values
(they are in its checkpoints). With `--pbt_burn_in_frames` above
`--total_environment_frames` the members train without evolution.
"""


import os
import signal
import sys
import time

from absl import app
from absl import flags

from impala_tf import errors
from impala_tf.cli import experiment
from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf.errors import UsageError
from impala_tf.pbt import initial as pbt_initial
from impala_tf.pbt import population as pbt_population
from impala_tf.pbt import rule as pbt_rule

# pylint: disable=import-outside-toplevel  TensorFlow loads when needed.

FLAGS = flags.FLAGS
_RULE = lambda name: pbt_rule.Rule.__dataclass_fields__[name].default


def define_flags(flag_values=FLAGS):
    """Defines the trainer's flags and this tool's in `flag_values`;
    returns it."""
    train_flags.define_train_flags(flag_values)
    kw = {"flag_values": flag_values}
    flags.DEFINE_integer("population_size", None, "Members of the "
                         "population (the paper: 24).", lower_bound=2, **kw)
    flags.DEFINE_integer("pbt_member", None, "Run only this member (the "
                         "task index of a Kubernetes Indexed Job or Slurm "
                         "array); unset: run and supervise every member "
                         "here.", lower_bound=0, **kw)
    flags.DEFINE_integer("pbt_burn_in_frames", _RULE("burn_in_frames"),
                         "A member's frames before it first evolves.",
                         lower_bound=0, **kw)
    flags.DEFINE_integer("pbt_ready_episodes", _RULE("ready_episodes"),
                         "New finished episodes between evolution steps.",
                         lower_bound=1, **kw)
    flags.DEFINE_float("pbt_copy_threshold", _RULE("copy_threshold"),
                       "Copy the picked member if its fitness is more than "
                       "this (absolute) higher: fractions of "
                       "human-normalised score (0.05 = 5 points), or units "
                       "of the mean return on a level without human and "
                       "random scores.", lower_bound=0.0, **kw)
    flags.DEFINE_float("pbt_perturb_factor", _RULE("perturb_factor"),
                       "Explore: multiply or divide by this.",
                       lower_bound=1.0, **kw)
    flags.DEFINE_float("pbt_perturb_prob", _RULE("perturb_prob"),
                       "Explore: probability of perturbing each "
                       "hyperparameter.", lower_bound=0.0, upper_bound=1.0,
                       **kw)
    flags.DEFINE_list("pbt_hyperparameters", None,
                      "Hyperparameters evolved, of "
                      f"{','.join(pbt_rule.EVOLVABLE)} (default: "
                      "learning_rate,entropy_cost,epsilon, and "
                      "max_grad_norm on Atari levels, Appendix F).", **kw)
    flags.DEFINE_list("pbt_hold", [],
                      "Hyperparameters every member starts at the flag's "
                      "value (given, from a --flagfile, or the level's "
                      "default) instead of a Table D.1 draw, of "
                      f"{','.join(pbt_rule.SAMPLED)} (max_grad_norm is "
                      "never drawn). Whether they evolve is "
                      "--pbt_hyperparameters.", **kw)
    flags.DEFINE_multi_string("pbt_fixed", [], "MEMBER:NAME=VALUE: "
                              "member's initial value of a hyperparameter "
                              "(repeatable).", **kw)
    flags.DEFINE_bool("plot", False, "Draw pbt.jsonl to --plot_output and "
                      "exit.", **kw)
    flags.DEFINE_string("plot_output", None, "PNG written by --plot "
                        "(default: <logdir>/pbt.png).", **kw)
    return flag_values


def _is_atari(level_name):
    """Whether `level_name` names Atari levels (a bad name: False; the
    trainer refuses it in one sentence later)."""
    from impala_tf.envs import registry
    try:
        return registry.parse_level_name(level_name).kind == "atari"
    except registry.LevelError:
        return False


def rule_from_flags(flag_values):
    """The `pbt_rule.Rule` of the flags (UsageError on a bad name)."""
    fv = flag_values
    evolved = fv.pbt_hyperparameters or (
        pbt_rule.DEFAULT_EVOLVED + (("max_grad_norm",)
                                    if _is_atari(fv.level_name) else ()))
    unknown = [n for n in evolved if n not in pbt_rule.EVOLVABLE]
    if unknown:
        raise UsageError(f"--pbt_hyperparameters: unknown {unknown}; known: "
                         f"{','.join(pbt_rule.EVOLVABLE)}")
    return pbt_rule.Rule(
        burn_in_frames=fv.pbt_burn_in_frames,
        ready_episodes=fv.pbt_ready_episodes,
        copy_threshold=fv.pbt_copy_threshold,
        perturb_factor=fv.pbt_perturb_factor,
        perturb_prob=fv.pbt_perturb_prob, evolved=tuple(evolved))


def initial_from_flags(flag_values):
    """The `pbt_initial.InitialHyperparameters` of the flags: --seed,
    each evolvable hyperparameter's flag, --pbt_hold and --pbt_fixed
    (UsageError on a bad one)."""
    fv = flag_values

    def level_defaults():
        from impala_tf.envs import registry
        try:
            return registry.parse_level_name(fv.level_name).defaults
        except registry.LevelError as e:
            raise UsageError(str(e)) from None

    return pbt_initial.InitialHyperparameters(
        seed=fv.seed, values={n: fv[n].value for n in pbt_rule.EVOLVABLE},
        level_defaults=level_defaults, hold=fv.pbt_hold, fixed=fv.pbt_fixed,
        given=[n for n in pbt_rule.EVOLVABLE if fv[n].present])


def build_member(flag_values, member):
    """(the member's `config.TrainConfig`, its `make_hooks` for
    `trainer.train`): the trainer's config of the flags with member
    `member`'s initial hyperparameters, seed and directory. Raises on bad
    input, as `train_config.build`."""
    import numpy as np
    from impala_tf.pbt import member as pbt_member
    fv = flag_values
    rule = rule_from_flags(fv)
    population = pbt_population.Population(fv.logdir, fv.population_size)
    initial = initial_from_flags(fv).values(member)
    config = pbt_initial.member_config(
        train_config.build(fv), member, initial,
        population.member_dir(member))

    def make_hooks(learner, checkpoints, say):
        rng = np.random.default_rng(  # A restart draws afresh.
            [fv.seed, member, int(learner.num_frames.numpy())])
        return [pbt_member.PbtHook(
            learner, checkpoints, population, member, rule,
            config.actor.level_set, rng, say)]

    return config, make_hooks


def _run_member(flag_values, member):
    """Trains member `member` in this process (see the module doc)."""
    print(initial_from_flags(flag_values).describe(member), flush=True)
    experiment.set_learner_threads(flag_values)
    built = []

    def build():
        config, make_hooks = build_member(flag_values, member)
        built.append(make_hooks)
        return config

    def run(config):
        from impala_tf.runtime import trainer
        trainer.train(config, make_hooks=built[0])

    experiment.run_guarded(build, run)


def _supervise(flag_values):
    """Runs every member here until all finish (see the module doc)."""
    from impala_tf.pbt import processes as pbt_supervisor
    fv = flag_values
    population = pbt_population.Population(fv.logdir, fv.population_size)
    say = lambda m: print(m, flush=True)
    args = [a for a in sys.argv[1:] if not a.startswith("--pbt_member")]
    commands = {m: [sys.executable, "-m", "impala_tf.cli.pbt", *args,
                    f"--pbt_member={m}"]
                for m in range(fv.population_size)}
    logs = {m: os.path.join(population.member_dir(m), "console.log")
            for m in commands}
    members = pbt_supervisor.MemberProcesses(commands, logs, say)
    stop = []
    handler = lambda signum, _: stop.append(signum)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    say(f"[pbt] {fv.population_size} members in {fv.logdir}; events "
        f"in {population.events_path}")
    say(initial_from_flags(fv).describe())
    members.start()
    printer = pbt_supervisor.EventPrinter(population, say)
    try:
        while members.poll():
            if stop:
                say(f"[pbt] {signal.Signals(stop[0]).name}: stopping every "
                    "member (each saves a checkpoint)")
                members.stop()
                sys.exit(130 if stop[0] == signal.SIGINT else 143)
            printer.poll()
            time.sleep(1.0)
    except pbt_supervisor.PopulationFailed as e:
        errors.fail(str(e), hard=True)
    finally:
        members.stop()
    say(f"[pbt] every member finished; impala-tf pbt --plot "
        f"--logdir={fv.logdir} draws it")


def _plot(flag_values):
    from impala_tf.pbt import plot as pbt_plot
    fv = flag_values
    out = fv.plot_output or os.path.join(fv.logdir, "pbt.png")
    torn = pbt_plot.plot(fv.logdir, out)
    if torn:
        print(pbt_population.torn_lines_sentence(fv.logdir, torn))
    print(f"[pbt] plot written to {out}")


def check(flag_values):
    """Raises UsageError if the flags cannot make a population."""
    fv = flag_values
    if fv.population_size is None:
        raise UsageError("--population_size is required")
    if fv.mode != "train":
        raise UsageError(
            "impala-tf pbt trains; test or export a member with impala-tf "
            "test (or export) --logdir=<logdir>/member_<i> and the same "
            "flags")
    if fv.job_name == "actor":
        raise UsageError(
            "impala-tf pbt runs the members' learners; start a remote "
            "actor with impala-tf train --job_name=actor and the member's "
            "--learner_address")
    learners = [h for h in fv.learner_hosts.split(",") if h.strip()]
    if len(learners) > 1:
        raise UsageError(
            "population-based training runs one learner per member, "
            f"but --learner_hosts lists {len(learners)} (several "
            "synchronous learners per member are not supported)")
    if fv.pbt_member is not None and fv.pbt_member >= fv.population_size:
        raise UsageError(f"--pbt_member={fv.pbt_member} but the "
                         f"population has {fv.population_size}")
    rule_from_flags(fv)
    initial_from_flags(fv).held()


def main(argv):
    if len(argv) > 1:
        errors.fail(f"unexpected arguments {' '.join(argv[1:])!r}", hard=True)
    try:
        if not FLAGS.logdir:
            raise UsageError("--logdir (the population's directory) is "
                             "required")
        if FLAGS.plot:
            _plot(FLAGS)
            return
        check(FLAGS)
    except (UsageError, ValueError) as e:
        errors.fail(str(e), hard=True)
    if FLAGS.pbt_member is None:
        _supervise(FLAGS)
    else:
        _run_member(FLAGS, FLAGS.pbt_member)


if __name__ == "__main__":
    # As `impala-tf` does (cli/main.py): TensorFlow's C++ start-up lines
    # hidden, at the level this process inherits (TF_CPP_MIN_LOG_LEVEL, 0
    # under `impala-tf --show_tf_logs pbt`); members, started this way,
    # write their console.log through their own filter.
    from impala_tf.cli import console  # pylint: disable=g-import-not-at-top
    console.quiet_tensorflow(show=False)
    define_flags()
    app.run(main, flags_parser=experiment.parse_flags)
