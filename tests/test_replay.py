"""Learner-side experience replay (`impala_tf.algorithm.replay`), Section 5.2.2.

Unit tests of the frame store, the buffer and the batch mixer against
plain numpy; the learner's rho on replayed data; and real training runs
with replay on (both transports, resume, a bad capacity).
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import agents
from impala_tf.algorithm import learner as learner_lib
from impala_tf.runtime import progress
from impala_tf.algorithm import replay
from impala_tf import testing
from impala_tf import types
from tests import procs

T, A, H, W, C = 6, 3, 24, 24, 4


def _spec(use_lstm=False, channels=C):
    state = agents.make_agent("shallow", A, use_lstm=use_lstm).state_spec(
        None)
    return types.trajectory_spec(
        A, {"frame": tf.TensorSpec([H, W, channels], tf.uint8)}, T, state)


def _stacked_frames(rng, steps, new_game_at=()):
    """[steps, H, W, C] frame stacks, newest plane last, as ale_core makes
    them: a new game fills its stack with its first frame."""
    stack = np.repeat(rng.integers(0, 255, [H, W, 1], np.uint8), C, -1)
    out = []
    for t in range(steps):
        if t in new_game_at:
            stack = np.repeat(rng.integers(0, 255, [H, W, 1], np.uint8), C,
                              -1)
        elif t:
            plane = rng.integers(0, 255, [H, W, 1], np.uint8)
            stack = np.concatenate([stack[..., 1:], plane], -1)
        out.append(stack)
    return np.stack(out)


def _trajectories(spec, n, first_id, seed=0):
    """n trajectories, each [T+1, ...], numbered by policy_version; flat
    lists of numpy arrays in `tf.nest.flatten(spec)` order."""
    rng = np.random.default_rng(seed + first_id)
    batch = []
    for i in range(n):
        def leaf(s):
            shape = s.shape.as_list()
            if s.dtype == tf.uint8:
                return _stacked_frames(rng, shape[0], new_game_at=(3,))
            if s.dtype == tf.bool:
                return rng.random(shape) < 0.2
            if s.dtype.is_integer:
                return rng.integers(0, A, shape).astype(s.dtype.as_numpy_dtype)
            return rng.normal(size=shape).astype(s.dtype.as_numpy_dtype)
        traj = tf.nest.map_structure(leaf, spec)
        traj = traj._replace(policy_version=np.int64(first_id + i),
                             level_id=np.int32(0), replayed=np.bool_(False))
        batch.append(tf.nest.flatten(traj))
    return batch


def _batch(spec, flat_list):
    """Stacks flat trajectories into the Trajectory nest of tensors
    [n, T+1, ...] (what a transport's batch source gives)."""
    stacked = [tf.constant(np.stack(leaves)) for leaves in zip(*flat_list)]
    return tf.nest.pack_sequence_as(spec, stacked)


def _ids(batch):
    return batch.policy_version.numpy().tolist()


# -- Frames. ----------------------------------------------------------------

@pytest.mark.parametrize("new_games", [(), (0,), (2, 3), (1, 2, 3, 4, 5, 6)])
def test_frames_round_trip_exactly_and_share_planes(new_games):
    rng = np.random.default_rng(1)
    frames = _stacked_frames(rng, T + 1, new_game_at=new_games)
    planes, starts = replay.compress_frames(frames)
    back = replay.decompress_frames(planes, starts, C)
    assert back.dtype == np.uint8 and back.shape == frames.shape
    np.testing.assert_array_equal(back, frames)
    # One plane per step within a game, a whole stack at each new game.
    restarts = len(set(new_games) - {0})
    assert len(planes) == (T + 1) + (C - 1) + restarts * (C - 1)


def test_frames_decompress_into_a_row_of_a_batch():
    """`out`: the stack is written into the given array (a batch's row),
    the rows around it untouched; so does the buffer's `get`."""
    rng = np.random.default_rng(3)
    frames = _stacked_frames(rng, T + 1, new_game_at=(2,))
    planes, starts = replay.compress_frames(frames)
    batch = np.full((3,) + frames.shape, 7, np.uint8)
    written = replay.decompress_frames(planes, starts, C, out=batch[1])
    assert np.shares_memory(written, batch)
    np.testing.assert_array_equal(batch[1], frames)
    assert (batch[0] == 7).all() and (batch[2] == 7).all()
    buffer = replay.ReplayBuffer(4, frame_index=0)
    buffer.add([frames, np.int32(5)])
    rows = [np.zeros((2,) + frames.shape, np.uint8), np.zeros([2], np.int32)]
    buffer.get(0, out=[rows[0][1], rows[1][1, ...]])
    np.testing.assert_array_equal(rows[0][1], frames)
    assert rows[1].tolist() == [0, 5] and (rows[0][0] == 0).all()


def test_unstacked_frames_are_stored_whole():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 255, [T + 1, H, W, 3], np.uint8)
    planes, starts = replay.compress_frames(frames)
    assert len(planes) == (T + 1) * 3
    np.testing.assert_array_equal(
        replay.decompress_frames(planes, starts, 3), frames)


