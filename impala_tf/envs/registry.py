"""`--level_name` -> a set of levels, how to build them, and their defaults.

Accepted names:
  * `atari/<game>` (snake_case, e.g. `atari/pong`): one Atari game with the
    paper's Table G.1 preprocessing and the game's minimal action set: a
    game a suite names (Atari-57), or any ROM ale-py ships by its id.
  * `dmlab/<level>`: one DeepMind Lab level (a suite's name, e.g.
    `dmlab/rooms_watermaze`, or a level script as DeepMind Lab knows it);
    a DeepMind Lab level a suite names also without the prefix
    (`rooms_watermaze`).
  * a level set a suite offers (`atari57`, `dmlab30`): several levels for
    one multi-task agent, with the suite's defaults and scores.
  * `MODULE:FUNCTION`: a user's callable returning a `dm_env.Environment`
    with a uint8 image observation [H, W, C] (or a dict with 'frame' and an
    optional 'instruction' string) and a discrete action spec. It is called
    with the keyword arguments it accepts among `seed` (int) and `is_test`
    (bool).

Suites are plug-ins (`envs.suites`); this module knows none by name.
A `LevelSet` is picklable: actor processes rebuild their environments from it.
"""

import dataclasses
import difflib
import importlib
import inspect
import typing

from impala_tf import errors
from impala_tf.envs import suites


class LevelError(errors.UsageError, ValueError):
    """A `--level_name` that cannot be resolved; the message is one sentence."""


# Defaults per kind (paper Table G.1 for Atari; the release for DMLab); a
# suite's level set sets its own over them.
ATARI_DEFAULTS = dict(
    agent="shallow", use_lstm=False, unroll_length=20, batch_size=32,
    learning_rate=0.0006, epsilon=0.01, entropy_cost=0.01,
    reward_clipping="abs_one", total_environment_frames=int(200e6),
    num_action_repeats=4, max_grad_norm=40.0,
    # The fastest setting of benchmarks/throughput.py on 2 CPUs short of a
    # policy lag of ~8 learner steps (128 was ~5% faster; benchmarks/README).
    envs_per_actor=64)
DMLAB_DEFAULTS = dict(
    agent="deep", use_lstm=True, unroll_length=100, batch_size=32,
    learning_rate=0.00048, epsilon=0.1, entropy_cost=0.00025,
    reward_clipping="abs_one", total_environment_frames=int(1e9),
    num_action_repeats=4, envs_per_actor=1,
    # No gradient clip: the release minimises the loss with RMSProp alone
    # and Table D.3 lists none (the clip at 40 is Table G.1's, for Atari).
    max_grad_norm=0.0)
CUSTOM_DEFAULTS = dict(
    agent="shallow", use_lstm=True, unroll_length=20, batch_size=32,
    learning_rate=0.0006, epsilon=0.01, entropy_cost=0.01,
    reward_clipping="abs_one", total_environment_frames=int(10e6),
    num_action_repeats=1, max_grad_norm=40.0,
    # Stepped together by envs.batch.DmEnvBatch, one policy call per step:
    # the toy task (1 action repeat, 2 actors, 2 CPUs shared with another
    # training run) trained at ~1,700 agent steps/s with 32, ~1,100 with 16
    # and ~300 with 1 per actor.
    envs_per_actor=32)
KIND_DEFAULTS = {"atari": ATARI_DEFAULTS, "dmlab": DMLAB_DEFAULTS,
                 "custom": CUSTOM_DEFAULTS}

# The user options (flags) each kind's environments take as keyword
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


def kind_env_kwargs(kind, is_test, multitask):
    """The environment keyword arguments every level of `kind` gets.

    Atari (`atari.AtariEnvironment`, whose defaults are Table G.1's): life
    loss ends an episode in training, not in test mode (an episode is a
    whole game); a multi-task agent plays all games with the full 18
    actions. DeepMind Lab: `is_test`. Custom: none.
    """
    if kind == "atari":
        return dict(terminal_on_life_loss=not is_test,
                    full_action_space=bool(multitask))
    if kind == "dmlab":
        return dict(is_test=bool(is_test))
    return {}


