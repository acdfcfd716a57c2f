r"""Population-based training: `python -m impala_tf.cli.pbt` (paper Appendix F).

    python -m impala_tf.cli.pbt --logdir=pop --population_size=4 --num_actors=1 \
        [experiment flags...]

`--logdir` is the population's directory (`pbt_population`); member i is an
ordinary training run in `<logdir>/member_<i>` (progress.jsonl, TensorBoard,
resume, `--mode=test`/`export` with `python -m impala_tf.cli.experiment`). Every
experiment flag is passed through to the members.

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
(`pbt_rule.sample_initial`), whatever the flags or a --flagfile set, unless
`--pbt_hold` names them: a held one starts at the flag's value (or the
level's default) in every member; `--pbt_fixed=i:name=value` fixes member
i's. One line at start says which were drawn and which held. Member i's
environments
are seeded with --seed + 1000 i. Its learner evolves them with
`pbt_member.PbtHook`; a restarted member keeps its evolved values (they are
in its checkpoints). With `--pbt_burn_in_frames` above
`--total_environment_frames` the members train without evolution.
"""

import os
import signal
import sys
import time

from absl import app
from absl import flags

from impala_tf.cli import experiment
from impala_tf.pbt import population as pbt_population
from impala_tf.pbt import rule as pbt_rule

FLAGS = flags.FLAGS
_RULE = lambda name: pbt_rule.Rule.__dataclass_fields__[name].default

flags.DEFINE_integer("population_size", None, "Members of the population "
                     "(the paper: 24).", lower_bound=2)
flags.DEFINE_integer("pbt_member", None, "Run only this member (the task "
                     "index of a Kubernetes Indexed Job or Slurm array); "
                     "unset: run and supervise every member here.",
                     lower_bound=0)
flags.DEFINE_integer("pbt_burn_in_frames", _RULE("burn_in_frames"),
                     "A member's frames before it first evolves.",
                     lower_bound=0)
flags.DEFINE_integer("pbt_ready_episodes", _RULE("ready_episodes"),
                     "New finished episodes between evolution steps.",
                     lower_bound=1)
flags.DEFINE_float("pbt_copy_threshold", _RULE("copy_threshold"),
                   "Copy the picked member if its fitness is more than this "
                   "(absolute) higher: fractions of human-normalised score "
                   "(0.05 = 5 points), or units of the mean return on a "
                   "level without human and random scores.",
                   lower_bound=0.0)
flags.DEFINE_float("pbt_perturb_factor", _RULE("perturb_factor"),
                   "Explore: multiply or divide by this.", lower_bound=1.0)
flags.DEFINE_float("pbt_perturb_prob", _RULE("perturb_prob"),
                   "Explore: probability of perturbing each hyperparameter.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_list("pbt_hyperparameters", None,
                  "Hyperparameters evolved, of "
                  f"{','.join(pbt_rule.EVOLVABLE)} (default: "
                  "learning_rate,entropy_cost,epsilon, and max_grad_norm "
                  "for atari57, Appendix F).")
flags.DEFINE_list("pbt_hold", [],
                  "Hyperparameters every member starts at the flag's value "
                  "(given, from a --flagfile, or the level's default) "
                  "instead of a Table D.1 draw, of "
                  f"{','.join(pbt_rule.SAMPLED)} (max_grad_norm is never "
                  "drawn). Whether they evolve is --pbt_hyperparameters.")
flags.DEFINE_multi_string("pbt_fixed", [], "MEMBER:NAME=VALUE: member's "
                          "initial value of a hyperparameter (repeatable).")
flags.DEFINE_bool("plot", False, "Draw pbt.jsonl to --plot_output and exit.")
flags.DEFINE_string("plot_output", None, "PNG written by --plot (default: "
                    "<logdir>/pbt.png).")


UsageError = experiment.UsageError  # Bad flags: one sentence, exit 2.


