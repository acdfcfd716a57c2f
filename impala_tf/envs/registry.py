"""`--level_name` -> a set of levels, how to build them, and their defaults.

Accepted names:
  * `atari/<game>` (snake_case, e.g. `atari/pong`): one Atari game with the
    paper's Table G.1 preprocessing and the game's minimal action set.
  * `atari57`: all 57 games for one multi-task agent (full 18 actions).
  * `dmlab/<level>` or a DMLab-30 release name (e.g. `rooms_watermaze`):
    one DeepMind Lab level. `dmlab30`: the 30 levels, multi-task.
  * `MODULE:FUNCTION`: a user's callable returning a `dm_env.Environment`
    with a uint8 image observation [H, W, C] (or a dict with 'frame' and an
    optional 'instruction' string) and a discrete action spec. It is called
    with the keyword arguments it accepts among `seed` (int) and `is_test`
    (bool).

A `LevelSet` is picklable: actor processes rebuild their environments from it.
"""

import dataclasses
import difflib
import importlib
import inspect
import typing

import dmlab30
import atari57
from atari57 import evaluation as atari_evaluation


class LevelError(ValueError):
    """A `--level_name` that cannot be resolved; the message is one sentence."""


# Defaults per suite (paper Table G.1 for Atari; the release for DMLab).
ATARI_DEFAULTS = dict(
    agent="shallow", use_lstm=False, unroll_length=20, batch_size=32,
    learning_rate=0.0006, epsilon=0.01, entropy_cost=0.01,
    reward_clipping="abs_one", total_environment_frames=int(200e6),
    num_action_repeats=4,
    # The fastest setting of benchmarks/throughput.py on 2 CPUs short of a
    # policy lag of ~8 learner steps (128 was ~5% faster; benchmarks/README).
    envs_per_actor=64)
DMLAB_DEFAULTS = dict(
    agent="deep", use_lstm=True, unroll_length=100, batch_size=32,
    learning_rate=0.00048, epsilon=0.1, entropy_cost=0.00025,
    reward_clipping="abs_one", total_environment_frames=int(1e9),
    num_action_repeats=4, envs_per_actor=1)
DMLAB30_DEFAULTS = dict(
    DMLAB_DEFAULTS, learning_rate=0.00031866995608948655,
    entropy_cost=0.0033391318945337044, reward_clipping="soft_asymmetric",
    total_environment_frames=int(10e9))
CUSTOM_DEFAULTS = dict(
    agent="shallow", use_lstm=True, unroll_length=20, batch_size=32,
    learning_rate=0.0006, epsilon=0.01, entropy_cost=0.01,
    reward_clipping="abs_one", total_environment_frames=int(10e6),
    num_action_repeats=1,
    # Stepped together by envs.batch.DmEnvBatch, one policy call per step:
    # the toy task (1 action repeat, 2 actors, 2 CPUs shared with another
    # training run) trained at ~1,700 agent steps/s with 32, ~1,100 with 16
    # and ~300 with 1 per actor.
    envs_per_actor=32)

# The user options (flags) each suite's environments take as keyword
# arguments, where given (`suite_env_kwargs`).
SUITE_OPTIONS = {
    "atari": ("sticky_action_prob", "num_action_repeats"),
    "dmlab": ("num_action_repeats", "level_cache_dir", "dataset_path"),
    "custom": (),
}


def suite_env_kwargs(kind, **options):
    """Environment keyword arguments for a `kind` suite from user options.

    Keeps the options `SUITE_OPTIONS[kind]` names whose value is not None
    (a user's `MODULE:FUNCTION` takes none of them).
    """
    return {k: v for k, v in options.items()
            if k in SUITE_OPTIONS[kind] and v is not None}


