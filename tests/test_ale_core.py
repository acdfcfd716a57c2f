"""envs.ale_core: AleGame's raw-frame handling replayed on a bare ALE, and
FrameStack against a list of frames."""

import ale_py
import ale_py.roms
import numpy as np
import pytest

from impala_tf.envs import ale_core


def _bare_ale(game):
    """The reference: ALE without frame skip, sticky actions or a cap."""
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("frame_skip", 1)
    ale.loadROM(str(ale_py.roms.get_rom_path(game)))
    ale.reset_game()
    return ale


def _frame(game):
    return np.zeros(game.screen_dims, np.uint8)


@pytest.mark.parametrize("repeats", [4, 3, 1])
def test_act_sums_rewards_and_max_pools_the_last_two_frames(repeats):
    game = ale_core.AleGame("pong", noop_max=0, num_action_repeats=repeats,
                            max_episode_frames=None)
    ale = _bare_ale("pong")
    frame = _frame(game)
    game.reset_game(frame)
    np.testing.assert_array_equal(frame, ale.getScreenGrayscale())
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(0)
    rewards = []
    for t in range(800 // repeats):
        action = int(rng.integers(len(actions)))
        step = game.act(action, frame)
        raw, reward = [], 0
        for _ in range(repeats):
            reward += ale.act(actions[action])
            raw.append(ale.getScreenGrayscale())
        expected = raw[-1] if repeats == 1 else np.maximum(raw[-2], raw[-1])
        np.testing.assert_array_equal(frame, expected, err_msg=f"step {t}")
        assert step == ale_core.Step(reward, False, False, False)
        rewards.append(reward)
    assert game.episode_frames == (800 // repeats) * repeats
    assert any(rewards)  # Points were scored and summed over the repeats.


def test_max_pool_differs_from_the_last_frame():
    """Pong's ball moves every frame: the pooled frame shows it twice."""
    game = ale_core.AleGame("pong", noop_max=0)
    frame = _frame(game)
    game.reset_game(frame)
    ale = _bare_ale("pong")
    differs = 0
    for _ in range(100):
        game.act(0, frame)
        for _ in range(4):
            ale.act(ale_py.Action.NOOP)
        differs += not np.array_equal(frame, ale.getScreenGrayscale())
    assert differs > 0


def test_reset_game_takes_1_to_noop_max_raw_noops():
    counts = set()
    for seed in range(4):
        game = ale_core.AleGame("pong", seed=seed, noop_max=30)
        frame = _frame(game)
        game.reset_game(frame)
        n = game.episode_frames
        assert 1 <= n <= 30
        counts.add(n)
        ale = _bare_ale("pong")
        for _ in range(n):
            ale.act(ale_py.Action.NOOP)
        np.testing.assert_array_equal(frame, ale.getScreenGrayscale())
        again = ale_core.AleGame("pong", seed=seed, noop_max=30)
        again.reset_game(_frame(again))
        assert again.episode_frames == n  # The same seed, the same no-ops.
    assert len(counts) > 1
    game = ale_core.AleGame("pong", noop_max=0)
    game.reset_game(_frame(game))
    assert game.episode_frames == 0


def test_frame_cap_ends_the_repeat_early_with_the_last_frame():
    game = ale_core.AleGame("pong", noop_max=0, max_episode_frames=10)
    ale = _bare_ale("pong")
    frame = _frame(game)
    game.reset_game(frame)
    for _ in range(2):  # 8 frames.
        assert not game.act(0, frame).done
    for _ in range(8):
        ale.act(ale_py.Action.NOOP)
    step = game.act(0, frame)  # Frames 9 and 10, then the cap.
    for _ in range(2):
        ale.act(ale_py.Action.NOOP)
    assert step == ale_core.Step(0, True, True, True)
    assert game.episode_frames == 10
    np.testing.assert_array_equal(frame, ale.getScreenGrayscale())


@pytest.mark.parametrize("life_loss_ends", [True, False])
def test_a_lost_life_ends_the_episode_not_the_game(life_loss_ends):
    game = ale_core.AleGame("breakout", noop_max=0,
                            terminal_on_life_loss=life_loss_ends)
    frame = _frame(game)
    game.reset_game(frame)
    lives = game.lives()
    fire = game.action_set.index(ale_py.Action.FIRE)
    for _ in range(2000):
        step = game.act(fire, frame)
        if game.lives() < lives:
            break
    assert game.lives() == lives - 1
    assert step.done is life_loss_ends
    assert not step.game_over and not step.truncation


def test_action_sets():
    assert ale_core.AleGame("pong").num_actions == 6
    full = ale_core.AleGame("skiing", full_action_space=True).action_set
    assert [a.value for a in full] == list(range(18))


def test_resolve_rom_id():
    assert ale_core.resolve_rom_id("space_invaders") == "space_invaders"
    assert "tetris" in ale_core.ale_rom_ids()
    assert ale_core.resolve_rom_id("tetris") == "tetris"
    with pytest.raises(ValueError, match=r"^unknown Atari game "
                                         r"'SpaceInvaders'; .*did you mean "
                                         r"'space_invaders'\?$"):
        ale_core.resolve_rom_id("SpaceInvaders")
    with pytest.raises(ValueError, match=r"\(e\.g\. 'pong', "
                                         r"'space_invaders'\)\.$"):
        ale_core.resolve_rom_id("xyzzy")


@pytest.mark.parametrize("setting,message", [
    (dict(num_action_repeats=0), "num_action_repeats must be >= 1, got 0"),
    (dict(frame_stack=0), "frame_stack must be >= 1"),
    (dict(noop_max=-1), "noop_max must be >= 0"),
    (dict(max_episode_frames=0), "max_episode_frames must be >= 1 or None"),
    (dict(sticky_action_prob=1.5), r"sticky_action_prob must be in \[0, 1\]"),
    (dict(screen_size=0), "screen_size must be >= 1"),
    (dict(seed=-1), "seed must be a non-negative integer"),
])
def test_check_settings(setting, message):
    ale_core.check_settings(max_episode_frames=None)
    with pytest.raises(ValueError, match=message):
        ale_core.check_settings(**setting)


def test_observation_spec():
    spec = ale_core.observation_spec(84, 4)
    assert spec.shape == (84, 84, 4) and spec.dtype == np.uint8
    assert (spec.minimum, spec.maximum) == (0, 255)


@pytest.mark.parametrize("k", [4, 3, 1])
def test_frame_stack_keeps_the_last_k_frames_oldest_first(k):
    rng = np.random.default_rng(k)
    stack = ale_core.FrameStack((2, 5, 7, k))
    frames = [rng.integers(0, 256, (2, 5, 7), dtype=np.uint8)]
    stack.push(frames[0])
    stack.restart()
    reference = [[frames[0][i]] * k for i in range(2)]
    for t in range(6):
        new = rng.integers(0, 256, (2, 5, 7), dtype=np.uint8)
        if t % 3 == 2:  # Game 1 alone.
            stack.push(new[1:], index=[1])
            reference[1] = reference[1][1:] + [new[1]]
        else:
            stack.shift()
            stack.newest[...] = new
            reference = [r[1:] + [new[i]] for i, r in enumerate(reference)]
        for i in range(2):
            np.testing.assert_array_equal(stack.array[i],
                                          np.stack(reference[i], -1))
    stack.restart(index=[0])
    np.testing.assert_array_equal(
        stack.array[0], np.stack([reference[0][-1]] * k, -1))
    np.testing.assert_array_equal(stack.array[1], np.stack(reference[1], -1))
