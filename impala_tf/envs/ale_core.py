"""One ALE game with the paper's Table G.1 raw-frame handling; the frame stack.

The core shared by `atari.AtariEnvironment` (one game as a dm_env) and
`atari_vector.AtariBatch` (N games, resized as one batch), so both play the
same games from the same seeds (the recipe is in `atari`'s module doc):

  * `check_settings`: one ValueError sentence per bad setting.
  * `AleGame`: the emulator created with the Table G.1 settings (ALE's RNG
    and the no-op RNG both derived from `seed`; frame skip and frame cap
    done here, not inside ALE; sticky actions as given), the minimal or the
    full 18-action set, a real game reset with 1..`noop_max` raw no-ops,
    and `act`: one agent step of `num_action_repeats` raw frames with the
    summed reward, the max-pool of the last two grayscale frames, the frame
    cap and life loss.
  * `FrameStack`: the last k preprocessed frames, oldest first, uint8
    [..., h, w, k] (one game or N).

Resizing is not here: each side has its own (float for one frame, exact
integer arithmetic for a batch; they differ by at most one grey level).
"""

import difflib
import sys
import typing

from dm_env import specs
import numpy as np

import ale_py
import ale_py.roms

from impala_tf.envs import suites

_NOOP = ale_py.Action.NOOP


def ale_rom_ids():
    """The ids of the ROMs ale-py ships (snake_case, e.g. 'space_invaders')."""
    return frozenset(ale_py.roms.get_all_rom_ids())


def _snake_case(name):
    """'SpaceInvaders', 'ALE/SpaceInvaders-v5', 'space-invaders' ->
    'space_invaders'."""
    guess = name.strip()
    if guess.startswith("ALE/"):
        guess = guess[4:].split("-v")[0]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in guess)
    snake = snake.replace("-", "_").replace(" ", "_").strip("_")
    while "__" in snake:
        snake = snake.replace("__", "_")
    return snake


def resolve_rom_id(game):
    """Maps a snake_case game name to an ale-py ROM id.

    A game a suite names (the 57 of Atari-57) is played from the ROM id the
    suite gives; any other ROM that ale-py ships (e.g. ``tetris``) is
    accepted by its own id. Raises ``ValueError("unknown Atari game 'xyz';
    ...")``, with a suggestion where one is close, otherwise.
    """
    found = (suites.find_level(game, "atari") if isinstance(game, str)
             else None)
    if found is not None:
        return found[1].env_id
    roms = ale_rom_ids()
    if isinstance(game, str) and game in roms:
        return game
    hint = "."
    if isinstance(game, str):
        names = sorted(set(suites.levels("atari")) | roms)
        snake = _snake_case(game)
        close = ([snake] if snake in names else
                 difflib.get_close_matches(snake, names, n=3, cutoff=0.6))
        if close:
            hint = "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    raise ValueError(
        f"unknown Atari game {game!r}; game names are snake_case ale-py ROM "
        f"ids (e.g. 'pong', 'space_invaders'){hint}")


