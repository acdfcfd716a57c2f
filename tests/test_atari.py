"""Tests for impala_tf.envs.atari.AtariEnvironment (ALE + Table G.1)."""

import ale_py
import ale_py.roms
import dm_env
import numpy as np
import pytest

import atari57
from impala_tf.envs import atari
from impala_tf.envs.atari import AtariEnvironment


def _run_until_last(env, rng, max_steps):
    """Random actions until a LAST timestep; returns (timestep, steps)."""
    for step in range(1, max_steps + 1):
        timestep = env.step(rng.integers(env.num_actions))
        if timestep.last():
            return timestep, step
    raise AssertionError(f"no LAST within {max_steps} steps")


def test_specs_and_first_timestep():
    env = AtariEnvironment("pong", seed=0)
    obs_spec = env.observation_spec()
    assert isinstance(obs_spec, dm_env.specs.BoundedArray)
    assert obs_spec.shape == (84, 84, 4)
    assert obs_spec.dtype == np.uint8
    assert obs_spec.name == "frame"
    assert obs_spec.minimum == 0 and obs_spec.maximum == 255
    action_spec = env.action_spec()
    assert isinstance(action_spec, dm_env.specs.DiscreteArray)
    assert action_spec.num_values == 6  # Pong's minimal action set.
    assert action_spec.name == "action"
    assert env.reward_spec().dtype == np.float32
    assert env.discount_spec().dtype == np.float32

    timestep = env.reset()
    assert timestep.first()
    obs_spec.validate(timestep.observation)
    # A fresh stack holds 4 copies of the first frame.
    for i in range(1, 4):
        np.testing.assert_array_equal(timestep.observation[..., i],
                                      timestep.observation[..., 0])
    timestep = env.step(np.int32(1))
    assert timestep.mid()
    obs_spec.validate(timestep.observation)
    assert isinstance(timestep.reward, np.float32)
    assert isinstance(timestep.discount, np.float32)
    assert timestep.discount == 1.0
    env.close()
    with pytest.raises(RuntimeError):
        env.step(0)


def test_full_action_space_has_18_actions():
    # Every game, since ale-py 0.12's getLegalActionSet() gives fewer for
    # some (9 for skiing): the multi-task agent needs the same 18 everywhere.
    for game in atari57.ALL_GAMES:
        env = AtariEnvironment(game, full_action_space=True, noop_max=0)
        assert env.action_spec().num_values == 18
        env.reset()
        assert env.step(17).mid()
        env.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^unknown Atari game 'xyz'; "):
        AtariEnvironment("xyz")
    with pytest.raises(ValueError, match="did you mean 'space_invaders'"):
        AtariEnvironment("SpaceInvaders")
    with pytest.raises(ValueError, match="sticky_action_prob"):
        AtariEnvironment("pong", sticky_action_prob=1.5)
    env = AtariEnvironment("pong", noop_max=0)
    env.reset()
    with pytest.raises(ValueError, match="out of range"):
        env.step(6)


@pytest.mark.parametrize("sticky", [0.0, 0.25])
def test_same_seed_same_actions_same_observations(sticky):
    envs = [AtariEnvironment("breakout", seed=7, sticky_action_prob=sticky)
            for _ in range(2)]
    actions = np.random.default_rng(0).integers(4, size=150)
    timesteps = [env.reset() for env in envs]
    np.testing.assert_array_equal(timesteps[0].observation,
                                  timesteps[1].observation)
    for action in actions:
        a, b = (env.step(action) for env in envs)
        assert a.step_type == b.step_type
        assert a.reward == b.reward and a.discount == b.discount
        np.testing.assert_array_equal(a.observation, b.observation)
    assert envs[0].episode_frames() == envs[1].episode_frames()


