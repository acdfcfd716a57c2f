"""Atari 2600 (ALE) as a ``dm_env.Environment`` with IMPALA's preprocessing.

The preprocessing is that of the IMPALA paper's Table G.1 (itself the DQN
recipe of Mnih et al. 2015):

* **Action repeat** ``num_action_repeats`` (4): the agent's action is sent
  to the emulator for 4 consecutive raw frames; the rewards of those frames
  are summed (unclipped: clipping to [-1, 1] is the learner's business).
* **Max-pooling** over the last 2 raw frames of the repeat (removes sprite
  flicker). If the game ends (or the frame cap is hit) before the last frame
  of a repeat, the observation is the last emulated frame, not pooled.
* **Grayscale**: ALE's own luminance palette (``getScreenGrayscale``).
* **Resize** 210x160 -> ``screen_size`` x ``screen_size`` (84x84) by *area
  interpolation*: every output pixel is the area-weighted mean of the input
  pixels it covers, rounded half up. This is what OpenCV's ``INTER_AREA``
  computes (the interpolation of gym/gymnasium's ``AtariPreprocessing``,
  OpenAI baselines' ``WarpFrame`` and Dopamine), up to +-1 from rounding; it
  is implemented in numpy (no OpenCV), with precomputed sparse weights.
* **Frame stack** ``frame_stack`` (4): the observation is the last 4
  preprocessed frames, oldest first, uint8 ``[84, 84, 4]``. At each episode
  start the stack is filled with copies of the first frame.
* **No-op starts**: at every *real* game reset a uniformly random number of
  1..``noop_max`` (30) raw no-op frames is emulated first (their rewards are
  discarded; as ``NoopResetEnv`` of OpenAI baselines, no-ops are raw frames,
  not agent steps). ``noop_max=0`` disables them.
* **Life loss ends the training episode** (``terminal_on_life_loss``): when
  the number of lives drops, the step is ``LAST`` with discount 0, but the
  game itself is not reset: the next ``reset()`` (or ``step()``) continues
  the same game from where it is (the DQN "episodic life" trick), with a
  fresh frame stack and no no-ops. Only a real game over (or the frame cap)
  resets the emulator. Unlike baselines' ``EpisodicLifeEnv`` no extra no-op
  step is taken on continuation, so no reward is ever dropped.
* **Frame cap** ``max_episode_frames`` (108,000 raw frames = 30 minutes of
  play): counted from the real game reset, no-op frames and all lives
  included. Reaching it ends the episode with ``LAST`` and discount 1.0
  (a truncation, not a termination). ``None`` disables the cap.
* **Sticky actions** (``sticky_action_prob``): ALE's
  ``repeat_action_probability``; 0 (off) by default as in the paper.
* **Action set**: the game's minimal action set by default (single-game
  experts), the full 18 actions with ``full_action_space=True`` (the
  multi-task agent).

True episode returns (optional protocol)
----------------------------------------
With ``terminal_on_life_loss=True`` a dm_env "episode" is one life. To
report game scores (the returns of whole games, as the paper's evaluation
does), sum rewards across episodes and, at every ``LAST`` timestep, ask
:meth:`AtariEnvironment.is_game_over`: ``True`` means the game ended there
(game over or frame cap), so the accumulated sum is one game's return and
should be reset to 0. Code that ignores ``is_game_over()`` still sees a valid
dm_env. In test mode (``terminal_on_life_loss=False``, see
``atari57.evaluation_env_kwargs()``) every ``LAST`` ends a game.

Determinism: ALE's own RNG (sticky actions) and the no-op RNG are derived
from ``seed``; the same seed and the same actions give the same observations.

Example::

    env = AtariEnvironment("pong", seed=1)
    timestep = env.reset()
    while not timestep.last():
        timestep = env.step(0)
"""

import sys
from typing import List, Optional

import dm_env
from dm_env import specs
import numpy as np

import ale_py
import ale_py.roms