@dataclasses.dataclass(frozen=True)
class LevelSet:
    """What `--level_name` names.

    Attributes:
      name: the flag value.
      kind: 'atari', 'dmlab' or 'custom'.
      levels: level names (one for single-task), used in statistics.
      defaults: flag defaults for this suite.
      env_kwargs: extra keyword arguments for the environment constructor.
    """
    name: str
    kind: str
    levels: typing.Tuple[str, ...]
    defaults: typing.Dict[str, typing.Any]
    env_kwargs: typing.Dict[str, typing.Any] = dataclasses.field(
        default_factory=dict)

    @property
    def is_multitask(self):
        return len(self.levels) > 1

    @property
    def score_column(self):
        """Column name of per-level scores in CSVs ('game' or 'level')."""
        return "game" if self.kind == "atari" else "level"

    def level_for(self, index):
        """Level of the `index`-th environment (round-robin over levels, as
        `atari57.assign_games`: a fixed number of environments per level
        when their count is a multiple of the number of levels)."""
        return index % len(self.levels)

    def test_level(self, level):
        """The level evaluated in test mode (DMLab-30 `_train` -> `_test`)."""
        if self.kind == "dmlab" and level in dmlab30.LEVEL_MAPPING:
            return dmlab30.LEVEL_MAPPING[level]
        return level

    def suite_scores(self, per_level_means):
        """Suite-level scores from {level: mean return} (may be partial).

        dmlab30: the DMLab-30 mean capped and uncapped human-normalised
        scores (%) once every level has returns; atari57: the median and
        mean human-normalised score (%) over the games with returns.
        Returns {} for other level sets.
        """
        if self.name == "dmlab30":
            out = {"dmlab30_levels_with_returns": len(per_level_means)}
            if len(per_level_means) == len(self.levels):
                out["dmlab30_mean_capped"] = (
                    dmlab30.compute_human_normalized_score(per_level_means))
                out["dmlab30_mean_uncapped"] = (
                    dmlab30.compute_human_normalized_score(
                        per_level_means, per_level_cap=None))
            return out
        if self.name == "atari57" and per_level_means:
            import numpy as np
            scores = [atari57.human_normalized_score(g, r)
                      for g, r in per_level_means.items()]
            return {"atari57_games_with_returns": len(scores),
                    "atari57_median_human_normalized": float(
                        np.median(scores)),
                    "atari57_mean_human_normalized": float(np.mean(scores))}
        return {}

    def human_normalized(self, level, mean_return):
        """`level`'s human-normalised score in % (uncapped: 0 = random, 100
        = human) where the project has its human and random scores (an
        Atari-57 game, a DMLab-30 level); None for any other level."""
        if self.kind == "atari" and level in atari57.ALL_GAMES:
            return atari57.human_normalized_score(level, mean_return)
        if self.kind == "dmlab":
            try:
                return dmlab30.human_normalized_score(level, mean_return)
            except ValueError:  # Not a DMLab-30 level.
                return None
        return None

    def make(self, level_id, seed, is_test=False):
        """Builds the `dm_env.Environment` for `levels[level_id]`."""
        level = self.levels[level_id]
        if self.kind == "atari":
            from impala_tf.envs import atari
            kwargs = (atari_evaluation.evaluation_env_kwargs if is_test
                      else atari_evaluation.training_env_kwargs)(
                full_action_space=self.is_multitask)
            kwargs.update(self.env_kwargs)
            return atari.AtariEnvironment(level, seed=seed, **kwargs)
        if self.kind == "dmlab":
            from impala_tf.envs import dmlab
            return dmlab.DmLabEnvironment(
                self.test_level(level) if is_test else level, seed=seed,
                is_test=is_test, **self.env_kwargs)
        return _call_user_factory(_resolve_callable(level), seed, is_test)


def _resolve_callable(spec):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LevelError(
            f"cannot import module '{module_name}' named by --level_name="
            f"{spec} ({e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise LevelError(
            f"module '{module_name}' has no callable '{attr}' "
            f"(--level_name={spec})")
    return fn


def _call_user_factory(fn, seed, is_test):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (("seed", seed), ("is_test", is_test))
              if accepts_any or k in params}
    return fn(**kwargs)


def _unknown(kind, name, choices):
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return LevelError(f"unknown {kind} '{name}'{hint}")


def parse_level_name(level_name, **options):
    """Resolves a `--level_name` value into a `LevelSet`.

    `options` (e.g. sticky_action_prob=0.25, level_cache_dir=None) become
    the level set's `env_kwargs` as far as its suite takes them
    (`suite_env_kwargs`).

    Raises:
      LevelError: with one readable sentence for an unknown or malformed
        name (no environment is built here, except importing a user module).
    """
    name = (level_name or "").strip()
    if not name:
        raise LevelError("--level_name is empty")
    if name == "atari57":
        return LevelSet(name, "atari", tuple(atari57.ALL_GAMES),
                        dict(ATARI_DEFAULTS, agent="deep"),
                        suite_env_kwargs("atari", **options))
    if name.startswith("atari/"):
        game = name[len("atari/"):]
        if game not in atari57.ALL_GAMES:
            raise _unknown("Atari game", game, atari57.ALL_GAMES)
        return LevelSet(name, "atari", (game,), ATARI_DEFAULTS,
                        suite_env_kwargs("atari", **options))
    if name == "dmlab30":
        return LevelSet(name, "dmlab", tuple(dmlab30.TRAIN_LEVELS),
                        DMLAB30_DEFAULTS,
                        suite_env_kwargs("dmlab", **options))
    if name.startswith("dmlab/") or name in dmlab30.ALL_LEVELS:
        level = name[len("dmlab/"):] if name.startswith("dmlab/") else name
        if not level:
            raise LevelError("--level_name=dmlab/ names no level")
        return LevelSet(name, "dmlab", (level,), DMLAB_DEFAULTS,
                        suite_env_kwargs("dmlab", **options))
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr or ":" in attr:
            raise LevelError(
                f"malformed --level_name '{name}': expected MODULE:FUNCTION")
        _resolve_callable(name)
        return LevelSet(name, "custom", (name,), CUSTOM_DEFAULTS,
                        suite_env_kwargs("custom", **options))
    raise _unknown(
        "level", name,
        ["atari/" + g for g in atari57.ALL_GAMES] + ["atari57", "dmlab30"]
        + sorted(dmlab30.ALL_LEVELS)) from None
