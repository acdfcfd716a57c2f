"""impala_tf.envs.atari_vector: the same games as N AtariEnvironments."""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import types
from impala_tf.runtime import watchdog
from impala_tf.envs import atari
from impala_tf.envs import atari_vector
from impala_tf.envs import batch as env_batch
from impala_tf.envs import registry


def _exact_resize(frames, out_hw):
    """Reference: sum of integer area weights, floor(x / D + 1/2), int64."""
    rows, d_rows = atari_vector._integer_weights(frames.shape[1], out_hw[0])
    cols, d_cols = atari_vector._integer_weights(frames.shape[2], out_hw[1])
    total = np.einsum("ij,mjk,lk->mil", rows, frames.astype(np.int64), cols)
    d = d_rows * d_cols
    return (2 * total + d) // (2 * d)


@pytest.mark.parametrize("in_hw,out_hw", [
    ((210, 160), (84, 84)), ((4, 6), (2, 3)), ((7, 9), (3, 4)),
    ((250, 160), (84, 84)), ((10, 10), (10, 10)), ((72, 96), (20, 21))])
def test_batch_resize_is_exact_area_average(in_hw, out_hw):
    frames = np.random.default_rng(0).integers(0, 256, (11,) + in_hw,
                                               np.uint8)
    got = atari_vector.BatchResizer(in_hw, out_hw)(frames)
    assert got.dtype == np.uint8 and got.shape == (11,) + out_hw
    np.testing.assert_array_equal(got, _exact_resize(frames, out_hw))


def test_integer_weights_are_area_weights():
    index, weight = atari.area_resize_weights(210, 84)
    dense = np.zeros((84, 210))
    for k in range(index.shape[0]):
        dense[np.arange(84), index[k]] += weight[k]
    ints, d = atari_vector._integer_weights(210, 84)
    assert d == 5
    np.testing.assert_allclose(ints / d, dense, atol=1e-6)


def test_batch_resize_within_one_of_the_float_resizer():
    frames = np.random.default_rng(1).integers(0, 256, (16, 210, 160),
                                               np.uint8)
    reference = np.zeros((16, 84, 84), np.uint8)
    resizer = atari._AreaResizer((210, 160), (84, 84))  # pylint: disable=protected-access
    for i in range(16):
        resizer(frames[i], reference[i])
    diff = np.abs(atari_vector.BatchResizer((210, 160), (84, 84))(frames)
                  .astype(int) - reference)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-2  # Ties only.


def _compare(games, steps, seed=0, **kwargs):
    """Steps an AtariBatch and AtariEnvironments with the same actions."""
    seeds = [seed + 7 * i for i in range(len(games))]
    refs = [atari.AtariEnvironment(g, seed=s, **kwargs)
            for g, s in zip(games, seeds)]
    batch = atari_vector.AtariBatch(games, seeds, **kwargs)
    obs = batch.reset()
    expected = np.stack([env.reset().observation for env in refs])
    assert np.abs(obs.astype(int) - expected).max() <= 1
    rng = np.random.default_rng(seed)
    counts = {"ends": 0, "game_overs": 0, "differing": 0, "pixels": 0}
    out = np.zeros_like(obs)
    for t in range(steps):
        actions = np.array([rng.integers(n) for n in batch.num_actions])
        obs, reward, done, over = batch.step(actions, out=out)
        assert obs is out
        for i, env in enumerate(refs):
            ts = env.step(actions[i])
            assert reward[i] == ts.reward, (t, i)
            assert done[i] == ts.last(), (t, i)
            if ts.last():
                assert over[i] == env.is_game_over(), (t, i)
                counts["ends"] += 1
                counts["game_overs"] += int(over[i])
                ts = env.reset()
            diff = np.abs(obs[i].astype(int) - ts.observation)
            assert diff.max() <= 1, (t, i)
            counts["differing"] += int((diff > 0).sum())
            counts["pixels"] += diff.size
    batch.close()
    return counts


def test_same_games_as_atari_environments_with_life_loss():
    counts = _compare(["breakout", "breakout", "breakout"], 700)
    assert counts["ends"] > counts["game_overs"] > 0  # Lives and games.
    assert counts["differing"] / counts["pixels"] < 1e-3


def test_same_games_with_frame_cap_repeat_and_no_life_loss():
    counts = _compare(["pong", "pong"], 300, max_episode_frames=500)
    assert counts["game_overs"] >= 2  # Truncations at the frame cap.
    counts = _compare(["breakout"] * 2, 400, num_action_repeats=3,
                      noop_max=4, terminal_on_life_loss=False)
    assert counts["ends"] == counts["game_overs"] > 0


