"""Tests for impala_tf.runtime.baselines.mode: the synchronous actors'
weights, what each Table 1 architecture's config refuses, and real training
runs with each architecture."""

import dataclasses
import multiprocessing
import threading

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import testing
from impala_tf.runtime import progress
from impala_tf.runtime.baselines import mode as mode_lib
from impala_tf.transport import shared_weights
from tests import baselines_support
from tests import procs

SPAWN = multiprocessing.get_context("spawn")
_config = baselines_support.architecture_config


def _weights(values, version):
    specs = [(tf.float32, [2])]
    w = shared_weights.SharedWeights(specs, SPAWN)
    w.write([np.full([2], values, np.float32)], version)
    return w


class _Reader:
    def __init__(self, weights):
        self._reader = shared_weights.WeightReader(weights)

    def pull_weights(self):
        return self._reader.pull_weights()

    def enqueue(self, trajectories):
        del trajectories

    def close(self):
        pass


def test_sync_weights_waits_for_a_newer_version():
    weights = _weights(1.0, 0)
    sync = mode_lib.SyncWeights(_Reader(weights), weights)
    first, version = sync.pull_weights()  # The first pull does not wait.
    assert version == 0 and first[0][0] == 1.0
    pulled, done = [], threading.Event()

    def pull():
        pulled.append(sync.pull_weights())
        done.set()

    thread = threading.Thread(target=pull)
    thread.start()
    # Version 0 again (a republication) does not release it.
    weights.write([np.full([2], 1.5, np.float32)], 0)
    assert not done.wait(0.3)
    weights.write([np.full([2], 2.0, np.float32)], 1)
    assert done.wait(30)
    thread.join()
    assert pulled[0][1] == 1 and pulled[0][0][0][0] == 2.0
    weights.close()  # The learner is done: a waiting actor ends.
    with pytest.raises(tf.errors.CancelledError):
        sync.pull_weights()


def test_config_refuses_what_an_architecture_cannot_run(tmp_path):
    config = testing.tiny_train_config(tmp_path)  # 1 actor x 1 env, B=2.
    with pytest.raises(ValueError, match=r"--batch_size=2 must equal "
                       r"--num_actors x --envs_per_actor = 1 x 1 = 1"):
        _config(tmp_path, "a2c_sync_traj")
    _config(tmp_path, "a3c")  # A3C has no batch to match.
    with pytest.raises(ValueError, match="shared memory only"):
        _config(tmp_path, "a3c", local_transport="grpc")
    with pytest.raises(ValueError, match="set --replay_proportion=0"):
        dataclasses.replace(
            config, learner=dataclasses.replace(config.learner,
                                                replay_proportion=0.5),
            actor=dataclasses.replace(config.actor, architecture="a3c"))
    with pytest.raises(ValueError, match="is not one of"):
        _config(tmp_path, "a4c")


# -- Real training runs (learner and actor processes). ----------------------

TINY = testing.TINY_FLAGS + ["--envs_per_actor=4"]  # 2 x 4 = batch 8.


def _train(tmp_path, architecture, frames, extra=()):
    logdir = str(tmp_path / architecture)
    result = testing.run_impala(
        TINY + [f"--architecture={architecture}", f"--logdir={logdir}",
                f"--total_environment_frames={frames}"] + list(extra),
        timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return progress.read_records(logdir, strict=True), result


@pytest.mark.slow
@procs.requires_netns
@pytest.mark.parametrize("architecture",
                         ["a2c_sync_traj", "a2c_sync_step", "a3c"])
def test_each_architecture_learns_the_toy_level(tmp_path, architecture):
    records, result = _train(tmp_path, architecture, 12000)
    last = records[-1]
    assert last["env_frames"] >= 12000
    assert last["episode_return_mean"] > 7.5, records  # Random play: 5.
    assert f"architecture {architecture}" in result.stdout
    assert last["actor_unrolls"] > 0 and last["learner_step_s"] > 0
    if architecture.startswith("a2c"):
        # The learner trains only on unrolls of its current weights.
        assert all(r["off_version_trajectories"] == 0 for r in records)
        assert all(r["policy_lag_mean"] in (0.0, None) for r in records)
        assert last["actor_pull_s"] > 0  # Waiting for the update.
    if architecture == "a2c_sync_step":
        assert last["env_step_s"] > 0 and last["env_straggler_s"] >= 0
    if architecture == "a3c":
        assert last["actor_gradient_s"] > 0
        # Each gradient is taken with the weights that acted: rho is 1.
        assert last["mean_rho"] == pytest.approx(1.0, abs=1e-3)
        # One step per worker unroll of 4 environments x 10 steps.
        assert last["learner_steps"] == last["env_frames"] // 40


@pytest.mark.slow
@procs.requires_netns
def test_slow_reset_task_runs_in_lock_step(tmp_path):
    records, _ = _train(
        tmp_path, "a2c_sync_step", 4000,
        ["--level_name=benchmarks.slow_reset_env:make_env"])
    last = records[-1]
    assert last["env_frames"] >= 4000
    # Restarts of tens of milliseconds in one process hold up the other.
    assert last["env_straggler_s"] > 0.05
