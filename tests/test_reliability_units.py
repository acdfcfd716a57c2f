"""Reliability, in one process: NaN updates, exact resume, checkpoint
errors, the environment watchdog and the actor supervisor.

The supervisor tests start real (TensorFlow-free) processes through
`tests.faulty_envs.fake_actor_main`; tests/test_reliability.py runs the
whole trainer with real processes and signals.
"""

import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.runtime import checkpoints
from impala_tf.runtime import learner_loop
from impala_tf.runtime import runs
from impala_tf.runtime import supervisor as supervisor_lib
from impala_tf import testing
from impala_tf.runtime import trainer
from impala_tf import types
from impala_tf.runtime import watchdog
from impala_tf.envs import batch as env_batch
from impala_tf.envs import registry
from tests import faulty_envs

TOY = testing.TOY_LEVEL


make_config = testing.tiny_train_config


def random_batch(traj_spec, batch_size, num_actions, seed):
    rng = np.random.RandomState(seed)

    def fill(spec):
        shape = [batch_size] + spec.shape.as_list()
        if spec.dtype == tf.uint8:
            return tf.constant(rng.randint(0, 256, shape).astype(np.uint8))
        if spec.dtype == tf.bool:
            return tf.constant(rng.rand(*shape) < 0.1)
        if spec.dtype in (tf.int32, tf.int64):
            return tf.constant(rng.randint(0, num_actions, shape),
                               spec.dtype)
        return tf.constant(rng.randn(*shape).astype(np.float32))

    # As actors send them: none marked replayed (all frames count).
    return tf.nest.map_structure(fill, traj_spec)._replace(
        replayed=tf.zeros([batch_size], tf.bool))


def values(learner):
    return {v.name + str(i): v.numpy()
            for i, v in enumerate(learner.variables)}


def test_nonfinite_batch_skips_update_and_checkpoint_stays_finite(tmp_path):
    config = make_config(tmp_path, reward_clipping="none")
    _, learner, spec, _ = trainer.build(config)
    batch = random_batch(spec, 2, 2, seed=0)
    nan_batch = batch._replace(env_outputs=batch.env_outputs._replace(
        reward=tf.fill(batch.env_outputs.reward.shape, np.nan)))
    before = values(learner)
    out = learner.train_step(nan_batch)
    assert not np.isfinite(out["total_loss"].numpy())
    assert int(out["nonfinite_skips"]) == 1 and int(out["num_steps"]) == 1
    after = values(learner)
    for name, value in before.items():  # Weights and optimizer slots.
        if "learning_rate" not in name and "num_" not in name and (
                "nonfinite" not in name):
            np.testing.assert_array_equal(value, after[name], err_msg=name)
    # NaN logits make actors sample an action out of range: skipped too.
    bad_action = batch._replace(agent_outputs=batch.agent_outputs._replace(
        action=tf.fill(batch.agent_outputs.action.shape, 2)))
    out = learner.train_step(bad_action)
    assert int(out["nonfinite_skips"]) == 2
    assert not np.isfinite(out["total_loss"].numpy())
    # A finite batch trains again; the skip count stays.
    out = learner.train_step(batch)
    assert int(out["nonfinite_skips"]) == 2
    assert any(not np.array_equal(before[n], v)
               for n, v in values(learner).items() if "agent" in n)
    # The trainer's line for skips, rate-limited.
    lines = []
    reporter = learner_loop.NonfiniteReporter(lines.append, 0)
    reporter.check({"nonfinite_skips": 1, "num_steps": 7,
                    "total_loss": np.nan, "grad_norm": np.nan})
    reporter.check({"nonfinite_skips": 2, "num_steps": 8,
                    "total_loss": np.nan, "grad_norm": np.nan})
    assert len(lines) == 1 and "step 7: non-finite loss" in lines[0]
    assert "update skipped" in lines[0]
    # Checkpoints hold finite values only, and a NaN weight is never saved.
    saver = checkpoints.Checkpoints(str(tmp_path / "ck"), learner,
                                    lines.append)
    path = saver.save()
    reader = tf.train.load_checkpoint(path)
    for key in reader.get_variable_to_dtype_map():
        value = reader.get_tensor(key)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), key
    learner.agent.trainable_variables[0].assign(
        tf.fill(learner.agent.trainable_variables[0].shape, np.nan))
    assert saver.save() is None
    assert "NOT saving a checkpoint" in lines[-1]
    assert checkpoints.latest(str(tmp_path / "ck")) == path