def test_memory_estimates():
    spec = _spec()
    raw = replay.trajectory_bytes(spec, stacked=False)
    shared = replay.trajectory_bytes(spec, stacked=True)
    assert raw - shared == ((T + 1) * C - (T + 1 + C - 1)) * H * W
    typical, most = replay.check_fits(spec, 100, True, available=10 ** 12)
    assert (typical, most) == (100 * shared, 100 * raw)
    with pytest.raises(replay.ReplayError, match="lower --replay_capacity"):
        replay.check_fits(spec, 100, True, available=100 * shared - 1)
    # Frames that are not a stack (DMLab's RGB) are counted whole.
    assert replay.check_fits(spec, 100, False, available=100 * raw) == (
        100 * raw, 100 * raw)
    with pytest.raises(replay.ReplayError):
        replay.check_fits(spec, 100, False, available=100 * raw - 1)


@pytest.mark.parametrize("proportion,batch_size,k", [
    (0.0, 8, 0), (0.5, 8, 4), (0.5, 32, 16), (0.25, 6, 2), (0.3, 5, 2)])
def test_replayed_share_is_round_proportion_times_batch(proportion,
                                                        batch_size, k):
    assert replay.replayed_per_batch(proportion, batch_size) == k


@pytest.mark.parametrize("proportion,batch_size", [(1.0, 8), (0.9, 2),
                                                   (-0.1, 8)])
def test_a_batch_must_keep_a_fresh_trajectory(proportion, batch_size):
    with pytest.raises(replay.ReplayError):
        replay.replayed_per_batch(proportion, batch_size)


# -- The mixer. --------------------------------------------------------------

def _mixer(spec, fresh_batch, batch_size=8, proportion=0.5, capacity=1000,
           batches=30, seed=0):
    """A ReplayBatchSource over `batches` fresh batches of `fresh_batch`
    trajectories numbered 0, 1, 2, ...; also returns the originals."""
    originals, source = {}, []
    for b in range(batches):
        flat = _trajectories(spec, fresh_batch, b * fresh_batch)
        for i, traj in enumerate(flat):
            originals[b * fresh_batch + i] = traj
        source.append(_batch(spec, flat))
    return replay.ReplayBatchSource(
        testing.ListBatches(source), spec, batch_size, proportion,
        capacity, seed=seed), originals


def test_exact_share_fresh_in_order_and_all_fresh_while_warming_up():
    spec = _spec()
    mixer, _ = _mixer(spec, fresh_batch=4)
    seen_fresh = []
    for n in range(12):
        batch = next(mixer)
        mask = batch.replayed.numpy()  # The record travels in the batch.
        ids = _ids(batch)
        assert len(ids) == 8
        if n == 0:  # The buffer is empty: a whole batch of fresh ones.
            assert not mask.any()
        else:       # Exactly round(0.5 * 8) = 4 replayed, last.
            assert mask.tolist() == [False] * 4 + [True] * 4
        fresh = [i for i, r in zip(ids, mask) if not r]
        seen_fresh += fresh
        # Replayed ones were all seen fresh in an earlier batch.
        assert set(i for i, r in zip(ids, mask) if r) <= set(
            seen_fresh[:-len(fresh)])
        assert len(set(ids)) == len(ids)  # Uniform without replacement.
    assert seen_fresh == list(range(len(seen_fresh)))  # Arrival order.
    stats = mixer.stats()
    assert stats["replay_size"] == len(seen_fresh)
    assert stats["replay_bytes"] > 0


def test_replayed_trajectories_are_bit_for_bit_what_the_actor_sent():
    spec = _spec(use_lstm=True)
    mixer, originals = _mixer(spec, fresh_batch=4)
    replayed_count = 0
    for _ in range(15):
        batch = next(mixer)
        mask = batch.replayed.numpy()
        for b, traj_id in enumerate(_ids(batch)):
            got = [x.numpy()[b] for x in tf.nest.flatten(
                batch._replace(replayed=tf.zeros_like(batch.replayed)))]
            for g, want in zip(got, originals[traj_id]):
                assert g.dtype == want.dtype
                np.testing.assert_array_equal(g, want)
            replayed_count += int(mask[b])
    assert replayed_count >= 50


