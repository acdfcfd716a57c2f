"""Tests for configs/*.cfg, the paper's experiments as absl flagfiles.

Every file must parse with the trainer's own flags, build its configuration
(`train_config.build`, which builds one environment but starts no
training; DMLab files build under tests/fake_deepmind_lab.py), give the
values of the paper tables its comments cite, and let a flag given after
`--flagfile` override it. The trainer's flags live in this module's own
FlagValues: every case starts and ends with `FLAGS.unparse_flags()` (all
flags back to their defaults).
"""

import glob
import os
import subprocess
import sys

import pytest
from absl import flags

from impala_tf.cli import flags as train_flags
from impala_tf.cli import train_config
from impala_tf import testing
from impala_tf.envs import dmlab

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import fake_deepmind_lab  # noqa: E402  pylint: disable=wrong-import-position

CONFIG_DIR = os.path.join(testing.REPO, "configs")
CONFIGS = sorted(os.path.basename(p)
                 for p in glob.glob(os.path.join(CONFIG_DIR, "*.cfg")))

# The paper's tables, written out here independently of the files.
# V-trace as run in the paper (Section 4): rho-bar = c-bar = 1, lambda = 1.
VTRACE = dict(off_policy_correction="vtrace", clip_rho_threshold=1.0,
              clip_pg_rho_threshold=1.0, clip_c_threshold=1.0,
              vtrace_lambda=1.0)
# Table G.1 (Atari).
TABLE_G1 = dict(
    VTRACE, learning_rate=0.0006, epsilon=0.01, decay=0.99, momentum=0.0,
    entropy_cost=0.01, baseline_cost=0.5, discounting=0.99,
    unroll_length=20, batch_size=32, reward_clipping="abs_one",
    max_grad_norm=40.0, num_action_repeats=4,
    total_environment_frames=200_000_000)
# Table D.3 (DMLab, fixed across experiments).
TABLE_D3 = dict(unroll_length=100, num_action_repeats=4, discounting=0.99,
                baseline_cost=0.5, momentum=0.0)
# The release's experiment.py defaults (single DMLab level), batch 32 as in
# its commands, and no gradient clipping (it has none).
RELEASE = dict(
    **TABLE_D3, **VTRACE, learning_rate=0.00048, epsilon=0.1, decay=0.99,
    entropy_cost=0.00025, reward_clipping="abs_one", batch_size=32,
    total_environment_frames=1_000_000_000, max_grad_norm=0.0)
# The release's DMLab-30 command.
RELEASE_DMLAB30 = dict(
    RELEASE, learning_rate=0.00031866995608948655,
    entropy_cost=0.0033391318945337044, reward_clipping="soft_asymmetric",
    total_environment_frames=10_000_000_000, num_actors=150)

EXPECTED = {
    "atari_shallow_expert.cfg": dict(
        TABLE_G1, level_name="atari/pong", agent="shallow", use_lstm=False),
    "atari_deep_expert.cfg": dict(
        TABLE_G1, level_name="atari/pong", agent="deep", use_lstm=False),
    "atari57_multitask.cfg": dict(
        TABLE_G1, level_name="atari57", agent="deep", use_lstm=False,
        total_environment_frames=57 * 200_000_000,
        num_actors=3, envs_per_actor=19),
    "dmlab_single_level.cfg": dict(
        RELEASE, level_name="explore_goal_locations_small", agent="deep",
        use_lstm=True),
    "dmlab30.cfg": dict(
        RELEASE_DMLAB30, level_name="dmlab30", agent="deep", use_lstm=True),
    "table2_ablation.cfg": dict(
        RELEASE, level_name="rooms_watermaze", agent="deep", use_lstm=True),
    # Table G.1 but for the deviations the file marks (docs/LEARNING.md).
    "pong_fast.cfg": dict(
        TABLE_G1, level_name="atari/pong", agent="shallow", use_lstm=False,
        batch_size=8, epsilon=1e-5, total_environment_frames=20_000_000,
        learning_rate_decay_frames=200_000_000, final_entropy_cost=0.001,
        entropy_cost_decay_start_frames=12_000_000,
        entropy_cost_decay_end_frames=14_000_000, replay_proportion=0.5,
        replay_capacity=10_000),
    # Table 2 on Atari: Table G.1 with pong_fast's measured deviations.
    "table2_atari.cfg": dict(
        TABLE_G1, level_name="atari/breakout", agent="shallow",
        use_lstm=False, batch_size=16, epsilon=1e-5,
        total_environment_frames=2_000_000,
        learning_rate_decay_frames=200_000_000, replay_proportion=0.0,
        replay_capacity=10_000),
}

LEARNER_FIELDS = (
    "batch_size", "unroll_length", "num_action_repeats",
    "total_environment_frames", "learning_rate", "decay", "momentum",
    "epsilon", "entropy_cost", "baseline_cost", "discounting",
    "reward_clipping", "max_grad_norm", "off_policy_correction",
    "clip_rho_threshold", "clip_pg_rho_threshold", "clip_c_threshold",
    "vtrace_lambda", "learning_rate_decay_frames",
    "rmsprop_initial_mean_square", "replay_proportion", "replay_capacity",
    "final_entropy_cost", "entropy_cost_decay_start_frames",
    "entropy_cost_decay_end_frames")