from atari57 import games as _games

__all__ = ["AtariEnvironment", "resolve_rom_id", "area_resize_weights"]

_RAW_HEIGHT, _RAW_WIDTH = 210, 160
_NOOP = ale_py.Action.NOOP


def resolve_rom_id(game: str) -> str:
    """Maps a snake_case game name to an ale-py ROM id.

    The 57 Atari-57 names go through ``atari57.game_to_ale_id``; any other
    ROM that ale-py ships (e.g. ``tetris``) is accepted by its own id.
    Raises ``ValueError("unknown Atari game 'xyz'; ...")`` otherwise.
    """
    if game in _games.GAMES:
        return _games.game_to_ale_id(game)
    if isinstance(game, str) and game in ale_py.roms.get_all_rom_ids():
        return game
    _games.check_game(game)  # Raises with a hint.
    raise AssertionError("unreachable")


def area_resize_weights(n_in: int, n_out: int):
    """Sparse area-interpolation weights along one axis.

    Returns ``(index, weight)``, both ``[K, n_out]``: output pixel ``i`` is
    ``sum_k weight[k, i] * input[index[k, i]]`` (unused slots have weight 0).
    The weight of input pixel ``j`` is the length of the overlap of
    ``[j, j+1)`` with ``[i s, (i+1) s)``, ``s = n_in / n_out``, divided by
    ``s``.
    """
    scale = n_in / n_out
    rows: List[List] = []
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        entries = []
        for j in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
            overlap = min(hi, j + 1) - max(lo, j)
            if overlap > 1e-9:
                entries.append((j, overlap / scale))
        rows.append(entries)
    k = max(len(r) for r in rows)
    index = np.zeros((k, n_out), np.intp)
    weight = np.zeros((k, n_out), np.float32)
    for i, entries in enumerate(rows):
        for slot, (j, w) in enumerate(entries):
            index[slot, i] = j
            weight[slot, i] = w
    return index, weight


class _AreaResizer:
    """uint8 [H, W] -> uint8 [h, w] area resize into a caller's buffer."""

    def __init__(self, in_hw, out_hw):
        (h_in, w_in), (h_out, w_out) = in_hw, out_hw
        self._row_idx, row_w = area_resize_weights(h_in, h_out)
        self._col_idx, col_w = area_resize_weights(w_in, w_out)
        self._row_w = [w[:, None].copy() for w in row_w]
        self._col_w = [w[None, :].copy() for w in col_w]
        self._rows = np.empty((h_out, w_in), np.float32)
        self._rows_tmp = np.empty((h_out, w_in), np.float32)
        self._out = np.empty((h_out, w_out), np.float32)
        self._out_tmp = np.empty((h_out, w_out), np.float32)

    def __call__(self, image: np.ndarray, out: np.ndarray) -> None:
        rows, rows_tmp = self._rows, self._rows_tmp
        res, res_tmp = self._out, self._out_tmp
        np.multiply(image[self._row_idx[0]], self._row_w[0], out=rows)
        for k in range(1, len(self._row_w)):
            np.multiply(image[self._row_idx[k]], self._row_w[k], out=rows_tmp)
            np.add(rows, rows_tmp, out=rows)
        np.multiply(rows[:, self._col_idx[0]], self._col_w[0], out=res)
        for k in range(1, len(self._col_w)):
            np.multiply(rows[:, self._col_idx[k]], self._col_w[k], out=res_tmp)
            np.add(res, res_tmp, out=res)
        np.add(res, 0.5, out=res)  # Round half up when truncating below.
        np.copyto(out, res, casting="unsafe")


