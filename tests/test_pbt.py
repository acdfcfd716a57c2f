"""Tests for the population-based training entry point
(`impala_tf.cli.pbt`, paper Appendix F): its flags, the rule and initial
hyperparameters they give, a member's config, refused input, and a real
population on the toy level."""

import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from impala_tf import testing
from impala_tf.envs import registry
from impala_tf.pbt import population as pbt_population
from impala_tf.pbt import rule as pbt_rule
from impala_tf.runtime import progress
from tests import procs


@pytest.fixture
def pbt_flags():
    """parse(*args) -> the parsed `impala_tf.cli.pbt` command line's
    FlagValues (a fresh one each call, defined by `pbt.define_flags`)."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    from impala_tf.cli import pbt  # pylint: disable=import-outside-toplevel

    def parse(*args):
        flag_values = pbt.define_flags(flags.FlagValues())
        flag_values(["impala_tf.cli.pbt", "--logdir=pop",
                     "--population_size=3", *args])
        return flag_values
    return parse


@pytest.mark.parametrize("level, clip_evolves", [
    ("atari57", True), ("atari/pong", True), ("dmlab30", False),
    (testing.TOY_LEVEL, False)])
def test_the_gradient_clip_evolves_on_atari_levels_only(pbt_flags, level,
                                                        clip_evolves):
    """Appendix F: on Atari the gradient-clip threshold evolves too."""
    from impala_tf.cli import pbt  # pylint: disable=import-outside-toplevel
    rule = pbt.rule_from_flags(pbt_flags(f"--level_name={level}"))
    assert ("max_grad_norm" in rule.evolved) == clip_evolves
    assert set(pbt_rule.DEFAULT_EVOLVED) <= set(rule.evolved)


def test_a_flagfile_does_not_fix_what_members_draw(pbt_flags):
    """Every configs/ file sets the learning rate, entropy cost and epsilon
    (flags 'given' in absl): the members still draw them from Table D.1
    unless --pbt_hold names them, and one line says which."""
    from impala_tf.cli import pbt  # pylint: disable=import-outside-toplevel
    flagfile = "--flagfile=" + os.path.join(testing.REPO, "configs",
                                            "pong_fast.cfg")
    initial = pbt.initial_from_flags(pbt_flags(flagfile))
    drawn = [initial.values(m) for m in range(3)]
    for name in ("learning_rate", "entropy_cost"):
        assert len({d[name] for d in drawn}) == 3, (name, drawn)
    for d in drawn:
        assert 5e-6 <= d["learning_rate"] <= 5e-3
        assert 5e-5 <= d["entropy_cost"] <= 1e-2
        assert d["epsilon"] in pbt_rule.EPSILONS
        assert d["max_grad_norm"] == 40.0  # Never drawn.
    line = initial.describe()
    assert line.startswith("[pbt] initial hyperparameters: learning_rate, "
                           "entropy_cost, epsilon drawn from Table D.1"), line
    assert "max_grad_norm=40 held" in line
    assert "set by the flags but drawn: --learning_rate, --entropy_cost, " \
        "--epsilon" in line, line
    assert "learning_rate=" + format(drawn[1]["learning_rate"], ".4g") \
        in initial.describe(1)

    initial = pbt.initial_from_flags(pbt_flags(
        flagfile, "--pbt_hold=learning_rate,epsilon",
        "--pbt_fixed=2:learning_rate=0"))
    held = [initial.values(m) for m in range(3)]
    assert [h["learning_rate"] for h in held] == [0.0006, 0.0006, 0.0]
    assert [h["epsilon"] for h in held] == [1e-5] * 3
    # The others' draws are those they would have been.
    assert [h["entropy_cost"] for h in held] == [d["entropy_cost"]
                                                 for d in drawn]
    line = initial.describe()
    assert ("entropy_cost drawn from Table D.1 for each member; "
            "learning_rate=0.0006, epsilon=1e-05, max_grad_norm=40 held at "
            "the flags' values; --pbt_fixed: 2:learning_rate=0") in line, line
    assert line.endswith("set by the flags but drawn: --entropy_cost "
                         "(--pbt_hold=entropy_cost would hold them)"), line
    assert "learning_rate=0 from --pbt_fixed" in initial.describe(2)

    initial = pbt.initial_from_flags(pbt_flags("--level_name=dmlab30",
                                               "--pbt_hold=learning_rate"))
    assert initial.values(0)["learning_rate"] == pytest.approx(
        registry.parse_level_name("dmlab30").defaults["learning_rate"])


def test_a_member_is_the_flags_config_with_its_own_values(pbt_flags,
                                                         tmp_path):
    """The member's config is built from the flags, then given its
    hyperparameters, seed and directory; no flag is written."""
    # pylint: disable=import-outside-toplevel
    import dataclasses
    from impala_tf.cli import pbt
    from impala_tf.cli import train_config
    flag_values = pbt_flags(f"--logdir={tmp_path}", "--seed=5",
                            "--level_name=" + testing.TOY_LEVEL,
                            "--learning_rate=0.002", "--num_actors=1",
                            "--pbt_fixed=1:entropy_cost=0.03")
    before = flag_values.flag_values_dict()
    base = train_config.build(flag_values)
    config, make_hooks = pbt.build_member(flag_values, 1)
    assert flag_values.flag_values_dict() == before
    values = pbt.initial_from_flags(flag_values).values(1)
    assert values["entropy_cost"] == 0.03
    assert values["learning_rate"] != 0.002  # Drawn, not held.
    assert {n: getattr(config.learner, n)
            for n in pbt_rule.EVOLVABLE} == values
    assert config.actor.seed == 5 + 1000
    assert config.logdir == os.path.join(str(tmp_path), "member_1")
    assert config.resume_hyperparameters == "checkpoint"
    assert base.resume_hyperparameters == "flags"
    # The rest is the flags' config.
    assert dataclasses.replace(config.learner, **{
        n: getattr(base.learner, n) for n in values}) == base.learner
    assert dataclasses.replace(
        config.actor, seed=base.actor.seed, level_set=base.actor.level_set,
        observation_spec=base.actor.observation_spec) == base.actor
    assert dataclasses.replace(
        config, actor=base.actor, learner=base.learner, logdir=base.logdir,
        resume_hyperparameters="flags") == base
    assert callable(make_hooks)


# -- Refused input: one sentence, exit status 2. ----------------------------

def _refused(tmp_path, *flags):
    """Runs `python -m impala_tf.cli.pbt` with `flags`; returns its one error
    line after checking the exit status 2 and that nothing else was said."""
    result = testing.run_impala(
        [f"--logdir={tmp_path / 'pop'}", "--population_size=2", *flags],
        timeout=60, module="impala_tf.cli.pbt", isolate=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_an_unknown_hold_is_refused(tmp_path):
    line = _refused(tmp_path, "--pbt_hold=learning_rate,lr")
    assert line == ("error: --pbt_hold names lr, not one of learning_rate,"
                    "entropy_cost,epsilon,max_grad_norm"), line


def test_several_synchronous_learners_are_refused(tmp_path):
    line = _refused(tmp_path, "--learner_hosts=h0:7001,h1:7002",
                    "--job_name=learner", "--task=0", "--pbt_member=0")
    assert "one learner per member" in line and "lists 2" in line, line


# -- A real population on the toy level. ------------------------------------

TOTAL = 8000


def _member_pid(logdir, member):
    """The pid of member's learner process, or None."""
    for pid in testing.processes():
        line = testing.cmdline(pid) or ""
        if (f"--pbt_member={member}" in line and f"--logdir={logdir}" in line
                and "impala_tf.cli.pbt" in line):
            return pid
    return None