def test_resume_restores_every_variable_exactly(tmp_path):
    config = make_config(tmp_path)
    _, first, spec, _ = trainer.build(config)
    step_a = first.train_step  # Eager: no tracing time; same update.
    for seed in range(3):
        step_a(random_batch(spec, 2, 2, seed))
    run_dir = runs.RunDirectory(config.logdir)
    checkpoints.Checkpoints(run_dir.checkpoint_dir, first).save()
    # A "new process": a fresh learner, restored the trainer's way.
    _, second, _, _ = trainer.build(config)
    assert checkpoints.Checkpoints(run_dir.checkpoint_dir,
                                   second).restore() is not None
    a, b = values(first), values(second)
    assert int(second.num_steps.numpy()) == 3
    assert int(second.num_frames.numpy()) == 3 * 10
    slots = [n for n in a if "ms" in n.split("/")[-1] or "rms" in n.lower()]
    assert slots, sorted(a)  # RMSProp's mean squares are checkpointed.
    for name in a:
        if "learning_rate" not in name:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # The same next batch gives the same update, learning rate included.
    batch = random_batch(spec, 2, 2, seed=9)
    out_a = step_a(batch)
    out_b = second.train_step(batch)
    assert float(out_a["learning_rate"]) == float(out_b["learning_rate"])
    assert float(out_b["learning_rate"]) == pytest.approx(
        0.01 * (1 - 30 / 1000))
    for name, value in values(first).items():
        np.testing.assert_array_equal(value, values(second)[name],
                                      err_msg=name)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory with two checkpoints of a trained shallow agent."""
    logdir = tmp_path_factory.mktemp("saved")
    config = make_config(logdir)
    _, learner, spec, _ = trainer.build(config)
    run_dir = runs.RunDirectory(config.logdir)
    run_dir.write_config(config)
    saver = checkpoints.Checkpoints(run_dir.checkpoint_dir, learner)
    for seed in range(2):
        learner.train_step(random_batch(spec, 2, 2, seed))
        saver.save()
    return str(logdir)


def _restore_copy(saved_run, tmp_path, damage, **agent):
    copy = str(tmp_path / "copy")
    shutil.copytree(saved_run, copy)
    ckdir = os.path.join(copy, "checkpoints")
    damage(ckdir)
    _, learner, _, _ = trainer.build(make_config(copy, **agent))
    return checkpoints.Checkpoints(
        runs.RunDirectory(copy).checkpoint_dir, learner).restore()


def _truncate(ckdir):
    path = os.path.join(ckdir, "ckpt-2.data-00000-of-00001")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _flip(ckdir):
    path = os.path.join(ckdir, "ckpt-2.data-00000-of-00001")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3] ^= 0xFF
    open(path, "wb").write(bytes(data))


def _write(name, text):
    def damage(ckdir):
        with open(os.path.join(ckdir, name), "w") as f:
            f.write(text)
    return damage


@pytest.mark.parametrize("damage,agent,fragment", [
    (_truncate, {}, "is corrupt (IndexError"),
    (_flip, {}, "is corrupt (DataLossError"),
    (lambda d: os.remove(os.path.join(d, "ckpt-2.data-00000-of-00001")), {},
     "is corrupt"),
    (_write("ckpt-2.index", "garbage"), {}, "or name an older one "
     "(ckpt-1) in its 'checkpoint' file"),
    (_write("checkpoint", "garbage {{"), {}, "state file is missing"),
    (lambda d: None, {"torso": "deep"}, "written by a different agent"),
    (lambda d: None, {"num_actions": 3}, "written by a different agent"),
    (lambda d: None, {"use_lstm": True}, "written by a different agent"),
])
def test_bad_checkpoint_is_one_sentence(saved_run, tmp_path, damage, agent,
                                        fragment):
    with pytest.raises(runs.RunError) as info:
        _restore_copy(saved_run, tmp_path, damage, **agent)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def test_leftovers_of_a_killed_save_are_ignored(saved_run, tmp_path):
    def killed_mid_save(ckdir):  # What a SIGKILL inside save() leaves.
        os.makedirs(os.path.join(ckdir, "ckpt-3_temp"))
        _write("ckpt-3_temp/part-00000-of-00001.data-00000-of-00001",
               "partial")(ckdir)
        _write("ckpt-3.index", "partial")(ckdir)
    path = _restore_copy(saved_run, tmp_path, killed_mid_save)
    assert path.endswith("ckpt-2")


def test_incompatible_run_config_is_one_sentence(saved_run):
    with pytest.raises(runs.RunError, match="holds a run with agent="):
        runs.RunDirectory(saved_run).check_compatible(
            make_config(saved_run, torso="deep"))


def test_progress_repair_drops_a_half_written_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"env_frames": 1}\n{"env_fra')
    runs.RunDirectory(str(tmp_path)).repair_progress()
    assert path.read_text() == '{"env_frames": 1}\n'


def _buffers(n, unroll):
    """Zeroed trajectory buffers [n, unroll + 1, ...] for the toy env."""
    spec = types.trajectory_spec(
        2, {"frame": tf.TensorSpec([24, 24, 3], tf.uint8)}, unroll, ())
    return types.zero_trajectories(spec, n)


def test_guarded_batch_names_the_level_and_beats():
    heartbeat = [0.0] * watchdog.HEARTBEAT_SIZE
    level = "tests.faulty_envs:step_fails"
    envs = watchdog.guarded(env_batch.make, heartbeat)(
        registry.parse_level_name(level), [0, 0], [0, 1])
    buffers = _buffers(2, 2)
    envs.reset_into(0, buffers)
    assert heartbeat[0] == 0.0
    with pytest.raises(watchdog.EnvironmentFailure) as info:
        envs.step_into(np.zeros(2, np.int32), 1, buffers)
    assert str(info.value) == (
        f"environment '{level}' raised KeyError in step(): 'boom'")
    assert heartbeat[0] == 0.0
    envs.close()  # A failed environment that fails to close: no new error.
    watchdog.begin(heartbeat, 3, "step")
    assert watchdog.overdue(heartbeat, 10.0) is None
    level, call, running = watchdog.overdue(
        heartbeat, 10.0, now=time.monotonic() + 11)
    assert (level, call) == (3, "step") and running > 10
    watchdog.begin(heartbeat, 0, "reset", watchdog.FIRST_CALL_ALLOWANCE)
    assert watchdog.overdue(heartbeat, 10.0, time.monotonic() + 11) is None
    with pytest.raises(watchdog.EnvironmentFailure,
                       match="'tests.faulty_envs:broken_env' raised "
                             "RuntimeError in construction: no such device"):
        watchdog.guarded(env_batch.make)(registry.parse_level_name(
            "tests.faulty_envs:broken_env"), [0], [0])


def test_guarded_batch_close_failure_of_a_healthy_batch_is_named():
    envs = watchdog.guarded(env_batch.make)(registry.parse_level_name(
        "tests.faulty_envs:step_fails"), [0], [0])
    with pytest.raises(watchdog.EnvironmentFailure,
                       match="raised OSError in close\\(\\): also broken"):
        envs.close()


def _supervisor(behaviour, lines, **kwargs):
    config = faulty_envs.FakeActorConfig(
        behaviour, registry.parse_level_name(TOY))
    return supervisor_lib.ActorSupervisor(
        config, "localhost:1", 1, log=lines.append,
        target=faulty_envs.fake_actor_main, **kwargs)


def _poll_until(sup, condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    try:
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            sup.poll()
            time.sleep(0.05)
    finally:
        sup.stop(timeout_s=2)


def test_supervisor_restarts_with_backoff_then_gives_up():
    lines = []
    sup = _supervisor("crash", lines, restart_delay_s=0.1,
                      max_consecutive_failures=3)
    sup.start()
    with pytest.raises(supervisor_lib.ActorsFailing,
                       match="actor 0 failed 3 times in a row"):
        _poll_until(sup, lambda: False)
    assert sup.restarts == 2
    assert "exited with status 1; restarting it in 0.1 s" in lines[0]
    assert "restarting it in 0.2 s" in lines[1]
    assert not sup.pids()


def test_supervisor_counts_environment_errors():
    lines = []
    sup = _supervisor("env_error", lines, restart_delay_s=0.05)
    sup.start()
    _poll_until(sup, lambda: sup.restarts >= 2)
    assert sup.stats()["env_errors"] >= 2
    assert "stopped because its environment raised" in lines[0]


def test_supervisor_kills_an_actor_whose_environment_hangs():
    lines = []
    sup = _supervisor("hang", lines, env_timeout_s=0.5, restart_delay_s=0.05)
    sup.start()
    pid = sup.pids()[0]
    _poll_until(sup, lambda: sup.restarts >= 1)
    assert lines[0].startswith(
        f"[impala] actor 0: environment '{TOY}' has not returned from "
        "step() for "), lines
    assert lines[0].endswith("s (--env_timeout_s=0.5); killing the actor")
    assert "was stopped by the environment watchdog" in lines[1]
    assert sup.stats()["env_timeouts"] == 1
    stat = testing.proc_stat(pid)
    assert stat is None or stat.state == "Z"  # Gone, or a zombie.


def test_supervisor_stops_healthy_actors_quickly():
    sup = _supervisor("run", [])
    sup.start()
    time.sleep(1.0)
    sup.poll()
    assert sup.stats()["actors_alive"] == 1 and sup.restarts == 0
    start = time.monotonic()
    sup.stop()
    assert time.monotonic() - start < 5 and sup.stats()["actors_alive"] == 0