class AtariEnvironment(dm_env.Environment):
    """One ALE game with IMPALA's Atari preprocessing (see module doc)."""

    def __init__(self,
                 game: str,
                 seed: int = 0,
                 num_action_repeats: int = 4,
                 frame_stack: int = 4,
                 noop_max: int = 30,
                 terminal_on_life_loss: bool = True,
                 max_episode_frames: Optional[int] = 108_000,
                 sticky_action_prob: float = 0.0,
                 full_action_space: bool = False,
                 screen_size: int = 84):
        rom_id = resolve_rom_id(game)
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
                f"sticky_action_prob must be in [0, 1], "
                f"got {sticky_action_prob}")
        if int(screen_size) < 1:
            raise ValueError(f"screen_size must be >= 1, got {screen_size}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")

        self._game = game
        self._num_repeats = int(num_action_repeats)
        self._num_pool = min(2, self._num_repeats)
        self._pool_start = self._num_repeats - self._num_pool
        self._noop_max = int(noop_max)
        self._terminal_on_life_loss = bool(terminal_on_life_loss)
        self._max_frames = (None if max_episode_frames is None
                            else int(max_episode_frames))

        seed_seq = np.random.SeedSequence(int(seed))
        ale_seed, noop_seed = seed_seq.generate_state(2)
        self._rng = np.random.default_rng(int(noop_seed))

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        ale = ale_py.ALEInterface()
        ale.setInt("random_seed", int(ale_seed) & 0x7FFFFFFF)
        ale.setFloat("repeat_action_probability", float(sticky_action_prob))
        ale.setInt("frame_skip", 1)  # Action repeat is done here.
        ale.setInt("max_num_frames_per_episode", 0)  # Frame cap is done here.
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
            self._action_set = sorted(ale_py.Action,
                                      key=lambda a: a.value)
        else:
            self._action_set = list(ale.getMinimalActionSet())
        height, width = ale.getScreenDims()

        size = int(screen_size)
        self._raw = np.zeros((2, height, width), np.uint8)
        self._pooled = np.zeros((height, width), np.uint8)
        self._resize = _AreaResizer((height, width), (size, size))
        self._stack = np.zeros((size, size, int(frame_stack)), np.uint8)
        # Shifting the stack by one frame is a byte shift of each pixel's
        # frame_stack bytes, done as a (fast, contiguous) integer shift when
        # they form a machine word; else a (slower) strided copy.
        self._stack_words = None
        word = {2: np.uint16, 4: np.uint32, 8: np.uint64}.get(int(frame_stack))
        if word is not None and sys.byteorder == "little":
            self._stack_words = self._stack.view(word)[..., 0]
        self._observation_spec = specs.BoundedArray(
            self._stack.shape, np.uint8, 0, 255, name="frame")
        self._action_spec = specs.DiscreteArray(
            len(self._action_set), dtype=np.int32, name="action")

        self._episode_frames = 0     # Raw frames since the real game reset.
        self._lives = 0
        self._needs_reset = True     # Next step() must start an episode.
        self._continue_game = False  # Next reset() continues (life lost).
        self._game_over = False      # Whether the latest LAST ended the game.

    # -- dm_env API ---------------------------------------------------------

    def reset(self) -> dm_env.TimeStep:
        """Starts a new episode: a real game reset, or after a life-loss
        ``LAST`` the continuation of the same game."""
        ale = self._checked_ale()
        if self._continue_game:
            # The latest frame is already in the stack; restart the stack
            # from it.
            self._stack[...] = self._stack[..., -1:]
        else:
            self._reset_game(ale)
            self._observe_current_frame(ale)
            self._stack[...] = self._stack[..., -1:]
        self._lives = ale.lives()
        self._needs_reset = False
        self._continue_game = False
        self._game_over = False
        return dm_env.restart(self._stack.copy())

    def step(self, action) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        ale = self._checked_ale()
        index = int(action)
        if not 0 <= index < len(self._action_set):
            raise ValueError(f"action {action!r} out of range "
                             f"[0, {len(self._action_set)})")
        ale_action = self._action_set[index]
        raw = self._raw
        max_frames = self._max_frames
        num_repeats = self._num_repeats
        pool_start = self._pool_start

        reward = 0
        ended_early = False
        for i in range(num_repeats):
            reward += ale.act(ale_action)
            self._episode_frames += 1
            game_over = ale.game_over()
            truncated = (max_frames is not None
                         and self._episode_frames >= max_frames)
            if game_over or truncated:
                if i < num_repeats - 1:
                    ended_early = True
                    break
            if i >= pool_start:
                ale.getScreenGrayscale(raw[i - pool_start])

        if ended_early:
            self._observe_current_frame(ale)
        else:
            if self._num_pool == 2:
                self._push_frame(np.maximum(raw[0], raw[1], out=self._pooled))
            else:
                self._push_frame(raw[0])
        lives = ale.lives()
        life_lost = lives < self._lives
        self._lives = lives

        reward = np.float32(reward)
        observation = self._stack.copy()
        if game_over or (self._terminal_on_life_loss and life_lost):
            self._game_over = game_over or truncated
            self._continue_game = not self._game_over
            self._needs_reset = True
            return dm_env.termination(reward, observation)
        if truncated:
            self._game_over = True
            self._continue_game = False
            self._needs_reset = True
            return dm_env.truncation(reward, observation, np.float32(1.0))
        return dm_env.transition(reward, observation, np.float32(1.0))

    def observation_spec(self) -> specs.BoundedArray:
        return self._observation_spec

    def action_spec(self) -> specs.DiscreteArray:
        return self._action_spec

    def reward_spec(self) -> specs.Array:
        return specs.Array((), np.float32, name="reward")

    def discount_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray((), np.float32, 0.0, 1.0, name="discount")

    def close(self) -> None:
        """Releases the emulator; the environment is unusable afterwards."""
        self._ale = None

    # -- Extras ---------------------------------------------------------------

    def is_game_over(self) -> bool:
        """Whether the latest timestep was a ``LAST`` that ended the game.

        True after a game over or the frame cap; False after a ``LAST`` that
        only lost a life (the game continues on the next ``reset()``), and
        False while an episode is running. See "True episode returns" in the
        module doc.
        """
        return self._game_over

    @property
    def game(self) -> str:
        return self._game

    @property
    def num_actions(self) -> int:
        return len(self._action_set)

    @property
    def action_names(self) -> List[str]:
        """ALE names of the actions, in action-index order (e.g. 'NOOP')."""
        return [a.name for a in self._action_set]

    def lives(self) -> int:
        """Lives left in the current game (0 for games without lives)."""
        return self._checked_ale().lives()

    def episode_frames(self) -> int:
        """Raw frames emulated since the real game reset (no-ops included)."""
        return self._episode_frames

    # -- Internals ------------------------------------------------------------

    def _checked_ale(self) -> ale_py.ALEInterface:
        if self._ale is None:
            raise RuntimeError("AtariEnvironment is closed")
        return self._ale

    def _reset_game(self, ale: ale_py.ALEInterface) -> None:
        ale.reset_game()
        self._episode_frames = 0
        if self._noop_max > 0:
            num_noops = int(self._rng.integers(1, self._noop_max + 1))
            for _ in range(num_noops):
                ale.act(_NOOP)
                self._episode_frames += 1
                if ale.game_over():  # Pathological; start again, no no-ops.
                    ale.reset_game()
                    self._episode_frames = 0

    def _observe_current_frame(self, ale: ale_py.ALEInterface) -> None:
        """Pushes the current raw frame (not pooled) onto the stack."""
        ale.getScreenGrayscale(self._raw[0])
        self._push_frame(self._raw[0])

    def _push_frame(self, frame: np.ndarray) -> None:
        stack = self._stack
        if self._stack_words is not None:
            # Little-endian: channel 0 is the lowest byte; >> 8 drops it.
            np.right_shift(self._stack_words, 8, out=self._stack_words)
        elif stack.shape[-1] > 1:
            stack[..., :-1] = stack[..., 1:]
        self._resize(frame, stack[..., -1])

    def __del__(self):
        self._ale = None
