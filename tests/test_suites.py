"""Suite plug-ins: found through entry points and $IMPALA_TF_SUITES, broken
ones refused in one sentence, a third-party suite's levels resolved."""

import importlib.metadata
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from impala_tf.envs import dmlab
from impala_tf.envs import registry
from impala_tf.envs import suites

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOTH = "atari57.suite,dmlab30.suite"


@pytest.fixture(autouse=True)
def fresh_cache():
    suites.clear_cache()
    yield
    suites.clear_cache()


def _entry_point(name, value):
    return importlib.metadata.EntryPoint(name, value, suites.ENTRY_POINT_GROUP)


@pytest.fixture
def entry_points(monkeypatch):
    """Replaces the installed entry points with the list this returns."""
    points = []

    def fake(group=None):
        assert group == suites.ENTRY_POINT_GROUP
        return list(points)
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    return points


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """Writes modules into a directory on sys.path; unloads them after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(module_name, source):
        (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(source))
        written.append(module_name)
        importlib.invalidate_caches()
    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_installed_distribution_declares_both_suites():
    try:
        dist = importlib.metadata.distribution("impala-tf")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("impala-tf is not installed (pip install -e .)")
    points = {ep.name: ep.value for ep in dist.entry_points
              if ep.group == suites.ENTRY_POINT_GROUP}
    assert points == {"atari57": "atari57.suite:SUITE",
                      "dmlab30": "dmlab30.suite:SUITE"}


def test_load_through_entry_points(entry_points, monkeypatch):
    monkeypatch.delenv(suites.ENV_VAR, raising=False)
    entry_points += [_entry_point("dmlab30", "dmlab30.suite:SUITE"),
                     _entry_point("atari57", "atari57.suite:SUITE")]
    found = suites.load()
    assert sorted(found) == ["atari57", "dmlab30"]
    assert all(isinstance(s, suites.Suite) for s in found.values())
    assert sorted(suites.level_sets()) == ["atari57", "dmlab30"]
    assert len(suites.levels("atari")) == 57
    assert len(suites.levels("dmlab")) == 32  # 30 levels, two train/test.


def test_load_through_environment_variable(entry_points, monkeypatch):
    monkeypatch.setenv(suites.ENV_VAR, f" {BOTH}, ")
    assert sorted(suites.load()) == ["atari57", "dmlab30"]
    ls = registry.parse_level_name("dmlab30")
    assert ls.kind == "dmlab" and len(ls.levels) == 30
    assert ls.defaults["reward_clipping"] == "soft_asymmetric"


def test_same_suite_found_both_ways_counts_once(entry_points, monkeypatch):
    entry_points.append(_entry_point("atari57", "atari57.suite:SUITE"))
    monkeypatch.setenv(suites.ENV_VAR, "atari57.suite")
    assert list(suites.load()) == ["atari57"]


def test_without_suites_the_library_keeps_its_own_levels(entry_points,
                                                        monkeypatch):
    monkeypatch.delenv(suites.ENV_VAR, raising=False)
    assert suites.load() == {}
    with pytest.raises(registry.LevelError, match="unknown level 'atari57'"):
        registry.parse_level_name("atari57")
    pong = registry.parse_level_name("atari/pong")  # ale-py's own ROM id.
    assert pong.levels == ("pong",) and pong.human_normalized("pong", 0) is None
    assert pong.suite_scores({"pong": 1.0}) == {}
    lab = registry.parse_level_name("dmlab/rooms_watermaze")
    assert lab.test_level("rooms_watermaze") == "rooms_watermaze"
    assert dmlab.resolve_level_name("rooms_watermaze") == "rooms_watermaze"
    with pytest.raises(registry.LevelError, match="unknown level"):
        registry.parse_level_name("rooms_watermaze")


def test_any_ale_rom_is_an_atari_level(entry_points, monkeypatch):
    monkeypatch.setenv(suites.ENV_VAR, BOTH)
    tetris = registry.parse_level_name("atari/tetris")  # Not in Atari-57.
    assert tetris.kind == "atari" and tetris.human_normalized(
        "tetris", 10.0) is None


@pytest.mark.parametrize("source,fragment", [
    ("raise RuntimeError('boom\\nsecond line')",
     r"suite plug-in 'broken_suite_zz' \(from \$IMPALA_TF_SUITES\) failed "
     r"to import \(RuntimeError: boom\)$"),
    ("X = 1", r"'broken_suite_zz' .* has no SUITE attribute$"),
    ("SUITE = {'name': 'x'}", r"'broken_suite_zz' .* is a dict, not an "),
    ("from impala_tf.envs import suites\n"
     "SUITE = suites.Suite('bad', level_sets={'a/b': suites.LevelSetSpec("
     "'atari', ('pong',))})", r"level set name 'a/b' must be"),
    ("from impala_tf.envs import suites\n"
     "SUITE = suites.Suite('bad', commands={'report': 'no_colon'})",
     r"command 'report' is 'no_colon', not 'module:function'$"),
])
def test_broken_module_plugin_is_one_sentence(entry_points, monkeypatch,
                                              plugin_dir, source, fragment):
    plugin_dir("broken_suite_zz", source)
    monkeypatch.setenv(suites.ENV_VAR, "broken_suite_zz")
    with pytest.raises(suites.SuiteError, match=fragment) as e:
        suites.load()
    assert "\n" not in str(e.value)
    with pytest.raises(registry.LevelError, match=fragment):
        registry.parse_level_name("atari/pong")


def test_broken_entry_point_names_it(entry_points, monkeypatch):
    monkeypatch.delenv(suites.ENV_VAR, raising=False)
    entry_points.append(_entry_point("gone", "no_such_module_zz.suite:SUITE"))
    with pytest.raises(suites.SuiteError,
                       match=r"^suite plug-in 'gone' \(entry point "
                             r"no_such_module_zz.suite:SUITE\) failed to load "
                             r"\(ModuleNotFoundError: "):
        suites.load()


def test_a_level_set_defined_twice_is_refused(entry_points, monkeypatch,
                                              plugin_dir):
    plugin_dir("twin_suite_zz", """
        from impala_tf.envs import suites
        SUITE = suites.Suite("twin", level_sets={
            "atari57": suites.LevelSetSpec("atari", ("pong",))})
    """)
    monkeypatch.setenv(suites.ENV_VAR, "atari57.suite,twin_suite_zz")
    with pytest.raises(suites.SuiteError, match="level set 'atari57' is "
                       "defined by both suite 'atari57' and suite 'twin'"):
        suites.load()


THIRD_PARTY = """
    from impala_tf.envs import suites

    def scores(means):
        out = {"pair_games": len(means)}
        if len(means) == 2:
            out["pair_mean"] = sum(means.values()) / 2
        return out

    SUITE = suites.Suite(
        name="pair",
        levels={"my_maze": suites.Level("dmlab", "contributed/mine/maze",
                                        test_level="my_maze_test"),
                "my_maze_test": suites.Level("dmlab", "contributed/mine/t")},
        level_sets={"pair": suites.LevelSetSpec(
            kind="atari", levels=("pong", "breakout"),
            defaults={"unroll_length": 7},
            env_kwargs={"sticky_action_prob": 0.5},
            test_env_kwargs={"noop_max": 0},
            scores=scores, headline="pair_mean")},
        human_normalized=lambda level, score: 2.0 * score,
        commands={"hello": "pair_suite_zz:hello"},
    )

    def hello(argv):
        return len(argv)
