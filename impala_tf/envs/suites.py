"""Environment suites as plug-ins: named levels, level sets and their scores.

A suite (Atari-57, DMLab-30, a user's package) tells the library what it
cannot know by itself: the names of its levels and what each one is given to
its environment, the level sets it offers (`--level_name=atari57`), their
flag defaults and environment settings, the human-normalised scores of its
levels and of its level sets, reference numbers from the paper, and the
subcommands it adds to `impala-tf` (`impala-tf atari57 report ...`).

The library never imports a suite. `load()` finds them:

  * through the entry points of the group "impala_tf.suites" of the
    installed distributions (pyproject.toml:
    `atari57 = "atari57.suite:SUITE"`), each loading to a `Suite`;
  * through the environment variable IMPALA_TF_SUITES, a comma list of
    modules that each have a `SUITE` attribute (e.g.
    "atari57.suite,dmlab30.suite"), where the project is not installed
    (Bazel, a bare checkout) or to add a suite without packaging it.

Without any suite the library still has its own levels: `atari/<rom>` for
any ROM ale-py ships, `dmlab/<level script>`, and `MODULE:FUNCTION`.
A plug-in that fails to load raises `SuiteError`, one sentence naming it.
"""

import dataclasses
import functools
import importlib
import importlib.metadata
import os
import typing

ENTRY_POINT_GROUP = "impala_tf.suites"
ENV_VAR = "IMPALA_TF_SUITES"

# Kinds of environment the library builds (envs.registry): ALE games,
# DeepMind Lab levels, and MODULE:FUNCTION callables returning a dm_env.
KINDS = ("atari", "dmlab", "custom")
# Kinds a suite's named levels can have (a custom level is its own name).
LEVEL_KINDS = ("atari", "dmlab")


class SuiteError(ValueError):
    """A suite plug-in that cannot be loaded or is inconsistent (one
    sentence naming it)."""


@dataclasses.dataclass(frozen=True)
class Level:
    """One level a suite knows by name.

    Attributes:
      kind: 'atari' or 'dmlab'.
      env_id: what the environment is given for it: the ALE ROM id (Atari),
        the DeepMind Lab level script (e.g. 'contributed/dmlab30/<name>').
      test_level: the level played instead in test mode (DMLab-30's
        `_train` levels are evaluated on their `_test` twins); None: itself.
    """
    kind: str
    env_id: str
    test_level: typing.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class LevelSetSpec:
    """A level set a suite offers as a `--level_name` value.

    Attributes:
      kind: 'atari', 'dmlab' or 'custom' (levels are then MODULE:FUNCTION).
      levels: level names; environment i plays levels[i % len(levels)].
      defaults: flag defaults over those of the kind (envs.registry), e.g.
        {"agent": "deep"}.
      env_kwargs: keyword arguments of the environment constructor in
        training, over those of the kind; the user's options come last.
      test_env_kwargs: the same in test mode.
      scores: callable({level: mean return}, possibly partial) -> {name:
        float}: the level set's aggregate scores (e.g. the median
        human-normalised score, %), merged into the progress records.
      headline: the key of `scores`' result that is the level set's score
        (human-normalised, %), if any: what population-based training
        ranks members by.
    """
    kind: str
    levels: typing.Tuple[str, ...]
    defaults: typing.Mapping[str, typing.Any] = dataclasses.field(
        default_factory=dict)
    env_kwargs: typing.Mapping[str, typing.Any] = dataclasses.field(
        default_factory=dict)
    test_env_kwargs: typing.Mapping[str, typing.Any] = dataclasses.field(
        default_factory=dict)
    scores: typing.Optional[typing.Callable[
        [typing.Mapping[str, float]], typing.Dict[str, float]]] = None
    headline: typing.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Suite:
    """What a suite plug-in provides (its module's `SUITE`).

    Attributes:
      name: the suite's name (its entry point's name, e.g. 'atari57').
      levels: {level name: Level}: the single levels it names.
      level_sets: {`--level_name` value: LevelSetSpec}.
      human_normalized: callable(level, mean return) -> float: the
        uncapped human-normalised score in % (0 = random, 100 = human) of
        any of `levels`; None if the suite has no reference scores.
      reference_returns: callable(level) -> {label: return}: the returns a
        plot of `level` draws as horizontal lines (e.g. {"random": 1.7,
        "human": 30.5}); None if the suite has none.
      reference: paper numbers for tools, by key (e.g. "impala_table_2":
        {(correction, with replay): {level: return}} for the Table 2
        ablation).
      commands: {subcommand: "module:function"}: `impala-tf <name> <sub>
        ARGS` calls function(ARGS list) and exits with its return value.
    """
    name: str
    levels: typing.Mapping[str, Level] = dataclasses.field(
        default_factory=dict)
    level_sets: typing.Mapping[str, LevelSetSpec] = dataclasses.field(
        default_factory=dict)
    human_normalized: typing.Optional[
        typing.Callable[[str, float], float]] = None
    reference_returns: typing.Optional[
        typing.Callable[[str], typing.Mapping[str, float]]] = None
    reference: typing.Mapping[str, typing.Any] = dataclasses.field(
        default_factory=dict)
    commands: typing.Mapping[str, str] = dataclasses.field(
        default_factory=dict)

    def check(self):
        """Raises SuiteError (one sentence) if the suite is malformed."""
        where = f"suite '{self.name}'"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SuiteError(f"suite name {self.name!r} is not an identifier")
        for name, level in self.levels.items():
            if not isinstance(level, Level) or level.kind not in LEVEL_KINDS:
                raise SuiteError(
                    f"{where}: level {name!r} is not a suites.Level of kind "
                    f"{' or '.join(LEVEL_KINDS)}")
        for name, spec in self.level_sets.items():
            if not isinstance(spec, LevelSetSpec) or spec.kind not in KINDS:
                raise SuiteError(
                    f"{where}: level set {name!r} is not a "
                    f"suites.LevelSetSpec of kind {', '.join(KINDS)}")
            if not name or "/" in name or ":" in name:
                raise SuiteError(
                    f"{where}: level set name {name!r} must be non-empty "
                    f"and have no '/' or ':'")
            if not spec.levels:
                raise SuiteError(f"{where}: level set {name!r} has no levels")
        for sub, target in self.commands.items():
            module, _, function = str(target).partition(":")
            if not module or not function:
                raise SuiteError(
                    f"{where}: command {sub!r} is {target!r}, not "
                    f"'module:function'")