def rule_from_flags():
    """The `pbt_rule.Rule` of the flags (UsageError on a bad name)."""
    evolved = FLAGS.pbt_hyperparameters or (
        pbt_rule.DEFAULT_EVOLVED + (("max_grad_norm",)
                                    if FLAGS.level_name == "atari57" else ()))
    unknown = [n for n in evolved if n not in pbt_rule.EVOLVABLE]
    if unknown:
        raise UsageError(f"--pbt_hyperparameters: unknown {unknown}; known: "
                         f"{','.join(pbt_rule.EVOLVABLE)}")
    return pbt_rule.Rule(
        burn_in_frames=FLAGS.pbt_burn_in_frames,
        ready_episodes=FLAGS.pbt_ready_episodes,
        copy_threshold=FLAGS.pbt_copy_threshold,
        perturb_factor=FLAGS.pbt_perturb_factor,
        perturb_prob=FLAGS.pbt_perturb_prob, evolved=tuple(evolved))


def held():
    """{name: value} every member starts at: those `--pbt_hold` names and
    the hyperparameters Table D.1 does not draw, each at its flag's value
    or the level's default (UsageError on an unknown name)."""
    unknown = [n for n in FLAGS.pbt_hold if n not in pbt_rule.EVOLVABLE]
    if unknown:
        raise UsageError(f"--pbt_hold names {','.join(unknown)}, not one of "
                         f"{','.join(pbt_rule.EVOLVABLE)}")
    names = [n for n in pbt_rule.EVOLVABLE
             if n in FLAGS.pbt_hold or n not in pbt_rule.SAMPLED]
    values = {n: getattr(FLAGS, n) for n in names}
    if None in values.values():  # Unset: the level's default.
        from impala_tf.envs import registry
        try:
            defaults = registry.parse_level_name(FLAGS.level_name).defaults
        except registry.LevelError as e:
            raise UsageError(str(e)) from None
        values = {n: defaults[n] if v is None else v
                  for n, v in values.items()}
    return {n: float(v) for n, v in values.items()}


def drawn():
    """The hyperparameters each member draws from Table D.1."""
    return [n for n in pbt_rule.SAMPLED if n not in FLAGS.pbt_hold]


def fixed_values(member):
    """{name: value} fixed for `member`: `held()`, then its `--pbt_fixed`
    entries (UsageError if malformed)."""
    fixed = held()
    for entry in FLAGS.pbt_fixed:
        who, _, assignment = entry.partition(":")
        name, _, value = assignment.partition("=")
        try:
            who, value = int(who), float(value)
        except ValueError:
            raise UsageError(f"--pbt_fixed={entry} is not MEMBER:NAME=VALUE"
                             ) from None
        if name not in pbt_rule.EVOLVABLE or value < 0:
            raise UsageError(f"--pbt_fixed={entry}: NAME is one of "
                             f"{','.join(pbt_rule.EVOLVABLE)} and "
                             "VALUE >= 0")
        if who == member:
            fixed[name] = value
    return fixed


def initial_values(member):
    """Member `member`'s initial hyperparameters ({name: float}): Table
    D.1 draws of a generator seeded with (--seed, member), `fixed_values`
    where they apply."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    return pbt_rule.sample_initial(np.random.default_rng([FLAGS.seed, member]),
                                   {}, fixed_values(member))


def describe_initial(member=None):
    """One line: which initial hyperparameters are drawn from Table D.1
    and which held at the flags' values; for `member`, with its values."""
    if member is None:
        values, fixed, note = held(), [], " for each member"
        extra = ("; --pbt_fixed: " + ", ".join(FLAGS.pbt_fixed)
                 if FLAGS.pbt_fixed else "")
    else:
        values, note = initial_values(member), ""
        fixed = [e.partition(":")[2].partition("=")[0]
                 for e in FLAGS.pbt_fixed
                 if int(e.partition(":")[0]) == member]
        extra = ("; " + ", ".join(f"{n}={values[n]:.4g}" for n in fixed)
                 + " from --pbt_fixed" if fixed else "")
    show = lambda n: f"{n}={values[n]:.4g}" if n in values else n
    draws = [show(n) for n in drawn() if n not in fixed]
    holds = [show(n) for n in held() if n not in fixed]
    given = [n for n in drawn() if FLAGS[n].present and n not in fixed]
    return ("[pbt] " + (f"member {member}'s " if member is not None else "")
            + "initial hyperparameters: "
            + (", ".join(draws) + " drawn from Table D.1" + note
               if draws else "none drawn")
            + "; " + (", ".join(holds) or "none")
            + " held at the flags' values" + extra
            + ("; set by the flags but drawn: "
               + ", ".join(f"--{n}" for n in given)
               + f" (--pbt_hold={','.join(given)} would hold them)"
               if given else ""))