"""


def test_third_party_suite_adds_levels_the_registry_resolves(
        entry_points, monkeypatch, plugin_dir):
    plugin_dir("pair_suite_zz", THIRD_PARTY)
    monkeypatch.setenv(suites.ENV_VAR, BOTH + ",pair_suite_zz")
    assert sorted(suites.load()) == ["atari57", "dmlab30", "pair"]

    ls = registry.parse_level_name("pair", sticky_action_prob=0.25)
    assert (ls.kind, ls.levels, ls.is_multitask) == (
        "atari", ("pong", "breakout"), True)
    assert ls.defaults == dict(registry.ATARI_DEFAULTS, unroll_length=7)
    assert ls.environment_kwargs(is_test=False) == dict(
        terminal_on_life_loss=True, full_action_space=True,
        sticky_action_prob=0.25)  # The user's option over the suite's.
    assert registry.parse_level_name("pair").environment_kwargs()[
        "sticky_action_prob"] == 0.5
    assert ls.environment_kwargs(is_test=True) == dict(
        terminal_on_life_loss=False, full_action_space=True, noop_max=0,
        sticky_action_prob=0.25)
    assert ls.suite_scores({"pong": 1.0}) == {"pair_games": 1}
    assert ls.headline_score({"pong": 1.0}) is None
    assert ls.headline_score({"pong": 1.0, "breakout": 3.0}) == 2.0
    # Its games are Atari-57's: their scores come from that suite.
    assert ls.human_normalized("pong", 14.6) == pytest.approx(100.0)
    env = ls.make(ls.levels.index("breakout"), seed=0, is_test=True)
    try:
        assert env.action_spec().num_values == 18
    finally:
        env.close()

    maze = registry.parse_level_name("my_maze")
    assert maze.kind == "dmlab" and maze.defaults == registry.DMLAB_DEFAULTS
    assert maze.test_level("my_maze") == "my_maze_test"
    assert maze.human_normalized("my_maze", 3.0) == 6.0
    assert maze.reference_returns("my_maze") == {}  # The suite has none.
    assert dmlab.resolve_level_name("dmlab/my_maze") == "contributed/mine/maze"
    assert pickle.loads(pickle.dumps(maze)) == maze

    hello = suites.resolve_command(suites.load()["pair"].commands["hello"])
    assert hello(["a", "b"]) == 2


def test_unknown_level_lists_the_suites_names(entry_points, monkeypatch):
    monkeypatch.setenv(suites.ENV_VAR, BOTH)
    with pytest.raises(registry.LevelError,
                       match="unknown level 'dmlab31'; did you mean "
                             "'dmlab30'"):
        registry.parse_level_name("dmlab31")
    with pytest.raises(registry.LevelError,
                       match="did you mean 'rooms_watermaze'"):
        registry.parse_level_name("rooms_watermaz")


def test_resolve_command_errors_are_one_sentence():
    with pytest.raises(suites.SuiteError, match="cannot be imported"):
        suites.resolve_command("no_such_module_zz:main")
    with pytest.raises(suites.SuiteError, match="has no callable 'nope'"):
        suites.resolve_command("impala_tf.envs.suites:nope")


def test_the_suites_commands_resolve_and_run(tmp_path):
    """Each suite command is a function of the arguments after its name
    that returns an exit status (in a child: the commands parse flags)."""
    csv = tmp_path / "scores.csv"
    csv.write_text("level,score\nrooms_watermaze,1.0\n")  # 29 missing.
    code = textwrap.dedent("""
        import sys
        from impala_tf.envs import suites
        suite = sys.argv[1]
        for name, target in sorted(suites.load()[suite].commands.items()):
            suites.resolve_command(target)
        sys.exit(suites.resolve_command(
            suites.load()[suite].commands["report"])(sys.argv[2:]))
    """)
    env = dict(os.environ, **{suites.ENV_VAR: BOTH})
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO_ROOT] + [p for p in (env.get("PYTHONPATH"),) if p])
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code, *args], env=env, capture_output=True,
        text=True, timeout=120, check=False)
    ok = run("dmlab30", "--help")
    assert ok.returncode == 0, ok.stderr
    assert "--scores" in ok.stdout
    bad = run("dmlab30", f"--scores={csv}")
    assert bad.returncode == 2
    assert "error" in bad.stderr and bad.stderr.count("\n") == 1
    assert run("atari57", "--help").returncode == 0