def test_eviction_is_first_in_first_out():
    spec = _spec()
    capacity = 10
    mixer, _ = _mixer(spec, fresh_batch=4, capacity=capacity, batches=40)
    arrived = []
    for _ in range(30):
        batch = next(mixer)
        mask = batch.replayed.numpy()
        ids = _ids(batch)
        replayed = [i for i, r in zip(ids, mask) if r]
        # Sampled before this batch's fresh ones entered: only the last
        # `capacity` arrivals are still held.
        assert set(replayed) <= set(arrived[-capacity:]), (replayed, arrived)
        arrived += [i for i, r in zip(ids, mask) if not r]
    assert mixer.buffer.size == capacity
    newest = [mixer.buffer.get(age)[1] for age in range(capacity)]
    assert [int(v) for v in newest] == arrived[::-1][:capacity]


def test_uneven_fresh_batches_are_regrouped():
    # The transport's batches need not have B - k trajectories.
    spec = _spec()
    mixer, _ = _mixer(spec, fresh_batch=3, batch_size=6, proportion=0.5)
    ids = []
    for _ in range(8):
        batch = next(mixer)
        mask = batch.replayed.numpy()
        ids += [i for i, r in zip(_ids(batch), mask) if not r]
    assert ids == list(range(len(ids)))


# -- The learner sees rho != 1 on replayed data. ----------------------------

def _learner_config(**overrides):
    values = dict(
        batch_size=8, unroll_length=T, num_action_repeats=1,
        total_environment_frames=10 ** 6, learning_rate=0.01, epsilon=0.01,
        entropy_cost=0.01, reward_clipping="abs_one",
        max_grad_norm=40.0)
    values.update(overrides)
    return learner_lib.LearnerConfig(**values)


class _OnPolicy:
    """A batch source whose trajectories' behaviour logits are the agent's
    own at the time they are read (fresh, on-policy data)."""

    def __init__(self, spec, agent, batch_size):
        self._spec, self._agent, self._n = spec, agent, batch_size
        self._count = 0

    def __iter__(self):
        return self

    def __next__(self):
        flat = _trajectories(self._spec, self._n, self._count, seed=5)
        self._count += self._n
        batch = _batch(self._spec, flat)
        major = learner_lib.time_major(batch)
        outputs, _ = self._agent.unroll(major.agent_outputs.action,
                                        major.env_outputs, major.agent_state)
        # agent_outputs[t] holds mu(.|x_{t-1}): the logits of step t-1.
        logits = tf.concat([outputs.policy_logits[:1],
                            outputs.policy_logits[:-1]], 0)
        logits = tf.transpose(logits, [1, 0, 2])
        return batch._replace(agent_outputs=batch.agent_outputs._replace(
            policy_logits=logits))

    def close(self):
        pass


@pytest.mark.parametrize("use_lstm", [False, True])
def test_replayed_batches_have_rho_below_one_once_weights_moved(use_lstm):
    tf.random.set_seed(0)
    spec = _spec(use_lstm)
    agent = agents.make_agent("shallow", A, use_lstm=use_lstm)
    learner = learner_lib.Learner(agent, _learner_config())
    learner.build(types.batch_spec(spec, 8))
    step = learner.step_function(False)
    # Exactly B - k fresh per read: fresh data is on-policy when stepped.
    mixer = replay.ReplayBatchSource(_OnPolicy(spec, agent, 4), spec, 8, 0.5,
                                     1000)
    # The first batch: all fresh (a batch of 8 = two reads).
    rho = {"fresh": [], "replayed": []}
    for _ in range(12):
        out = step(next(mixer))
        mask = out["replayed"].numpy()
        clipped = out["clipped_rho_per_trajectory"].numpy()
        rho["fresh"] += clipped[~mask].tolist()
        rho["replayed"] += clipped[mask].tolist()
    # The newest fresh batch is on-policy.
    np.testing.assert_allclose(clipped[~mask], 1.0, atol=1e-5)
    assert len(rho["replayed"]) == 11 * 4
    # Replayed trajectories were acted by older weights.
    assert np.mean(rho["replayed"][-8:]) < 0.999, rho["replayed"]