def check_settings(seed=0, num_action_repeats=4, frame_stack=4, noop_max=30,
                   max_episode_frames=108_000, sticky_action_prob=0.0,
                   screen_size=84):
    """Raises ValueError (one sentence) for a setting out of its range."""
    if int(num_action_repeats) < 1:
        raise ValueError(
            f"num_action_repeats must be >= 1, got {num_action_repeats}")
    if int(frame_stack) < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    if int(noop_max) < 0:
        raise ValueError(f"noop_max must be >= 0, got {noop_max}")
    if max_episode_frames is not None and int(max_episode_frames) < 1:
        raise ValueError(
            f"max_episode_frames must be >= 1 or None, "
            f"got {max_episode_frames}")
    if not 0.0 <= float(sticky_action_prob) <= 1.0:
        raise ValueError(
            f"sticky_action_prob must be in [0, 1], got {sticky_action_prob}")
    if int(screen_size) < 1:
        raise ValueError(f"screen_size must be >= 1, got {screen_size}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def observation_spec(screen_size, frame_stack):
    """The stacked observation: uint8 [size, size, frame_stack] in [0, 255]."""
    return specs.BoundedArray((screen_size, screen_size, frame_stack),
                              np.uint8, 0, 255, name="frame")


class Step(typing.NamedTuple):
    """What one agent step did.

    reward: the summed raw rewards (int, unclipped). done: the episode
    ended (game over, frame cap, or a life lost with
    `terminal_on_life_loss`). game_over: the game ended (game over or frame
    cap): the next episode starts with a real reset. truncation: the episode
    ended by the frame cap alone (discount 1, not a termination).
    """
    reward: int
    done: bool
    game_over: bool
    truncation: bool


class AleGame:
    """One emulator and the raw-frame part of the preprocessing.

    Args as `atari.AtariEnvironment` (check them with `check_settings`);
    frame_stack and screen_size are not its business.
    """

    def __init__(self, game, seed=0, num_action_repeats=4, noop_max=30,
                 terminal_on_life_loss=True, max_episode_frames=108_000,
                 sticky_action_prob=0.0, full_action_space=False):
        rom_id = resolve_rom_id(game)
        self._repeats = int(num_action_repeats)
        self._pool_start = self._repeats - min(2, self._repeats)
        self._noop_max = int(noop_max)
        self._life_loss_ends = bool(terminal_on_life_loss)
        self._max_frames = (None if max_episode_frames is None
                            else int(max_episode_frames))
        ale_seed, noop_seed = np.random.SeedSequence(
            int(seed)).generate_state(2)
        self._rng = np.random.default_rng(int(noop_seed))
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        ale = ale_py.ALEInterface()
        ale.setInt("random_seed", int(ale_seed) & 0x7FFFFFFF)
        ale.setFloat("repeat_action_probability", float(sticky_action_prob))
        ale.setInt("frame_skip", 1)  # Action repeat is done here.
        ale.setInt("max_num_frames_per_episode", 0)  # Frame cap: here too.
        rom_path = ale_py.roms.get_rom_path(rom_id)
        if rom_path is None:
            raise ValueError(f"unknown Atari game {game!r}; ale-py has no ROM "
                             f"for it")
        ale.loadROM(str(rom_path))
        self._ale = ale
        if full_action_space:
            # All 18 joystick actions in ALE's order. getLegalActionSet()
            # returns fewer for some games in ale-py 0.12 (9 for skiing),
            # which would break the multi-task agent's shared action space.
            self.action_set = sorted(ale_py.Action, key=lambda a: a.value)
        else:
            self.action_set = list(ale.getMinimalActionSet())
        self.screen_dims = tuple(ale.getScreenDims())  # (height, width)
        self._raw = np.zeros((2,) + self.screen_dims, np.uint8)
        self.episode_frames = 0  # Raw frames since the real game reset.
        self._lives = 0

    @property
    def num_actions(self):
        return len(self.action_set)

    def lives(self):
        """Lives left in the current game (0 for games without lives)."""
        return self._ale.lives()

    def reset_game(self, frame_out):
        """A real game reset with 1..noop_max raw no-ops (their rewards
        dropped); writes the grayscale frame into uint8 [h, w] `frame_out`."""
        ale = self._ale
        ale.reset_game()
        frames = 0
        if self._noop_max > 0:
            for _ in range(int(self._rng.integers(1, self._noop_max + 1))):
                ale.act(_NOOP)
                frames += 1
                if ale.game_over():  # Pathological: start again, no no-ops.
                    ale.reset_game()
                    frames = 0
        self.episode_frames = frames
        ale.getScreenGrayscale(frame_out)
        self._lives = ale.lives()

    def act(self, action, frame_out):
        """One agent step with action index `action`; returns a `Step`.

        Writes into uint8 [h, w] `frame_out` the max of the last two raw
        grayscale frames, or the last frame when the game or the frame cap
        ends the repeat early.
        """
        ale, raw = self._ale, self._raw
        ale_action = self.action_set[action]
        repeats, pool_start = self._repeats, self._pool_start
        max_frames = self._max_frames
        frames = self.episode_frames
        reward = 0
        over = truncated = early = False
        for k in range(repeats):
            reward += ale.act(ale_action)
            frames += 1
            over = ale.game_over()
            truncated = max_frames is not None and frames >= max_frames
            if (over or truncated) and k < repeats - 1:
                early = True
                break
            if k >= pool_start:
                ale.getScreenGrayscale(raw[k - pool_start])
        self.episode_frames = frames
        if early:
            ale.getScreenGrayscale(frame_out)
        elif repeats - pool_start == 2:
            np.maximum(raw[0], raw[1], out=frame_out)
        else:
            frame_out[...] = raw[0]
        lives = ale.lives()
        life_lost = lives < self._lives
        self._lives = lives
        terminated = over or (self._life_loss_ends and life_lost)
        game_over = over or truncated
        return Step(reward, terminated or truncated, game_over,
                    truncated and not terminated)

    def close(self):
        self._ale = None


class FrameStack:
    """uint8 [..., h, w, k]: the last k frames of each game, oldest first.

    `array` is the stacks (one game: [h, w, k]; N games: [N, h, w, k]).
    Shifting by one frame is a byte shift of each pixel's k bytes, done as a
    (fast, contiguous) integer shift when they form a machine word on a
    little-endian machine; else a (slower) strided copy.
    """

    def __init__(self, shape):
        self.array = np.zeros(shape, np.uint8)
        word = {2: np.uint16, 4: np.uint32, 8: np.uint64}.get(shape[-1])
        self._words = (self.array.view(word)[..., 0]
                       if word is not None and sys.byteorder == "little"
                       else None)

    @property
    def newest(self):
        """View [..., h, w] of the newest frames (written after `shift`)."""
        return self.array[..., -1]

    def shift(self):
        """Drops every stack's oldest frame; `newest` is to be written."""
        if self._words is not None:
            # Little-endian: channel 0 is the lowest byte; >> 8 drops it.
            np.right_shift(self._words, 8, out=self._words)
        elif self.array.shape[-1] > 1:
            self.array[..., :-1] = self.array[..., 1:]

    def push(self, frames, index=None):
        """Pushes frames [..., h, w] onto all stacks, or onto the stacks
        `index` (a list, N games) with frames [len(index), h, w]."""
        if index is None:
            self.shift()
            self.array[..., -1] = frames
        else:
            stacks = self.array[index]
            stacks[..., :-1] = stacks[..., 1:]
            stacks[..., -1] = frames
            self.array[index] = stacks

    def restart(self, index=None):
        """Fills all stacks (or those of `index`) with their newest frame
        (an episode starts)."""
        if index is None:
            self.array[...] = self.array[..., -1:]
        else:
            for i in index:
                self.array[i] = self.array[i, ..., -1:]