def _frames(logdir):
    records = progress.read_records(logdir)
    return records[-1]["env_frames"] if records else 0


@pytest.mark.slow
@pytest.mark.timeout(1500)  # 7 processes start TensorFlow on shared CPUs.
@procs.requires_netns
def test_population_replaces_a_member_at_lr_0_and_survives_a_kill(
        tmp_path):
    """Three members on the toy level; member 0 starts at learning rate 0
    (stays at the random policy's 5 of 10) and must copy a better one.
    Member 1 is SIGKILLed once it has a checkpoint: it is restarted,
    resumes from it, and the population finishes."""
    logdir = str(tmp_path / "pop")
    flags = [f"--logdir={logdir}", "--population_size=3",
             "--level_name=" + testing.TOY_LEVEL, "--use_lstm=false",
             "--batch_size=8", "--unroll_length=10", "--num_actors=1",
             "--log_interval_s=1", "--learning_rate=0.002",
             "--pbt_hold=learning_rate",
             "--learning_rate_decay_frames=100000000",
             f"--total_environment_frames={TOTAL}",
             "--pbt_burn_in_frames=1000", "--pbt_ready_episodes=40",
             "--pbt_fixed=0:learning_rate=0", "--checkpoint_interval_s=2"]
    cmd = testing.isolated_command(
        [sys.executable, "-m", "impala_tf.cli.pbt"] + flags)
    proc = subprocess.Popen(cmd, cwd=testing.REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            start_new_session=True)
    member_1 = os.path.join(logdir, "member_1")
    try:
        killed = None
        for _ in range(2400):  # A bounded wait for a checkpoint, then kill.
            if proc.poll() is not None:
                break
            if (os.path.exists(os.path.join(member_1, "checkpoints",
                                            "checkpoint"))
                    and _frames(member_1) < TOTAL - 1000):
                killed = _member_pid(logdir, 1)
                if killed is not None:
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.5)
        out, _ = proc.communicate(timeout=1200)
    finally:
        testing.kill_group(proc)
    assert killed is not None, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "member 1: exited with status -9; restarting it" in out, out
    with open(os.path.join(member_1, "console.log")) as f:
        log = f.read()
    assert "[impala] resumed from" in log
    # The member's output went through the console filter: none of
    # TensorFlow's C++ start-up lines, in either of its two starts.
    assert "absl::InitializeLog" not in log, log[:2000]
    assert not re.search(r"^[IWE]0000 00:00:", log, re.M), log[:2000]
    for m in range(3):
        assert _frames(os.path.join(logdir, f"member_{m}")) >= TOTAL
    events = pbt_population.read_events(logdir)
    zero = [e for e in events if e["member"] == 0]
    copies = [e for e in zero if e["copied"]]
    assert copies, zero
    first = copies[0]
    assert first["picked"] in (1, 2)
    assert first["picked_fitness"] - first["fitness"] > 0.05
    # The copy brought the donor's learning rate: 0.002 times 1.2 to some
    # power (explored by the donor, and maybe after the copy).
    powers = math.log(first["hyperparameters"]["learning_rate"] / 0.002,
                      1.2)
    assert abs(powers - round(powers)) < 1e-6, first
    before = [e for e in zero if e["time"] < first["time"]]
    assert all(e["hyperparameters"]["learning_rate"] == 0 for e in before)
    for e in events:
        assert set(e) >= {"time", "member", "frames", "fitness", "picked",
                          "picked_fitness", "copied", "hyperparameters"}
    png = str(tmp_path / "pbt.png")
    result = testing.run_impala(["--plot", f"--logdir={logdir}",
                                 f"--plot_output={png}"],
                                module="impala_tf.cli.pbt", isolate=False)
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(png) > 10_000