@pytest.mark.parametrize("repeats", [1, 4])
def test_frames_counted_are_the_fresh_trajectories_played(repeats):
    # B = 8, p = 0.5: once the buffer holds a batch, 4 of 8 are replayed.
    spec = _spec()
    learner = learner_lib.Learner(
        agents.make_agent("shallow", A, use_lstm=False),
        _learner_config(num_action_repeats=repeats))
    learner.build(types.batch_spec(spec, 8))
    step = learner.step_function(False)
    source = testing.ListBatches([_batch(spec, _trajectories(spec, 4, 4 * i))
                                  for i in range(40)])
    mixer = replay.ReplayBatchSource(source, spec, 8, 0.5, 1000)
    replayed = 0
    for _ in range(10):
        out = step(next(mixer))
        replayed += int(out["replayed"].numpy().sum())
    # Fresh trajectories the mixer read: 8 (warm-up) + 9 x 4; the rest of
    # the 80 trained on came from the buffer and add no frames.
    assert replayed == 9 * 4
    played = 8 + 9 * 4
    assert int(learner.num_frames.numpy()) == played * T * repeats
    assert int(learner.num_steps.numpy()) == 10


def test_a_proportion_that_replays_nothing_is_refused():
    with pytest.raises(replay.ReplayError, match="= 0 trajectories"):
        replay.replayed_per_batch(0.05, 8)  # round(0.4) = 0.


# -- Real runs. --------------------------------------------------------------

def _records(logdir):
    return progress.read_records(logdir, strict=True)


def _replay_flags(capacity):
    return ["--replay_proportion=0.5", f"--replay_capacity={capacity}"]


@pytest.mark.slow
@procs.requires_netns
def test_training_with_replay_learns_reports_and_resumes(tmp_path):
    logdir = str(tmp_path / "run")
    result = testing.run_impala(
        testing.TINY_FLAGS + _replay_flags(200) + [
            "--logdir=" + logdir, "--total_environment_frames=16000"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("[impala] replay: 4 of 8 trajectories per batch from a buffer "
            "of 200") in result.stdout
    records = _records(logdir)
    last = records[-1]
    assert last["replay_size"] == 200 and last["replay_bytes"] > 0
    assert 0.4 < last["replayed_fraction"] <= 0.5
    # Both kinds are reported (their order depends on how the policy moved:
    # test_replayed_batches_have_rho_below_one_once_weights_moved).
    for kind in ("fresh", "replayed"):
        assert 0 < last[f"mean_clipped_rho_{kind}"] <= 1, last
        assert last[f"mean_rho_{kind}"] > 0, last
    # The toy task (random play 5 of 10) still learns with replay on.
    assert last["episode_return_mean"] > 7.5, records
    # Resume: the buffer is not saved, so it refills from fresh data only:
    # 4,000 more frames are at most 400 + 8 fresh unrolls of 10 steps (a
    # restored buffer would hold 200 more).
    more = testing.run_impala(
        testing.TINY_FLAGS + _replay_flags(1000) + [
            "--logdir=" + logdir, "--total_environment_frames=20000"])
    assert more.returncode == 0, more.stderr[-3000:]
    assert "resumed from" in more.stdout
    after = _records(logdir)[len(records):]
    assert after[-1]["env_frames"] >= 20000
    assert 0 < after[-1]["replay_size"] <= 408, after[-1]


@pytest.mark.slow
@procs.requires_netns
def test_replay_with_the_lstm_agent_over_the_grpc_queue(tmp_path):
    logdir = str(tmp_path / "run")
    result = testing.run_impala(
        testing.TINY_FLAGS + _replay_flags(50) + [
            "--logdir=" + logdir, "--total_environment_frames=4000",
            "--use_lstm=true", "--local_transport=grpc",
            "--listen_on_all_interfaces"])
    assert result.returncode == 0, result.stderr[-3000:]
    last = _records(logdir)[-1]
    assert last["replay_size"] == 50
    assert 0.3 < last["replayed_fraction"] <= 0.5


@pytest.mark.parametrize("flags,fragment", [
    (["--replay_capacity=100000000000", "--replay_proportion=0.5"],
     "lower --replay_capacity"),
    (["--replay_proportion=0.95", "--batch_size=8"],
     "at least one must be fresh")])
def test_replay_that_cannot_work_is_one_sentence_and_exit_2(flags, fragment,
                                                           tmp_path):
    logdir = tmp_path / "never"
    result = testing.run_impala(
        [f for f in testing.TINY_FLAGS if not f.startswith("--batch_size")]
        + flags + ["--logdir=" + str(logdir), "--batch_size=8"], timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines
    assert "Traceback" not in result.stderr
    assert not os.path.exists(logdir)  # Nothing written.