def test_mixed_games_full_action_space():
    counts = _compare(["pong", "breakout", "space_invaders"], 150,
                      full_action_space=True, sticky_action_prob=0.25)
    assert counts["differing"] / counts["pixels"] < 1e-3


def test_make_batch_uses_the_level_sets_training_arguments():
    level_set = registry.parse_level_name("atari/breakout")
    batch = atari_vector.make_batch(level_set, [0, 0], [3, 4])
    envs = [level_set.make(0, seed=s) for s in (3, 4)]
    obs = batch.reset()
    for i, env in enumerate(envs):
        assert np.abs(obs[i].astype(int)
                      - env.reset().observation).max() <= 1
    assert batch.num_actions == [env.num_actions for env in envs]
    assert batch.observation_spec() == envs[0].observation_spec()


def _buffers(n, unroll):
    spec = types.trajectory_spec(
        4, {"frame": tf.TensorSpec([84, 84, 4], tf.uint8)}, unroll, ())
    return types.zero_trajectories(spec, n)


def test_environment_batch_writes_what_the_loop_writes():
    """AtariEnvironmentBatch == DmEnvBatch of AtariEnvironments."""
    level_set = registry.parse_level_name("atari/breakout")
    n, unroll = 3, 50
    seeds = [11, 12, 13]
    vector = env_batch.make(level_set, [0] * n, seeds, vector_env=True)
    loop = env_batch.make(level_set, [0] * n, seeds, vector_env=False)
    assert isinstance(vector, env_batch.AtariEnvironmentBatch)
    assert isinstance(loop, env_batch.DmEnvBatch)
    assert vector.observation_spec() == loop.observation_spec()
    a, b = _buffers(n, unroll), _buffers(n, unroll)
    vector.reset_into(0, a)
    loop.reset_into(0, b)
    rng = np.random.default_rng(0)
    games = 0
    for _ in range(8):  # Several unrolls: statistics carry across them.
        for buffers in (a, b):
            buffers.env_outputs.done[:] = False
            buffers.game_over[:] = False
            buffers.episode_return[:] = 0
            buffers.episode_step[:] = 0
        for t in range(1, unroll + 1):
            actions = rng.integers(0, 4, n).astype(np.int32)
            vector.step_into(actions, t, a)
            loop.step_into(actions, t, b)
        for x, y in zip(tf.nest.flatten(a.env_outputs),
                        tf.nest.flatten(b.env_outputs)):
            assert np.abs(x.astype(float) - y).max() <= 1
        np.testing.assert_array_equal(a.env_outputs.done, b.env_outputs.done)
        np.testing.assert_array_equal(a.env_outputs.reward,
                                      b.env_outputs.reward)
        np.testing.assert_array_equal(a.game_over, b.game_over)
        np.testing.assert_array_equal(a.episode_return, b.episode_return)
        np.testing.assert_array_equal(a.episode_step, b.episode_step)
        games += int(a.game_over.sum())
    assert games > 0
    vector.close()
    loop.close()


def test_watchdog_beats_and_names_the_failing_game():
    heartbeat = [0.0] * watchdog.HEARTBEAT_SIZE
    seen = []

    def fail_in_game_1(make):
        def make_failing(*args, monitor, **kwargs):
            def spy(index, call):
                monitor(index, call)
                seen.append((index, call, list(heartbeat)))
                if index == 1 and call == "step":
                    raise RuntimeError("emulator on fire")
            return make(*args, monitor=spy, **kwargs)
        return make_failing

    level_set = registry.parse_level_name("atari57")
    envs = watchdog.guarded(fail_in_game_1(env_batch.make), heartbeat)(
        level_set, [0, 1], [1, 2], vector_env=True)
    buffers = _buffers(2, 2)
    envs.reset_into(0, buffers)
    resets = [beat for _, call, beat in seen if call == "reset"]
    assert len(resets) == 2
    assert all(b[0] > 0 and b[2] == watchdog.CALLS.index("reset")
               and b[3] == watchdog.FIRST_CALL_ALLOWANCE for b in resets)
    assert [b[1] for b in resets] == [0, 1]  # Each game's level in turn.
    assert heartbeat[0] == 0.0  # Idle again.
    game = level_set.levels[1]
    with pytest.raises(watchdog.EnvironmentFailure,
                       match=f"'{game}'.*step.*on fire"):
        envs.step_into(np.zeros(2, np.int32), 1, buffers)
    assert heartbeat[0] == 0.0
    envs.close()
