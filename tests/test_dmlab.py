"""Tests for the DeepMind Lab adapter, against tests/fake_deepmind_lab.py."""

import gc
import os
import subprocess
import sys
import textwrap
import time

import dm_env
import numpy as np
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:  # The child processes inherit sys.path.
    sys.path.insert(0, TESTS_DIR)

import fake_deepmind_lab  # noqa: E402
from impala_tf import testing  # noqa: E402
from impala_tf.envs import dmlab  # noqa: E402
from tests.dmlab_support import TABLE_D2  # noqa: E402

FAKE = "fake_deepmind_lab"


@pytest.fixture
def fake_env(monkeypatch, tmp_path):
    """Points the adapter at the fake; returns a function reading its log."""
    log = tmp_path / "fake_lab_log.jsonl"
    monkeypatch.setenv(dmlab.DEEPMIND_LAB_MODULE_ENV_VAR, FAKE)
    monkeypatch.setenv(fake_deepmind_lab.LOG_ENV_VAR, str(log))
    monkeypatch.setenv(fake_deepmind_lab.EPISODE_FRAMES_ENV_VAR, "12")
    envs = []

    def make(level="rooms_watermaze", seed=1, **kwargs):
        env = dmlab.DmLabEnvironment(level, seed, **kwargs)
        envs.append(env)
        return env

    def records(env=None, method=None):
        result = fake_deepmind_lab.read_log(str(log))
        if env is not None:
            result = [r for r in result if r["pid"] == env.pid]
        if method is not None:
            result = [r for r in result if r["method"] == method]
        return result

    make.records = records
    yield make
    for env in envs:
        env.close()