def _dict_field():
    return dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LevelSet:
    """What `--level_name` names.

    Attributes:
      name: the flag value.
      kind: 'atari', 'dmlab' or 'custom'.
      levels: level names (one for single-task), used in statistics.
      defaults: flag defaults for these levels.
      env_kwargs: the user's options for the environment constructor
        (`suite_env_kwargs`), applied last.
      train_env_kwargs: the suite's environment keyword arguments in
        training, over the kind's (`kind_env_kwargs`).
      test_env_kwargs: the same in test mode.
      test_levels: {level: the level played instead in test mode}.
    """
    name: str
    kind: str
    levels: typing.Tuple[str, ...]
    defaults: typing.Dict[str, typing.Any]
    env_kwargs: typing.Dict[str, typing.Any] = _dict_field()
    train_env_kwargs: typing.Dict[str, typing.Any] = _dict_field()
    test_env_kwargs: typing.Dict[str, typing.Any] = _dict_field()
    test_levels: typing.Dict[str, str] = _dict_field()

    @property
    def is_multitask(self):
        return len(self.levels) > 1

    @property
    def score_column(self):
        """Column name of per-level scores in CSVs ('game' or 'level')."""
        return "game" if self.kind == "atari" else "level"

    def level_for(self, index):
        """Level of the `index`-th environment: round-robin over levels, so a
        fixed number of environments per level when their count is a
        multiple of the number of levels."""
        return index % len(self.levels)

    def test_level(self, level):
        """The level evaluated in test mode (DMLab-30 `_train` -> `_test`)."""
        return self.test_levels.get(level, level)

    def environment_kwargs(self, is_test=False):
        """Keyword arguments of the environment constructor (Atari, DMLab):
        the kind's, the suite's for training or test mode, the user's."""
        kwargs = kind_env_kwargs(self.kind, is_test, self.is_multitask)
        kwargs.update(self.test_env_kwargs if is_test
                      else self.train_env_kwargs)
        kwargs.update(self.env_kwargs)
        return kwargs

    def suite_scores(self, per_level_means):
        """Level-set scores from {level: mean return} (may be partial).

        The scores of the suite's level set named `name` (e.g. dmlab30: the
        DMLab-30 mean capped and uncapped human-normalised scores, %, once
        every level has returns; atari57: the median and mean
        human-normalised score, %, over the games with returns). Returns {}
        for a name no suite scores.
        """
        found = suites.find_level_set(self.name)
        if found is None or found[1].scores is None:
            return {}
        return dict(found[1].scores(per_level_means))

    def headline_score(self, per_level_means):
        """The level set's own score (%, e.g. DMLab-30's mean capped) from
        `suite_scores`, or None (no such score, or not computable yet)."""
        found = suites.find_level_set(self.name)
        if found is None or found[1].headline is None:
            return None
        return self.suite_scores(per_level_means).get(found[1].headline)

    def _suite_function(self, level, name):
        """The callable `name` of the suite that names `level` (e.g.
        `Suite.human_normalized`), or None: no such suite or callable."""
        if self.kind not in suites.LEVEL_KINDS:
            return None
        found = suites.find_level(level, self.kind)
        return None if found is None else getattr(found[0], name)

    def human_normalized(self, level, mean_return):
        """`level`'s human-normalised score in % (uncapped: 0 = random, 100
        = human) where a suite has its human and random scores (an
        Atari-57 game, a DMLab-30 level); None for any other level."""
        score = self._suite_function(level, "human_normalized")
        if score is None:
            return None
        try:
            return float(score(level, mean_return))
        except ValueError:  # The suite does not score this level.
            return None

    def reference_returns(self, level):
        """{label: return} a plot of `level` draws (e.g. {"random": 1.7,
        "human": 30.5} for Breakout) where its suite has them; {} for any
        other level."""
        returns = self._suite_function(level, "reference_returns")
        if returns is None:
            return {}
        try:
            return {str(k): float(v) for k, v in returns(level).items()}
        except (KeyError, ValueError):  # The suite does not score this level.
            return {}

    def make(self, level_id, seed, is_test=False):
        """Builds the `dm_env.Environment` for `levels[level_id]`."""
        level = self.levels[level_id]
        if self.kind == "atari":
            from impala_tf.envs import atari
            return atari.AtariEnvironment(
                level, seed=seed, **self.environment_kwargs(is_test))
        if self.kind == "dmlab":
            from impala_tf.envs import dmlab
            return dmlab.DmLabEnvironment(
                self.test_level(level) if is_test else level, seed=seed,
                **self.environment_kwargs(is_test))
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


