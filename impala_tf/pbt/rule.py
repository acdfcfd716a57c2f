"""Population-based training's rule (paper Appendix F and Table D.1).

* Initial values (`sample_initial`): learning rate log-uniform in
  [5e-6, 5e-3], entropy cost log-uniform in [5e-5, 1e-2], RMSProp epsilon
  one of {1e-1, 1e-3, 1e-5, 1e-7}; the gradient-norm clip (evolved for the
  Atari-57 multi-task agent) starts at the flag's value.
* Ready (`Rule.ready`): after a burn-in of `burn_in_frames` (20M), every
  `ready_episodes` (5,000) new finished episodes.
* Exploit (`should_copy`): copy the picked member's weights and
  hyperparameters if its fitness is more than `copy_threshold` (0.05,
  absolute: 5 points of human-normalised score, `pbt_member.fitness`)
  higher.
* Explore (`explore`): copied or not, each evolved hyperparameter is
  multiplied by `perturb_factor` (1.2) or its inverse, with probability
  `perturb_prob` (1/3) and each direction equally likely. This is unbiased
  in log space, unlike the 1.2 / 0.8 of Jaderberg et al.

Pure Python and NumPy; every random draw comes from the `numpy.random.
Generator` passed in.
"""

import dataclasses
import math
import typing

# The hyperparameters a learner holds as variables
# (`hyperparameters.Hyperparameters`), any of which may be evolved.
EVOLVABLE = ("learning_rate", "entropy_cost", "epsilon", "max_grad_norm")
LEARNING_RATE_RANGE = (5e-6, 5e-3)
ENTROPY_COST_RANGE = (5e-5, 1e-2)
EPSILONS = (1e-1, 1e-3, 1e-5, 1e-7)
# Those Table D.1 draws a member's initial value of (`sample_initial`).
SAMPLED = ("learning_rate", "entropy_cost", "epsilon")
DEFAULT_EVOLVED = ("learning_rate", "entropy_cost", "epsilon")


@dataclasses.dataclass(frozen=True)
class Rule:
    """When a member evolves and how (flags of `impala-tf pbt`)."""
    burn_in_frames: int = 20_000_000
    ready_episodes: int = 5_000
    copy_threshold: float = 0.05
    perturb_factor: float = 1.2
    perturb_prob: float = 1.0 / 3.0
    # The hyperparameters explored (of `EVOLVABLE`).
    evolved: typing.Tuple[str, ...] = DEFAULT_EVOLVED

    def ready(self, frames, new_episodes):
        """True once past the burn-in with `ready_episodes` new episodes."""
        return (frames >= self.burn_in_frames
                and new_episodes >= self.ready_episodes)


def _log_uniform(rng, low, high):
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def sample_initial(rng, defaults, fixed=None):
    """A member's initial hyperparameters ({name: float}).

    rng: numpy Generator. defaults: {name: float} for every name that is not
    sampled (the gradient-norm clip). fixed: {name: float} that override
    the sample (`--pbt_hold`, `--pbt_fixed`). The learning rate,
    entropy cost and epsilon are drawn in that order whether fixed or not,
    so fixing one leaves the others' draws unchanged.
    """
    values = dict(defaults)
    values["learning_rate"] = _log_uniform(rng, *LEARNING_RATE_RANGE)
    values["entropy_cost"] = _log_uniform(rng, *ENTROPY_COST_RANGE)
    values["epsilon"] = float(EPSILONS[int(rng.integers(len(EPSILONS)))])
    values.update(fixed or {})
    return values


def should_copy(own_fitness, other_fitness, threshold):
    """True iff the other member has a fitness more than `threshold` above
    this one's (None: it has none yet, no copy)."""
    return (other_fitness is not None
            and other_fitness - own_fitness > threshold)


def explore(values, rng, rule):
    """Perturbed copy of {name: float}: each name in `rule.evolved`, with
    probability `rule.perturb_prob`, times `rule.perturb_factor` or divided
    by it (even odds); the others unchanged. Two draws per evolved name, in
    `rule.evolved` order."""
    out = dict(values)
    for name in rule.evolved:
        perturb = rng.random() < rule.perturb_prob
        up = rng.random() < 0.5
        if perturb:
            out[name] = (values[name] * rule.perturb_factor if up
                         else values[name] / rule.perturb_factor)
    return out
