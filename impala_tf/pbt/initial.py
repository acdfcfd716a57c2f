"""A population's initial hyperparameters, and a member's run config.

`InitialHyperparameters` says what each member starts at (paper Appendix
F): the learning rate, entropy cost and epsilon drawn from Table D.1's
ranges by a generator seeded with (seed, member), unless held (every member
starts at the run's value, or the level's default) or fixed for one member;
the gradient-norm clip is never drawn. `member_config` applies a member's
values, seed and directory to the run's `config.TrainConfig`.

No TensorFlow.
"""

import dataclasses

import numpy as np

from impala_tf.errors import UsageError
from impala_tf.pbt import rule as pbt_rule

SEED_STRIDE = 1000  # Member i's environments: seed + 1000 i.


@dataclasses.dataclass(frozen=True)
class Fixed:
    """One `--pbt_fixed` entry: member's initial `name` is `value`."""
    member: int
    name: str
    value: float
    text: str  # As given: MEMBER:NAME=VALUE.


def parse_fixed(entries):
    """`Fixed` of each MEMBER:NAME=VALUE string (UsageError if one is
    malformed, names no evolvable hyperparameter or is negative)."""
    out = []
    for entry in entries:
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
        out.append(Fixed(who, name, value, entry))
    return out


class InitialHyperparameters:
    """Each member's initial hyperparameters.

    Args:
      seed: the run's seed (--seed); member m draws with (seed, m).
      values: {name: float or None} of each of `pbt_rule.EVOLVABLE`: the
        run's value (its flag), None where the level's default applies.
      level_defaults: callable() -> {name: float}, the level's defaults,
        called only if a held value is None.
      hold: names every member starts at `values` instead of a draw.
      fixed: MEMBER:NAME=VALUE strings (`parse_fixed`).
      given: names whose value the user set (said when drawn anyway).
    Raises:
      UsageError: `hold` names an unknown hyperparameter, or a `fixed`
        entry is malformed.
    """

    def __init__(self, seed, values, level_defaults, hold=(), fixed=(),
                 given=()):
        unknown = [n for n in hold if n not in pbt_rule.EVOLVABLE]
        if unknown:
            raise UsageError(f"--pbt_hold names {','.join(unknown)}, not one "
                             f"of {','.join(pbt_rule.EVOLVABLE)}")
        self._seed, self._values = seed, dict(values)
        self._level_defaults = level_defaults
        self._hold = tuple(hold)
        self._fixed = parse_fixed(fixed)
        self._given = tuple(given)

    def held(self):
        """{name: float} every member starts at: the held names and those
        Table D.1 does not draw, at the run's value or the level's
        default."""
        names = [n for n in pbt_rule.EVOLVABLE
                 if n in self._hold or n not in pbt_rule.SAMPLED]
        values = {n: self._values[n] for n in names}
        if None in values.values():
            defaults = self._level_defaults()
            values = {n: defaults[n] if v is None else v
                      for n, v in values.items()}
        return {n: float(v) for n, v in values.items()}

    def drawn(self):
        """The names each member draws from Table D.1."""
        return [n for n in pbt_rule.SAMPLED if n not in self._hold]

    def fixed_values(self, member):
        """{name: float} fixed for `member`: `held()`, then its fixed
        entries."""
        fixed = self.held()
        fixed.update((f.name, f.value) for f in self._fixed
                     if f.member == member)
        return fixed

    def values(self, member):
        """Member `member`'s initial hyperparameters ({name: float}): Table
        D.1 draws of a generator seeded with (seed, member), the fixed
        values where they apply."""
        rng = np.random.default_rng([self._seed, member])
        return pbt_rule.sample_initial(rng, {}, self.fixed_values(member))

    def describe(self, member=None):
        """One line: which initial hyperparameters are drawn from Table D.1
        and which held at the run's values; for `member`, with its
        values."""
        if member is None:
            values, fixed, note = self.held(), [], " for each member"
            extra = ("; --pbt_fixed: " + ", ".join(f.text for f in self._fixed)
                     if self._fixed else "")
        else:
            values, note = self.values(member), ""
            fixed = [f.name for f in self._fixed if f.member == member]
            extra = ("; " + ", ".join(f"{n}={values[n]:.4g}" for n in fixed)
                     + " from --pbt_fixed" if fixed else "")
        show = lambda n: f"{n}={values[n]:.4g}" if n in values else n
        draws = [show(n) for n in self.drawn() if n not in fixed]
        holds = [show(n) for n in self.held() if n not in fixed]
        given = [n for n in self.drawn() if n in self._given
                 and n not in fixed]
        return ("[pbt] " + (f"member {member}'s " if member is not None
                            else "")
                + "initial hyperparameters: "
                + (", ".join(draws) + " drawn from Table D.1" + note
                   if draws else "none drawn")
                + "; " + (", ".join(holds) or "none")
                + " held at the flags' values" + extra
                + ("; set by the flags but drawn: "
                   + ", ".join(f"--{n}" for n in given)
                   + f" (--pbt_hold={','.join(given)} would hold them)"
                   if given else ""))


def member_config(config, member, values, logdir):
    """The `config.TrainConfig` of population member `member`: `config`
    (the run's) with the hyperparameters `values` ({name: float} of
    `pbt_rule.EVOLVABLE`, `InitialHyperparameters.values`), environments
    seeded with seed + SEED_STRIDE x member, the run directory `logdir`,
    and a resumed member keeping its checkpoint's evolved hyperparameters
    rather than `values`."""
    learner = dataclasses.replace(config.learner, **values)
    actor = dataclasses.replace(
        config.actor, seed=config.actor.seed + SEED_STRIDE * member)
    return dataclasses.replace(config, learner=learner, actor=actor,
                               logdir=logdir,
                               resume_hyperparameters="checkpoint")