def _test_levels(kind, levels):
    out = {}
    for level in levels:
        found = suites.find_level(level, kind) if kind in (
            suites.LEVEL_KINDS) else None
        if found is not None and found[1].test_level:
            out[level] = found[1].test_level
    return out


def _ale_rom_ids():
    try:
        from impala_tf.envs import ale_core
    except ImportError:  # ale-py is not installed.
        return frozenset()
    return ale_core.ale_rom_ids()


def _single(name, kind, level, options):
    return LevelSet(name, kind, (level,), dict(KIND_DEFAULTS[kind]),
                    suite_env_kwargs(kind, **options),
                    test_levels=_test_levels(kind, (level,)))


def _from_spec(name, spec, options):
    if spec.kind == "custom":
        for level in spec.levels:
            _resolve_callable(level)
    return LevelSet(
        name, spec.kind, tuple(spec.levels),
        dict(KIND_DEFAULTS[spec.kind], **spec.defaults),
        suite_env_kwargs(spec.kind, **options),
        train_env_kwargs=dict(spec.env_kwargs),
        test_env_kwargs=dict(spec.test_env_kwargs),
        test_levels=_test_levels(spec.kind, spec.levels))


def parse_level_name(level_name, **options):
    """Resolves a `--level_name` value into a `LevelSet`.

    `options` (e.g. sticky_action_prob=0.25, level_cache_dir=None) become
    the level set's `env_kwargs` as far as its kind takes them
    (`suite_env_kwargs`).

    Raises:
      LevelError: with one readable sentence for an unknown or malformed
        name, or a suite plug-in that does not load (no environment is built
        here, except importing a user module).
    """
    name = (level_name or "").strip()
    if not name:
        raise LevelError("--level_name is empty")
    try:
        level_sets = suites.level_sets()
        atari_games = suites.levels("atari")
        dmlab_levels = suites.levels("dmlab")
    except suites.SuiteError as e:
        raise LevelError(str(e)) from None
    if name in level_sets:
        return _from_spec(name, level_sets[name][1], options)
    if name.startswith("atari/"):
        game = name[len("atari/"):]
        if game in atari_games or game in _ale_rom_ids():
            return _single(name, "atari", game, options)
        raise _unknown("Atari game", game,
                       sorted(set(atari_games) | _ale_rom_ids()))
    if name.startswith("dmlab/") or name in dmlab_levels:
        level = name[len("dmlab/"):] if name.startswith("dmlab/") else name
        if not level:
            raise LevelError("--level_name=dmlab/ names no level")
        return _single(name, "dmlab", level, options)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr or ":" in attr:
            raise LevelError(
                f"malformed --level_name '{name}': expected MODULE:FUNCTION")
        _resolve_callable(name)
        return LevelSet(name, "custom", (name,), dict(CUSTOM_DEFAULTS),
                        suite_env_kwargs("custom", **options))
    raise _unknown(
        "level", name,
        ["atari/" + g for g in atari_games] + sorted(level_sets)
        + sorted(dmlab_levels)) from None
