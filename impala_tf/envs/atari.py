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
dm_env. In test mode (``terminal_on_life_loss=False``, as
``registry.LevelSet`` builds it with ``is_test=True``) every ``LAST`` ends a
game.

Code: the emulator, no-op resets, action repeat with max-pooling, the frame
cap, life loss and the frame stack are ``ale_core`` (shared with the batched
``atari_vector.AtariBatch``); this module adds the float area resize and the
dm_env protocol.

Determinism: ALE's own RNG (sticky actions) and the no-op RNG are derived
from ``seed``; the same seed and the same actions give the same observations.

Example::

    env = AtariEnvironment("pong", seed=1)
    timestep = env.reset()
    while not timestep.last():
        timestep = env.step(0)
"""

from typing import List, Optional

import dm_env
from dm_env import specs
import numpy as np

from impala_tf.envs import ale_core

__all__ = ["AtariEnvironment", "resolve_rom_id", "area_resize_weights"]

resolve_rom_id = ale_core.resolve_rom_id


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
        resolve_rom_id(game)
        ale_core.check_settings(seed, num_action_repeats, frame_stack,
                                noop_max, max_episode_frames,
                                sticky_action_prob, screen_size)
        self._game = game
        self._core = ale_core.AleGame(
            game, seed=seed, num_action_repeats=num_action_repeats,
            noop_max=noop_max, terminal_on_life_loss=terminal_on_life_loss,
            max_episode_frames=max_episode_frames,
            sticky_action_prob=sticky_action_prob,
            full_action_space=full_action_space)
        size = int(screen_size)
        self._frame = np.zeros(self._core.screen_dims, np.uint8)
        self._resize = _AreaResizer(self._core.screen_dims, (size, size))
        self._stack = ale_core.FrameStack((size, size, int(frame_stack)))
        self._observation_spec = ale_core.observation_spec(
            size, int(frame_stack))
        self._action_spec = specs.DiscreteArray(
            self._core.num_actions, dtype=np.int32, name="action")
        self._needs_reset = True     # Next step() must start an episode.
        self._continue_game = False  # Next reset() continues (life lost).
        self._game_over = False      # Whether the latest LAST ended the game.

    # -- dm_env API ---------------------------------------------------------

    def reset(self) -> dm_env.TimeStep:
        """Starts a new episode: a real game reset, or after a life-loss
        ``LAST`` the continuation of the same game."""
        core = self._checked_core()
        if not self._continue_game:
            core.reset_game(self._frame)
            self._push_frame()
        # The latest frame is in the stack; the stack restarts from it.
        self._stack.restart()
        self._needs_reset = False
        self._continue_game = False
        self._game_over = False
        return dm_env.restart(self._stack.array.copy())

    def step(self, action) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        core = self._checked_core()
        index = int(action)
        if not 0 <= index < core.num_actions:
            raise ValueError(f"action {action!r} out of range "
                             f"[0, {core.num_actions})")
        step = core.act(index, self._frame)
        self._push_frame()
        reward = np.float32(step.reward)
        observation = self._stack.array.copy()
        if not step.done:
            return dm_env.transition(reward, observation, np.float32(1.0))
        self._game_over = step.game_over
        self._continue_game = not step.game_over
        self._needs_reset = True
        if step.truncation:
            return dm_env.truncation(reward, observation, np.float32(1.0))
        return dm_env.termination(reward, observation)

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
        if self._core is not None:
            self._core.close()
        self._core = None

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
        return self._action_spec.num_values

    @property
    def action_names(self) -> List[str]:
        """ALE names of the actions, in action-index order (e.g. 'NOOP')."""
        return [a.name for a in self._checked_core().action_set]

    def lives(self) -> int:
        """Lives left in the current game (0 for games without lives)."""
        return self._checked_core().lives()

    def episode_frames(self) -> int:
        """Raw frames emulated since the real game reset (no-ops included)."""
        return self._checked_core().episode_frames

    # -- Internals ------------------------------------------------------------

    def _checked_core(self) -> ale_core.AleGame:
        if self._core is None:
            raise RuntimeError("AtariEnvironment is closed")
        return self._core

    def _push_frame(self) -> None:
        """Resizes the frame and pushes it onto the stack."""
        self._stack.shift()
        self._resize(self._frame, self._stack.newest)
