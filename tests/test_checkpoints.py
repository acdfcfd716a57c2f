"""Tests for impala_tf.runtime.checkpoints: saving a step twice, finite
checkpoints only, exact resume, damaged or foreign checkpoints as one
sentence, and the hyperparameters they hold (a checkpoint without them
restores with the config's)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from impala_tf.runtime import checkpoints
from impala_tf.runtime import progress
from impala_tf.runtime import runs
from impala_tf import testing
from impala_tf.runtime import trainer
from tests import pbt_support
from tests import reliability_support

make_config = reliability_support.make_config
random_batch = reliability_support.random_batch
values = reliability_support.values


def _files(directory):
    return {n: os.stat(os.path.join(directory, n)).st_mtime_ns
            for n in os.listdir(directory)}


def test_a_step_already_saved_is_not_rewritten(tmp_path):
    _, learner, _, _ = trainer.build(testing.tiny_train_config(tmp_path))
    directory = str(tmp_path / "ck")
    saver = checkpoints.Checkpoints(directory, learner, print)
    first = saver.save()
    before = _files(directory)
    assert saver.save() == first  # Same step: the same checkpoint.
    assert _files(directory) == before  # Nothing rewritten in place.
    learner.num_steps.assign_add(1)
    second = saver.save()
    assert second != first and second.endswith("-1")
    assert tf.train.latest_checkpoint(directory) == second


def test_checkpoints_after_nonfinite_batches_are_finite_and_nan_is_not_saved(
        tmp_path):
    config = make_config(tmp_path, reward_clipping="none")
    _, learner, spec, _ = trainer.build(config)
    batch = random_batch(spec, 2, 2, seed=0)
    nan_batch = batch._replace(env_outputs=batch.env_outputs._replace(
        reward=tf.fill(batch.env_outputs.reward.shape, np.nan)))
    bad_action = batch._replace(agent_outputs=batch.agent_outputs._replace(
        action=tf.fill(batch.agent_outputs.action.shape, 2)))
    # Two skipped updates (tests/test_learner.py checks them), one finite.
    for b in (nan_batch, bad_action, batch):
        learner.train_step(b)
    lines = []
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
    return reliability_support.save_run(tmp_path_factory.mktemp("saved"))


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


def test_hyperparameters_are_checkpointed(tmp_path):
    learner = pbt_support.new_learner()
    learner.set_hyperparameters(pbt_support.NEW)
    checkpoints.Checkpoints(str(tmp_path), learner).save()
    resumed = pbt_support.new_learner()
    assert checkpoints.Checkpoints(str(tmp_path), resumed).restore()
    assert resumed.hyperparameters() == pbt_support.NEW


def test_a_checkpoint_from_before_restores_with_the_configs_values(
        tmp_path):
    old = pbt_support.new_learner()
    tf.train.Checkpoint(agent=old.agent, num_steps=old.num_steps).save(
        str(tmp_path / "ckpt"))
    learner = pbt_support.new_learner()
    assert checkpoints.Checkpoints(str(tmp_path), learner).restore()
    assert learner.hyperparameters() == {
        "learning_rate": 0.01, "entropy_cost": 0.01, "epsilon": 0.01,
        "max_grad_norm": 40.0}
    for a, b in zip(pbt_support.weights(old), pbt_support.weights(learner)):
        np.testing.assert_array_equal(a, b)


def test_episode_windows_are_checkpointed_and_restored(tmp_path):
    saved = progress.EpisodeWindows(["toy"])
    for ret in (1.0, 2.0, 6.0):
        saved.add("toy", ret)
    checkpoints.Checkpoints(str(tmp_path), pbt_support.new_learner(),
                            episodes=saved).save()
    windows = progress.EpisodeWindows(["toy"])
    saver = checkpoints.Checkpoints(str(tmp_path), pbt_support.new_learner(),
                                    episodes=windows)
    assert saver.restore() and saver.episodes_restored
    assert windows.state() == saved.state()


def test_a_checkpoint_without_episode_windows_restores_the_rest(tmp_path):
    learner = pbt_support.new_learner()
    learner.set_hyperparameters(pbt_support.NEW)
    checkpoints.Checkpoints(str(tmp_path), learner).save()
    windows = progress.EpisodeWindows(["toy"])
    resumed = pbt_support.new_learner()
    saver = checkpoints.Checkpoints(str(tmp_path), resumed,
                                    episodes=windows)
    assert saver.restore() and not saver.episodes_restored
    assert resumed.hyperparameters() == pbt_support.NEW
    assert windows.episodes == 0 and windows.mean() is None