def _pid_gone(pid, timeout=10.0):
    """True once ``pid`` has exited (a zombie counts as exited)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        stat = testing.proc_stat(pid)
        if stat is None or stat.state == "Z":
            return True
        time.sleep(0.05)
    return False


# -- pure functions ---------------------------------------------------------


def test_resolve_level_name():
    r = dmlab.resolve_level_name
    assert r("rooms_watermaze") == "contributed/dmlab30/rooms_watermaze"
    assert r("dmlab/explore_goal_locations_small") == (
        "contributed/dmlab30/explore_goal_locations_small")
    assert r("rooms_collect_good_objects_train") == (
        "contributed/dmlab30/rooms_collect_good_objects_train")
    assert r("seekavoid_arena_01") == "seekavoid_arena_01"
    assert r("dmlab/seekavoid_arena_01") == "seekavoid_arena_01"
    assert r("contributed/dmlab30/rooms_watermaze") == (
        "contributed/dmlab30/rooms_watermaze")
    with pytest.raises(ValueError):
        r("")


def test_make_config_values_are_strings():
    config = dmlab.make_config(96, 72, is_test=True, dataset_path="/data",
                               extra_config={"foo": True, "n": 3})
    assert config == {"width": "96", "height": "72", "logLevel": "WARN",
                      "datasetPath": "/data", "allowHoldOutLevels": "true",
                      "mixerSeed": "1611489005", "foo": "true", "n": "3"}
    assert dmlab.TEST_MIXER_SEED == 0x600D5EED == 1611489005
    assert "mixerSeed" not in dmlab.make_config()


# -- the adapter against the fake ------------------------------------------


def test_train_config_specs_and_observations(fake_env):
    env = fake_env("dmlab/rooms_watermaze", seed=3)
    (init,) = fake_env.records(env, "__init__")
    assert init["level"] == "contributed/dmlab30/rooms_watermaze"
    assert init["observations"] == ["RGB_INTERLEAVED", "INSTR"]
    assert init["renderer"] == "software"
    assert init["config"] == {"width": "96", "height": "72",
                              "logLevel": "WARN"}
    assert init["level_cache"] is False

    obs_spec = env.observation_spec()
    assert obs_spec["frame"].shape == (72, 96, 3)
    assert obs_spec["frame"].dtype == np.uint8
    assert obs_spec["instruction"].shape == ()
    assert obs_spec["instruction"].dtype == object
    action_spec = env.action_spec()
    assert isinstance(action_spec, dm_env.specs.DiscreteArray)
    assert action_spec.num_values == 9

    ts = env.reset()
    assert ts.first()
    obs_spec["frame"].validate(ts.observation["frame"])
    assert ts.observation["instruction"] == ""
    assert set(ts.observation) == {"frame", "instruction"}


def test_test_mode_config_and_hold_out_level(fake_env, tmp_path):
    env = fake_env("rooms_collect_good_objects_test", seed=0, is_test=True,
                   dataset_path=str(tmp_path), renderer="hardware",
                   width=64, height=48, extra_config={"episodeLengthSeconds": 1})
    (init,) = fake_env.records(env, "__init__")
    assert init["level"] == (
        "contributed/dmlab30/rooms_collect_good_objects_test")
    assert init["renderer"] == "hardware"
    assert init["config"] == {
        "width": "64", "height": "48", "logLevel": "WARN",
        "datasetPath": str(tmp_path), "allowHoldOutLevels": "true",
        "mixerSeed": "1611489005", "episodeLengthSeconds": "1"}
    assert all(isinstance(v, str) for v in init["config"].values())
    assert env.reset().observation["frame"].shape == (48, 64, 3)
    # In training mode DeepMind Lab refuses the hold-out level; the error is
    # raised in the parent with the Lab's message.
    with pytest.raises(RuntimeError, match="only be used during evaluation"):
        fake_env("rooms_collect_good_objects_test", seed=0)


def test_actions_use_table_d2_with_four_repeats(fake_env):
    env = fake_env("seekavoid_arena_01", extra_config={"episodeLengthSeconds":
                                                       100})
    env.reset()
    for action in range(9):
        ts = env.step(np.int32(action))
        assert ts.mid() and ts.discount == 1.0
        assert isinstance(ts.reward, float)
    steps = fake_env.records(env, "step")
    assert [r["action"] for r in steps] == TABLE_D2
    assert all(r["num_steps"] == 4 for r in steps)
    (init,) = fake_env.records(env, "__init__")
    assert init["level"] == "seekavoid_arena_01"
    for bad in (9, -1, 2.5, "x", np.array([1, 2])):
        with pytest.raises(ValueError):
            env.step(bad)


def test_num_action_repeats_is_passed(fake_env):
    env = fake_env(num_action_repeats=2)
    env.reset()
    env.step(0)
    assert [r["num_steps"] for r in fake_env.records(env, "step")] == [2]


def test_episode_end_is_last_then_reset(fake_env):
    env = fake_env(seed=5)  # 12 frames = 3 agent steps of 4 frames.
    first = env.reset()
    mid1 = env.step(0)
    mid2 = env.step(4)
    last = env.step(5)
    assert [first.step_type, mid1.step_type, mid2.step_type,
            last.step_type] == [dm_env.StepType.FIRST, dm_env.StepType.MID,
                                dm_env.StepType.MID, dm_env.StepType.LAST]
    assert last.discount == 0.0
    assert last.reward in (-1.0, 1.0)
    # DeepMind Lab has no observation after the end: the last one it gave.
    np.testing.assert_array_equal(last.observation["frame"],
                                  mid2.observation["frame"])
    # dm_env: step() after LAST starts a new episode, ignoring the action.
    again = env.step(3)
    assert again.first()
    assert env.step(0).mid()
    assert env.reset().first()

    resets = fake_env.records(env, "reset")
    assert len(resets) == 3
    rng = np.random.RandomState(5)
    assert [r["seed"] for r in resets] == [
        int(rng.randint(0, 2**31 - 1)) for _ in range(3)]
    assert len(fake_env.records(env, "step")) == 4  # The ignored one is not.


def test_seeds_make_runs_reproducible(fake_env):
    def rollout(env):
        frames, rewards = [env.reset().observation["frame"]], []
        for action in (4, 5, 4, 5, 6):
            ts = env.step(action)
            frames.append(ts.observation["frame"])
            rewards.append(ts.reward)
        return np.stack(frames), rewards

    a, b, c = fake_env(seed=7), fake_env(seed=7), fake_env(seed=8)
    frames_a, rewards_a = rollout(a)
    frames_b, rewards_b = rollout(b)
    np.testing.assert_array_equal(frames_a, frames_b)
    assert rewards_a == rewards_b
    seeds = [r["seed"] for r in fake_env.records(method="reset")]
    assert seeds[:2] == seeds[2:4]
    c.reset()
    assert fake_env.records(c, "reset")[0]["seed"] != seeds[0]


def test_instruction_reaches_observation(fake_env):
    env = fake_env("language_select_described_object", seed=2)
    ts = env.reset()
    instructions = [ts.observation["instruction"]]
    for _ in range(2):
        ts = env.step(4)
        instructions.append(ts.observation["instruction"])
    assert all(isinstance(i, str) and i.startswith("Pick the ")
               for i in instructions)
    env.observation_spec()["instruction"].validate(
        np.array(instructions[0], dtype=object))


def test_close_stops_child(fake_env):
    env = fake_env()
    env.reset()
    pid = env.pid
    env.close()
    assert _pid_gone(pid)
    assert env._process.exitcode == 0
    assert fake_env.records(env, "close"), "Lab.close() not called"
    env.close()  # Idempotent.
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_garbage_collection_stops_child(fake_env, monkeypatch):
    monkeypatch.setenv(dmlab.DEEPMIND_LAB_MODULE_ENV_VAR, FAKE)
    env = dmlab.DmLabEnvironment("rooms_watermaze", seed=0)
    env.reset()
    process, pid = env._process, env.pid
    del env
    gc.collect()
    assert _pid_gone(pid)
    assert process.exitcode == 0


def test_context_manager_closes(fake_env):
    with fake_env() as env:
        env.reset()
        pid = env.pid
    assert _pid_gone(pid)


@pytest.mark.slow
def test_child_exits_when_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = [{REPO_ROOT!r}, {TESTS_DIR!r}]
        from impala_tf.envs import dmlab
        env = dmlab.DmLabEnvironment("rooms_watermaze", 0,
                                     lab_module={FAKE!r})
        env.reset()
        print(env.pid, flush=True)
        os.kill(os.getpid(), 9)
    """)
    result = subprocess.run([sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr
    pid = int(result.stdout.split()[0])
    assert _pid_gone(pid, timeout=15)


def test_lab_errors_are_raised_in_parent(fake_env):
    with pytest.raises(RuntimeError, match="Could not find level"):
        fake_env("no_such_level")
    with pytest.raises(ValueError, match="renderer"):
        fake_env(renderer="vulkan")


# -- missing DeepMind Lab ------------------------------------------------------


def _assert_install_sentence(message):
    assert "\n" not in message
    assert message.endswith(".")
    assert message.count(". ") == 0, message  # One sentence.
    assert "https://github.com/deepmind/lab" in message
    assert "bazel build -c opt //python/pip_package:build_pip_package" in (
        message)
    assert "pip install" in message


def test_missing_module_raises_one_sentence_promptly(monkeypatch):
    monkeypatch.setenv(dmlab.DEEPMIND_LAB_MODULE_ENV_VAR,
                       "no_such_deepmind_lab_module")
    start = time.time()
    with pytest.raises(dmlab.DeepMindLabNotInstalledError) as info:
        dmlab.DmLabEnvironment("rooms_watermaze", seed=0)
    assert time.time() - start < 1.0
    assert isinstance(info.value, ImportError)
    assert "no_such_deepmind_lab_module" in str(info.value)
    _assert_install_sentence(str(info.value))


def test_default_module_is_deepmind_lab(monkeypatch):
    monkeypatch.delenv(dmlab.DEEPMIND_LAB_MODULE_ENV_VAR, raising=False)
    assert dmlab.lab_module_name() == "deepmind_lab"
    assert dmlab.lab_module_name("x") == "x"
    import importlib.util
    if importlib.util.find_spec("deepmind_lab") is not None:
        pytest.skip("deepmind_lab is installed here")
    with pytest.raises(dmlab.DeepMindLabNotInstalledError, match="deepmind_lab"):
        dmlab.DmLabEnvironment("rooms_watermaze", seed=0)


def test_module_failing_to_import_in_child(monkeypatch, tmp_path):
    (tmp_path / "broken_lab_module.py").write_text(
        "raise ImportError('libOSMesa.so.8: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(dmlab.DeepMindLabNotInstalledError) as info:
        dmlab.DmLabEnvironment("rooms_watermaze", seed=0,
                               lab_module="broken_lab_module")
    assert "libOSMesa" in str(info.value)
    assert "\n" not in str(info.value)
    assert "https://github.com/deepmind/lab" in str(info.value)


# -- level cache ------------------------------------------------------------


def test_level_cache_used_by_lab(fake_env, tmp_path):
    cache_dir = tmp_path / "levels"
    env = fake_env(seed=11, level_cache_dir=str(cache_dir))
    env.reset()
    (init,) = fake_env.records(env, "__init__")
    assert init["level_cache"] is True
    (miss,) = fake_env.records(env, "level_cache_miss")
    assert os.listdir(cache_dir) == [miss["key"]]
    # A second Lab with the same seed sequence finds the compiled map.
    other = fake_env(seed=11, level_cache_dir=str(cache_dir))
    other.reset()
    (hit,) = fake_env.records(other, "level_cache_hit")
    assert hit["key"] == miss["key"]
    assert not fake_env.records(other, "level_cache_miss")


# -- the fake itself (in process) ------------------------------------------


def _lab(level="contributed/dmlab30/language_select_described_object",
         **config):
    config = {"width": "96", "height": "72", **config}
    return fake_deepmind_lab.Lab(level, ["RGB_INTERLEAVED", "INSTR"],
                                 config=config)


def test_fake_validates_like_deepmind_lab():
    with pytest.raises(TypeError):
        fake_deepmind_lab.Lab("seekavoid_arena_01", ["RGB_INTERLEAVED"],
                              config={"width": 96})
    with pytest.raises(TypeError):
        fake_deepmind_lab.Lab("seekavoid_arena_01", ("RGB_INTERLEAVED",))
    with pytest.raises(ValueError, match="Unknown observation"):
        fake_deepmind_lab.Lab("seekavoid_arena_01", ["RGBX"])
    with pytest.raises(RuntimeError):
        fake_deepmind_lab.Lab("rooms_watermaze", ["RGB_INTERLEAVED"])
    lab = _lab()
    action = np.zeros(7, dtype=np.intc)
    with pytest.raises(RuntimeError, match="wrong status"):
        lab.step(action)
    with pytest.raises(RuntimeError, match="wrong status"):
        lab.observations()
    with pytest.raises(ValueError, match="seed"):
        lab.reset(seed=np.int64(3))
    lab.reset(seed=3)
    with pytest.raises(ValueError, match="dtype"):
        lab.step(np.zeros(7, dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        lab.step(np.zeros(6, dtype=np.intc))
    with pytest.raises(TypeError):
        lab.step([0] * 7)
    with pytest.raises(ValueError, match="bounds"):
        lab.step(np.array([0, 0, 2, 0, 0, 0, 0], dtype=np.intc))
    with pytest.raises(ValueError, match="num_steps"):
        lab.step(action, num_steps=0)
    assert lab.step(action, num_steps=4) == 0.0
    assert lab.num_steps() == 4
    assert [m for m, _ in lab.calls] == [
        "__init__", "reset", "level_cache_miss", "step"]
    assert lab.close() is True and lab.close() is False


@pytest.mark.parametrize("level", [
    "contributed/dmlab30/language_select_described_object",
    "contributed/dmlab30/rooms_watermaze"])
def test_fake_task_is_learnable(level):
    """Reading frame (and instruction) solves it; random play scores ~0."""
    colours = {name: rgb for name, rgb in fake_deepmind_lab.COLOURS}
    lab = _lab(level, episodeLengthSeconds="100")
    lab.reset(seed=0)
    total = 0.0
    for _ in range(50):
        obs = lab.observations()
        frame, instruction = obs["RGB_INTERLEAVED"], obs["INSTR"]
        if instruction:
            target = colours[instruction.split()[2]]
            left = tuple(frame[0, 0]) == target
        else:
            left = tuple(frame[0, 0]) in (colours["red"], colours["yellow"])
        look = -20 if left else 20
        total += lab.step(np.array([look, 0, 0, 1, 0, 0, 0], np.intc), 4)
    assert total == 50.0
    rng = np.random.RandomState(0)
    random_total = sum(
        lab.step(np.array(TABLE_D2[rng.randint(9)], np.intc), 4)
        for _ in range(400))
    assert abs(random_total) < 60