def _run_member(member):
    """Trains member `member` in this process (see the module doc)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from impala_tf.pbt import member as pbt_member
    rule = rule_from_flags()
    population = pbt_population.Population(FLAGS.logdir,
                                           FLAGS.population_size)
    initial = initial_values(member)
    print(describe_initial(member), flush=True)
    for name, value in initial.items():
        setattr(FLAGS, name, value)
    seed = FLAGS.seed
    FLAGS.seed = seed + 1000 * member
    FLAGS.logdir = population.member_dir(member)
    # A restarted member keeps its evolved values, not its initial draw.
    FLAGS.resume_hyperparameters = "checkpoint"

    def make_hooks(learner, checkpoints, say):
        from impala_tf.envs import registry
        rng = np.random.default_rng(  # A restart draws afresh.
            [seed, member, int(learner.num_frames.numpy())])
        return [pbt_member.PbtHook(
            learner, checkpoints, population, member, rule,
            registry.parse_level_name(FLAGS.level_name), rng, say)]

    experiment.main([sys.argv[0]], make_hooks=make_hooks)


def _supervise():
    """Runs every member here until all finish (see the module doc)."""
    from impala_tf.pbt import processes as pbt_supervisor
    population = pbt_population.Population(FLAGS.logdir,
                                           FLAGS.population_size)
    say = lambda m: print(m, flush=True)
    args = [a for a in sys.argv[1:] if not a.startswith("--pbt_member")]
    commands = {m: [sys.executable, "-m", "impala_tf.cli.pbt", *args,
                    f"--pbt_member={m}"]
                for m in range(FLAGS.population_size)}
    logs = {m: os.path.join(population.member_dir(m), "console.log")
            for m in commands}
    members = pbt_supervisor.MemberProcesses(commands, logs, say)
    stop = []
    handler = lambda signum, _: stop.append(signum)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    say(f"[pbt] {FLAGS.population_size} members in {FLAGS.logdir}; events "
        f"in {population.events_path}")
    say(describe_initial())
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
        experiment.fail(str(e))
    finally:
        members.stop()
    say(f"[pbt] every member finished; "
        f"python -m impala_tf.cli.pbt --plot --logdir={FLAGS.logdir} draws it")


def main(argv):
    if len(argv) > 1:
        experiment.fail(f"unexpected arguments {' '.join(argv[1:])!r}")
    try:
        if not FLAGS.logdir:
            raise UsageError("--logdir (the population's directory) is "
                             "required")
        if FLAGS.plot:
            from impala_tf.pbt import plot as pbt_plot
            out = FLAGS.plot_output or os.path.join(FLAGS.logdir, "pbt.png")
            torn = pbt_plot.plot(FLAGS.logdir, out)
            if torn:
                print(pbt_population.torn_lines_sentence(FLAGS.logdir, torn))
            print(f"[pbt] plot written to {out}")
            return
        if FLAGS.population_size is None:
            raise UsageError("--population_size is required")
        if FLAGS.mode != "train":
            raise UsageError(
                "python -m impala_tf.cli.pbt trains; test or export a member "
                "with python -m impala_tf.cli.experiment --mode=test "
                "--logdir=<logdir>/member_<i> and the same flags")
        learners = [h for h in FLAGS.learner_hosts.split(",") if h.strip()]
        if len(learners) > 1:
            raise UsageError(
                "population-based training runs one learner per member, "
                f"but --learner_hosts lists {len(learners)} (several "
                "synchronous learners per member are not supported)")
        if (FLAGS.pbt_member is not None
                and FLAGS.pbt_member >= FLAGS.population_size):
            raise UsageError(f"--pbt_member={FLAGS.pbt_member} but the "
                             f"population has {FLAGS.population_size}")
        rule_from_flags()
        for m in range(FLAGS.population_size):
            fixed_values(m)
    except (UsageError, ValueError) as e:
        experiment.fail(str(e))
    if FLAGS.pbt_member is None:
        _supervise()
    else:
        _run_member(FLAGS.pbt_member)


if __name__ == "__main__":
    app.run(main, flags_parser=experiment.parse_flags)