class _Loaded(typing.NamedTuple):
    suites: typing.Dict[str, Suite]
    level_sets: typing.Dict[str, typing.Tuple[Suite, LevelSetSpec]]
    levels: typing.Dict[str, typing.Dict[str, typing.Tuple[Suite, Level]]]


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else (
        type(error).__name__)


def _checked(obj, origin):
    if not isinstance(obj, Suite):
        raise SuiteError(f"suite plug-in {origin} is a "
                         f"{type(obj).__name__}, not an impala_tf suites.Suite")
    obj.check()
    return obj


def _from_entry_points():
    found = []
    points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                    key=lambda ep: ep.name)
    for ep in points:
        origin = f"'{ep.name}' (entry point {ep.value})"
        try:
            obj = ep.load()
        except Exception as e:  # pylint: disable=broad-except
            raise SuiteError(f"suite plug-in {origin} failed to load "
                             f"({_first_line(e)})") from None
        found.append((_checked(obj, origin), origin))
    return found


def _from_modules(names):
    found = []
    for module_name in names:
        origin = f"'{module_name}' (from ${ENV_VAR})"
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # pylint: disable=broad-except
            raise SuiteError(f"suite plug-in {origin} failed to import "
                             f"({_first_line(e)})") from None
        if not hasattr(module, "SUITE"):
            raise SuiteError(f"suite plug-in {origin} has no SUITE attribute")
        found.append((_checked(module.SUITE, origin), origin))
    return found


def _module_names(env_value):
    return [n.strip() for n in (env_value or "").split(",") if n.strip()]


@functools.lru_cache(maxsize=None)
def _load(env_value):
    loaded = _Loaded({}, {}, {kind: {} for kind in LEVEL_KINDS})
    origins = {}
    for suite, origin in (_from_entry_points()
                          + _from_modules(_module_names(env_value))):
        known = loaded.suites.get(suite.name)
        if known is suite:  # Found both ways: the same module's SUITE.
            continue
        if known is not None:
            raise SuiteError(f"two suite plug-ins are named '{suite.name}': "
                             f"{origins[suite.name]} and {origin}")
        loaded.suites[suite.name] = suite
        origins[suite.name] = origin
        for name, spec in suite.level_sets.items():
            if name in loaded.level_sets:
                raise SuiteError(
                    f"level set '{name}' is defined by both suite "
                    f"'{loaded.level_sets[name][0].name}' and suite "
                    f"'{suite.name}'")
            loaded.level_sets[name] = (suite, spec)
        for name, level in suite.levels.items():
            loaded.levels[level.kind].setdefault(name, (suite, level))
    return loaded


def _loaded():
    return _load(os.environ.get(ENV_VAR, ""))


def load():
    """{name: Suite} of every suite plug-in found (entry points, then the
    modules of $IMPALA_TF_SUITES); cached per value of $IMPALA_TF_SUITES.

    Raises:
      SuiteError: a plug-in does not load or is malformed, two have the
        same name, or two define the same level set.
    """
    return dict(_loaded().suites)


def clear_cache():
    """Forgets what `load()` found (after installing a plug-in)."""
    _load.cache_clear()


def level_sets():
    """{`--level_name` value: (Suite, LevelSetSpec)} over all suites."""
    return dict(_loaded().level_sets)


def levels(kind):
    """{level name: (Suite, Level)} of the suites' levels of `kind`; a name
    in several suites belongs to the first (entry points by name first)."""
    return dict(_loaded().levels.get(kind, {}))


def find_level_set(name):
    """(Suite, LevelSetSpec) of the level set `name`, or None."""
    return _loaded().level_sets.get(name)


def find_level(name, kind):
    """(Suite, Level) of the level `name` of `kind`, or None."""
    return _loaded().levels.get(kind, {}).get(name)


def resolve_command(target):
    """The function a command's "module:function" names.

    Raises:
      SuiteError: the module does not import or has no such callable.
    """
    module_name, _, attr = str(target).partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # pylint: disable=broad-except
        raise SuiteError(f"command {target!r} cannot be imported "
                         f"({_first_line(e)})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SuiteError(f"command {target!r}: module '{module_name}' has "
                         f"no callable '{attr}'")
    return fn