def _path(name):
    return os.path.join(CONFIG_DIR, name)


FLAGS = train_flags.define_train_flags(flags.FlagValues())


@pytest.fixture
def parse():
    """parse(*args): parses args as the trainer's command line."""
    FLAGS.unparse_flags()
    yield lambda *args: FLAGS(["impala_tf.cli.experiment", *args])
    FLAGS.unparse_flags()


@pytest.fixture
def fake_lab(monkeypatch, tmp_path):
    """DMLab levels build against tests/fake_deepmind_lab.py."""
    monkeypatch.setenv(dmlab.DEEPMIND_LAB_MODULE_ENV_VAR, "fake_deepmind_lab")
    monkeypatch.setenv(fake_deepmind_lab.LOG_ENV_VAR,
                       str(tmp_path / "fake_lab_log.jsonl"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [TESTS_DIR] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def _built_values(config):
    values = {f: getattr(config.learner, f) for f in LEARNER_FIELDS}
    values.update(
        level_name=config.actor.level_set.name,
        agent=config.actor.agent.torso, use_lstm=config.actor.agent.use_lstm,
        num_actors=config.num_actors,
        envs_per_actor=config.actor.envs_per_actor)
    return values


def test_every_config_has_expectations():
    assert CONFIGS, "configs/ has no .cfg file"
    assert set(CONFIGS) == set(EXPECTED), (
        "each configs/*.cfg needs its paper values in EXPECTED")


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_with_the_paper_values(name, parse, fake_lab):
    parse(f"--flagfile={_path(name)}")
    config = train_config.build(FLAGS)
    built = _built_values(config)
    expected = EXPECTED[name]
    wrong = {k: (built[k], v) for k, v in expected.items() if built[k] != v}
    assert not wrong, f"{name}: (built, paper) differ: {wrong}"


@pytest.mark.parametrize("name", CONFIGS)
def test_config_sets_every_value_it_checks(name):
    """The file itself gives each checked value (not a suite default that
    could change under it)."""
    given = set()
    with open(_path(name)) as f:
        for line in f:
            if line.strip().startswith("--"):
                flag = line.strip()[2:].split("=", 1)[0]
                if (flag not in FLAGS and flag.startswith("no")
                        and flag[2:] in FLAGS):
                    flag = flag[2:]  # --nouse_lstm
                given.add(flag)
    assert set(EXPECTED[name]) <= given, sorted(set(EXPECTED[name]) - given)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_value_is_commented(name):
    """Each block of flag lines sits right under a comment (its source)."""
    with open(_path(name)) as f:
        lines = [line.strip() for line in f]
    for i, line in enumerate(lines):
        if line.startswith("--"):
            above = i - 1
            while above >= 0 and lines[above].startswith("--"):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), (
                f"{name} line {i + 1} ({line}) has no comment above it")


def test_later_flags_override_the_file(parse):
    parse(f"--flagfile={_path('atari_shallow_expert.cfg')}",
          "--learning_rate=0.001", "--level_name=atari/breakout",
          "--use_lstm")
    config = train_config.build(FLAGS)
    assert config.learner.learning_rate == 0.001
    assert config.actor.level_set.name == "atari/breakout"
    assert config.actor.agent.use_lstm
    assert config.learner.epsilon == 0.01  # The rest is the file's.


def test_the_file_overrides_earlier_flags(parse):
    parse("--learning_rate=0.001",
          f"--flagfile={_path('atari_shallow_expert.cfg')}")
    assert FLAGS.learning_rate == 0.0006


def test_unknown_flag_in_a_flagfile_is_rejected(parse, tmp_path):
    """Why configs/ holds no flag the trainer lacks: absl refuses the whole
    command line."""
    cfg = tmp_path / "typo.cfg"
    cfg.write_text(f"--flagfile={_path('table2_ablation.cfg')}\n"
                   "--replay_proportions=0.5\n")
    with pytest.raises(flags.UnrecognizedFlagError):
        parse(f"--flagfile={cfg}")


def test_table2_with_replay_half(parse, tmp_path):
    """Table 2's second half: the file plus --replay_proportion=0.5."""
    cfg = tmp_path / "replay.cfg"
    cfg.write_text(f"--flagfile={_path('table2_ablation.cfg')}\n"
                   "--replay_proportion=0.5\n")
    parse(f"--flagfile={cfg}")
    assert FLAGS.replay_proportion == 0.5
    assert FLAGS.replay_capacity == 10_000


@pytest.mark.slow
def test_trainer_command_line_reads_the_flagfile(tmp_path):
    """The real entry point: the file is read, a later flag overrides it,
    and the run stops with the override's one-sentence error (nothing is
    trained, so no network namespace is needed)."""
    result = subprocess.run(
        [sys.executable, "-m", "impala_tf.cli.experiment",
         "--flagfile=configs/pong_fast.cfg", "--num_actors=0",
         f"--logdir={tmp_path / 'run'}"],
        cwd=testing.REPO, text=True, capture_output=True, timeout=240)
    assert result.returncode == 2, result.stderr
    assert "error: --num_actors must be at least 1 to train" in result.stderr
    assert not (tmp_path / "run").exists()