def test_observation_is_area_resized_max_of_last_two_frames():
    """Replays the wrapper's actions on a raw ALE and preprocesses by hand."""
    env = AtariEnvironment("breakout", noop_max=0)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(ale_py.roms.get_rom_path("breakout")))
    ale.reset_game()
    action_set = ale.getMinimalActionSet()
    row_idx, row_w = atari.area_resize_weights(210, 84)
    col_idx, col_w = atari.area_resize_weights(160, 84)
    rows = np.zeros((210, 84))
    cols = np.zeros((160, 84))
    for k in range(row_idx.shape[0]):
        rows[row_idx[k], np.arange(84)] += row_w[k]
    for k in range(col_idx.shape[0]):
        cols[col_idx[k], np.arange(84)] += col_w[k]
    np.testing.assert_allclose(rows.sum(0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(cols.sum(0), 1.0, rtol=1e-6)

    def expected(frame):
        return np.floor(rows.T @ frame.astype(np.float64) @ cols + 0.5)

    first = env.reset().observation
    np.testing.assert_allclose(first[..., -1], expected(ale.getScreenGrayscale()),
                               atol=1)
    frames = [expected(ale.getScreenGrayscale())] * 4
    for t, action in enumerate([1, 0, 2, 2, 3, 3, 1, 0, 2, 3]):
        timestep = env.step(action)
        raw = []
        for _ in range(4):
            ale.act(action_set[action])
            raw.append(ale.getScreenGrayscale())
        frames = frames[1:] + [expected(np.maximum(raw[-2], raw[-1]))]
        # float32 vs float64 rounding can differ by one grey level.
        np.testing.assert_allclose(timestep.observation,
                                   np.stack(frames, -1), atol=1,
                                   err_msg=f"step {t}")


def test_area_resize_integer_factor_is_block_mean():
    resizer = atari._AreaResizer((4, 6), (2, 3))  # pylint: disable=protected-access
    image = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    out = np.zeros((2, 3), np.uint8)
    resizer(image, out)
    blocks = image.reshape(2, 2, 3, 2).astype(float).mean(axis=(1, 3))
    np.testing.assert_array_equal(out, np.floor(blocks + 0.5))


def test_life_loss_ends_episode_but_not_game():
    env = AtariEnvironment("breakout", seed=3, terminal_on_life_loss=True)
    rng = np.random.default_rng(0)
    env.reset()
    lives = env.lives()
    assert lives == 5
    timestep, _ = _run_until_last(env, rng, max_steps=3000)
    assert timestep.discount == 0.0
    assert env.lives() == lives - 1
    assert not env.is_game_over()
    frames = env.episode_frames()
    last_frame = timestep.observation[..., -1]

    timestep = env.reset()  # Continues the same game.
    assert timestep.first()
    assert not env.is_game_over()
    assert env.lives() == lives - 1
    assert env.episode_frames() == frames  # No real reset, no no-ops.
    for i in range(4):
        np.testing.assert_array_equal(timestep.observation[..., i], last_frame)
    timestep = env.step(1)
    assert timestep.mid()
    assert env.episode_frames() == frames + 4


def test_game_over_without_life_loss_termination():
    env = AtariEnvironment("breakout", seed=1, terminal_on_life_loss=False,
                           noop_max=0)
    rng = np.random.default_rng(1)
    env.reset()
    timestep, steps = _run_until_last(env, rng, max_steps=20_000)
    assert steps > 50  # Several lives were lost without ending the episode.
    assert timestep.discount == 0.0
    assert env.lives() == 0
    assert env.is_game_over()
    # step() after LAST starts a new game.
    timestep = env.step(0)
    assert timestep.first()
    assert env.lives() == 5
    assert not env.is_game_over()


def test_frame_cap_truncates_with_discount_one():
    env = AtariEnvironment("pong", noop_max=0, max_episode_frames=100)
    rng = np.random.default_rng(0)
    env.reset()
    timestep, steps = _run_until_last(env, rng, max_steps=1000)
    assert steps == 25
    assert timestep.discount == 1.0
    assert env.is_game_over()
    assert env.episode_frames() == 100
    env.reset()
    assert env.episode_frames() == 0  # A real reset.

    # A cap that is not a multiple of the action repeat stops mid-repeat.
    env = AtariEnvironment("pong", noop_max=0, max_episode_frames=10)
    env.reset()
    timestep, steps = _run_until_last(env, rng, max_steps=100)
    assert (steps, env.episode_frames(), timestep.discount) == (3, 10, 1.0)


def test_noops_are_raw_frames_within_range():
    counts = set()
    for seed in range(6):
        env = AtariEnvironment("pong", seed=seed, noop_max=30)
        env.reset()
        assert 1 <= env.episode_frames() <= 30
        counts.add(env.episode_frames())
        env.close()
    assert len(counts) > 1  # Random, seed-dependent.


def test_evaluation_kwargs_build_a_test_mode_env():
    kwargs = atari57.evaluation_env_kwargs()
    assert kwargs["terminal_on_life_loss"] is False
    assert kwargs["noop_max"] == 30
    assert kwargs["max_episode_frames"] == 108_000
    env = AtariEnvironment("breakout", seed=0, **kwargs)
    assert env.action_spec().num_values == 4
    env.reset()
    assert env.step(1).mid()
    env = AtariEnvironment("breakout", **atari57.multitask_env_kwargs("test"))
    assert env.action_spec().num_values == 18


@pytest.mark.parametrize("game", atari57.ALL_GAMES)
def test_every_atari57_game_loads_resets_and_steps(game):
    env = AtariEnvironment(game, seed=0, noop_max=0)
    num_actions = env.action_spec().num_values
    assert num_actions == len(env.action_names)
    assert 2 <= num_actions <= 18
    timestep = env.reset()
    env.observation_spec().validate(timestep.observation)
    for i in range(3):
        timestep = env.step(i % num_actions)
        assert timestep.observation.shape == (84, 84, 4)
        assert timestep.observation.dtype == np.uint8
        assert isinstance(timestep.reward, np.float32)
        assert isinstance(timestep.discount, np.float32)
    env.close()
