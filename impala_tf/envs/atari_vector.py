"""N Atari games stepped together, preprocessed as one batch.

`AtariBatch` has the semantics of N `atari.AtariEnvironment`s (the paper's
Table G.1 preprocessing: action repeat 4 with summed rewards, max-pool of the
last two raw frames, ALE grayscale, 84x84 area resize, a stack of 4 frames,
1..30 raw no-op frames at every real game reset, life loss ends a training
episode but not the game, the 108,000-frame cap as a truncation, sticky
actions, minimal or full action set) and the same seeds give the same games.
What differs is how the work is done: the emulators run one after the other
from one Python loop, then the N new frames are resized in one vectorised
call and pushed onto the N frame stacks at once, and an episode that ends is
reset at once (the actor's convention). It exists for speed: it takes about
a quarter less CPU per agent step than N `AtariEnvironment`s, most of it
from the resize (benchmarks/README.md).

Resize: `exact_area_resize` computes the area average with integer weights
and rounds half up exactly; `AtariEnvironment` computes it in float32 and can
differ by one grey level where the exact value is a tie (x.5).

`AtariEnvironmentBatch` wraps it for `actor.Actor`: it writes rewards, dones,
game-over flags, finished games' returns and observations straight into the
trajectory buffers, and beats the environment watchdog's heartbeat
(`watchdog`) when the level set has one.
"""

import math

import numpy as np

import ale_py
import ale_py.roms

from impala_tf.envs import atari

_NOOP = ale_py.Action.NOOP


def _integer_weights(n_in, n_out):
    """Area weights along one axis as integers: ([n_out, n_in] int, D).

    Output i averages input pixels j with weight `w[i, j] / D`; each row of
    `w` sums to D = n_in / gcd(n_in, n_out).
    """
    g = math.gcd(n_in, n_out)
    w = np.zeros((n_out, n_in), np.int64)
    for i in range(n_out):
        lo, hi = i * n_in, (i + 1) * n_in  # In units of 1 / n_out pixel.
        for j in range(lo // n_out, min(n_in, -(-hi // n_out))):
            w[i, j] = max(0, min(hi, (j + 1) * n_out) - max(lo, j * n_out))
    return w // g, n_in // g


class BatchResizer:
    """uint8 [M, H, W] -> uint8 [M, h, w]: exact area average, half up.

    Integer arithmetic throughout (uint16 for 210x160 -> 84x84, whose
    weights are fifths of a row times fortieths of a column): rows are cut
    into gcd-sized periods (210 -> 84: 42 blocks of 5 rows -> 2 rows) and
    combined with whole-array adds; columns are gathered (at most 3 per
    output) from the transposed rows. The result is floor(sum / D + 1/2),
    D the product of both axes' denominators. Frames go through in chunks
    of 8 to stay in cache.
    """

    _CHUNK = 8

    def __init__(self, in_hw, out_hw):
        (h_in, self._w_in), (self._h, self._w) = in_hw, out_hw
        row_w, row_d = _integer_weights(h_in, self._h)
        col_w, col_d = _integer_weights(self._w_in, self._w)
        self._d = row_d * col_d
        # The largest value held: 255 * D plus the rounding term.
        top = (256 if self._d % 2 == 0 else 2 * 256) * self._d
        self._dtype = (np.uint16 if top < 2 ** 16 else np.uint32
                       if top < 2 ** 32 else np.uint64)
        g = math.gcd(h_in, self._h)
        self._blocks = (g, h_in // g, self._h // g)
        block = row_w[:self._h // g, :h_in // g]  # Every block is the same.
        # Per output row of a block: {weight: [input rows of the block]}.
        self._row_terms = []
        for q in range(block.shape[0]):
            terms = {}
            for p in np.nonzero(block[q])[0]:
                terms.setdefault(int(block[q, p]), []).append(int(p))
            self._row_terms.append(sorted(terms.items(), reverse=True))
        k = max(int(np.count_nonzero(c)) for c in col_w)
        self._col_index = np.zeros((k, self._w), np.intp)
        self._col_weight = np.zeros((k, self._w, 1), self._dtype)
        for j in range(self._w):
            for slot, c in enumerate(np.nonzero(col_w[j])[0]):
                self._col_index[slot, j] = c
                self._col_weight[slot, j, 0] = col_w[j, c]

    def __call__(self, frames):
        """frames: uint8 [M, H, W] -> a new uint8 [M, h, w]."""
        out = np.empty((frames.shape[0], self._h, self._w), np.uint8)
        for start in range(0, frames.shape[0], self._CHUNK):
            self._resize(frames[start:start + self._CHUNK],
                         out[start:start + self._CHUNK])
        return out

    def _resize(self, frames, out):
        m, dt = frames.shape[0], self._dtype
        g, p_in, p_out = self._blocks
        x = frames.astype(dt).reshape(m, g, p_in, self._w_in)
        rows = np.empty((m, g, p_out, self._w_in), dt)
        tmp = np.empty((m, g, self._w_in), dt)
        for q, terms in enumerate(self._row_terms):
            dst = rows[:, :, q]
            for n, (weight, inputs) in enumerate(terms):
                if n and weight == 1:
                    for p in inputs:
                        np.add(dst, x[:, :, p], out=dst)
                    continue
                buf = tmp if n else dst
                if len(inputs) == 1:
                    np.multiply(x[:, :, inputs[0]], dt(weight), out=buf)
                else:
                    np.add(x[:, :, inputs[0]], x[:, :, inputs[1]], out=buf)
                    for p in inputs[2:]:
                        np.add(buf, x[:, :, p], out=buf)
                    if weight != 1:
                        np.multiply(buf, dt(weight), out=buf)
                if n:
                    np.add(dst, buf, out=dst)
        cols = np.ascontiguousarray(
            rows.reshape(m, self._h, self._w_in).transpose(0, 2, 1))
        total = np.take(cols, self._col_index[0], axis=1)  # [m, w, h]
        total *= self._col_weight[0]
        for slot in range(1, len(self._col_index)):
            part = np.take(cols, self._col_index[slot], axis=1)
            part *= self._col_weight[slot]
            total += part
        d = self._d
        if d % 2 == 0:
            total += dt(d // 2)
            total //= dt(d)
        else:
            total = (total * dt(2) + dt(d)) // dt(2 * d)
        out[...] = total.transpose(0, 2, 1)


class AtariBatch:
    """N Atari games with `atari.AtariEnvironment`'s preprocessing.

    Args:
      games: N game names (snake_case, as `AtariEnvironment`); may differ
        (multi-task), but all need the same screen size.
      seeds: N non-negative seeds (game i behaves as
        `AtariEnvironment(games[i], seed=seeds[i], ...)`).
      The remaining arguments are `AtariEnvironment`'s, the same for all.

    `reset()` and `step(actions)` return observations uint8
    [N, screen_size, screen_size, frame_stack]; `step` also rewards float32
    [N], done bool [N] (the episode ended: the observation returned for that
    game is already the first of its next episode) and game_over bool [N]
    (the episode that ended was a whole game, or hit the frame cap).
    """

    def __init__(self, games, seeds, num_action_repeats=4, frame_stack=4,
                 noop_max=30, terminal_on_life_loss=True,
                 max_episode_frames=108_000, sticky_action_prob=0.0,
                 full_action_space=False, screen_size=84):
        if len(games) != len(seeds) or not games:
            raise ValueError("need as many seeds as games, at least one")
        # The reference environments validate the arguments and hold the
        # per-game pieces we reuse (ALE, action set, no-op RNG).
        self._envs = [atari.AtariEnvironment(
            g, seed=s, num_action_repeats=num_action_repeats,
            frame_stack=frame_stack, noop_max=noop_max,
            terminal_on_life_loss=terminal_on_life_loss,
            max_episode_frames=max_episode_frames,
            sticky_action_prob=sticky_action_prob,
            full_action_space=full_action_space, screen_size=screen_size)
            for g, s in zip(games, seeds)]
        # pylint: disable=protected-access
        self._ales = [e._ale for e in self._envs]
        self._action_sets = [e._action_set for e in self._envs]
        self._rngs = [e._rng for e in self._envs]
        # pylint: enable=protected-access
        n = len(games)
        dims = {tuple(a.getScreenDims()) for a in self._ales}
        if len(dims) != 1:
            raise ValueError(f"games with different screens: {sorted(dims)}")
        height, width = dims.pop()
        self._repeats = int(num_action_repeats)
        self._pool_start = self._repeats - min(2, self._repeats)
        self._noop_max = int(noop_max)
        self._life_loss_ends = bool(terminal_on_life_loss)
        self._max_frames = (None if max_episode_frames is None
                            else int(max_episode_frames))
        self._raw = np.zeros((n, 2, height, width), np.uint8)
        self._pooled = np.zeros((n, height, width), np.uint8)
        self._resize = BatchResizer((height, width),
                                    (screen_size, screen_size))
        self._stacks = np.zeros((n, screen_size, screen_size,
                                 int(frame_stack)), np.uint8)
        word = {2: np.uint16, 4: np.uint32, 8: np.uint64}.get(
            int(frame_stack))
        self._words = (self._stacks.view(word)[..., 0] if word is not None
                       else None)
        self._frames = np.zeros(n, np.int64)   # Raw frames since game reset.
        self._lives = np.zeros(n, np.int64)
        self.game_over = np.zeros(n, bool)      # Of the latest step.
        self.current = 0  # The game being emulated (names a failing one).

    @property
    def num_envs(self):
        return len(self._ales)

    @property
    def num_actions(self):
        return [len(s) for s in self._action_sets]

    def observation_spec(self):
        return self._envs[0].observation_spec()

    def _push(self, frames, index=None):
        """Pushes resized frames [M, h, w] onto the stacks `index` (all)."""
        if index is None:
            if self._words is not None:
                np.right_shift(self._words, 8, out=self._words)
            else:
                self._stacks[..., :-1] = self._stacks[..., 1:]
            self._stacks[..., -1] = frames
        else:
            stacks = self._stacks[index]
            stacks[..., :-1] = stacks[..., 1:]
            stacks[..., -1] = frames
            self._stacks[index] = stacks

    def _reset_game(self, i):
        """A real game reset with no-ops; grabs the frame into raw[i, 0]."""
        self.current = i
        ale = self._ales[i]
        ale.reset_game()
        frames = 0
        if self._noop_max > 0:
            for _ in range(int(self._rngs[i].integers(1, self._noop_max + 1))):
                ale.act(_NOOP)
                frames += 1
                if ale.game_over():  # Pathological: start again, no no-ops.
                    ale.reset_game()
                    frames = 0
        self._frames[i] = frames
        ale.getScreenGrayscale(self._raw[i, 0])
        self._lives[i] = ale.lives()

    def _restart(self, index, real):
        """Starts the next episode of games `index`; `real[k]`: game reset
        (else a life-loss continuation: the stack restarts from its newest
        frame)."""
        fresh = [i for i, r in zip(index, real) if r]
        for i in fresh:
            self._reset_game(i)
        if fresh:
            self._push(self._resize(self._raw[fresh, 0]), fresh)
        for i in index:
            self._stacks[i] = self._stacks[i, ..., -1:]
            self._lives[i] = self._ales[i].lives()

    def reset(self):
        """Real resets of every game; observations [N, h, w, stack]."""
        n = self.num_envs
        self._restart(list(range(n)), [True] * n)
        self.game_over[:] = False
        return self._stacks.copy()

    def step(self, actions, out=None):
        """Steps game i with action index `actions[i]`.

        Returns (observation uint8 [N, h, w, stack] (written into `out` if
        given), reward float32 [N], done bool [N], game_over bool [N]).
        """
        n = self.num_envs
        reward = np.zeros(n, np.float32)
        done = np.zeros(n, bool)
        game_over = self.game_over
        game_over[:] = False
        raw, pooled, max_frames = self._raw, self._pooled, self._max_frames
        repeats, pool_start = self._repeats, self._pool_start
        ended, real = [], []
        for i in range(n):
            self.current = i
            ale = self._ales[i]
            action = self._action_sets[i][int(actions[i])]
            total = 0
            frames = int(self._frames[i])
            over = truncated = early = False
            for k in range(repeats):
                total += ale.act(action)
                frames += 1
                over = ale.game_over()
                truncated = max_frames is not None and frames >= max_frames
                if (over or truncated) and k < repeats - 1:
                    early = True
                    break
                if k >= pool_start:
                    ale.getScreenGrayscale(raw[i, k - pool_start])
            self._frames[i] = frames
            if early:
                ale.getScreenGrayscale(pooled[i])
            elif repeats - pool_start == 2:
                np.maximum(raw[i, 0], raw[i, 1], out=pooled[i])
            else:
                pooled[i] = raw[i, 0]
            reward[i] = total
            lives = ale.lives()
            life_lost = lives < self._lives[i]
            self._lives[i] = lives
            if over or truncated or (self._life_loss_ends and life_lost):
                done[i] = True
                game_over[i] = over or truncated
                ended.append(i)
                real.append(bool(game_over[i]))
        self._push(self._resize(pooled))
        if ended:
            self._restart(ended, real)
        if out is None:
            out = self._stacks.copy()
        else:
            np.copyto(out, self._stacks)
        return out, reward, done, game_over.copy()

    def close(self):
        for env in self._envs:
            env.close()
        self._ales = []


def make_batch(level_set, level_ids, seeds):
    """An `AtariBatch` with `level_set.make`'s training arguments."""
    from atari57 import evaluation  # pylint: disable=g-import-not-at-top
    kwargs = evaluation.training_env_kwargs(
        full_action_space=level_set.is_multitask)
    kwargs.update(level_set.env_kwargs)
    return AtariBatch([level_set.levels[i] for i in level_ids], list(seeds),
                      **kwargs)


class AtariEnvironmentBatch:
    """`actor.EnvironmentBatch`'s protocol on an `AtariBatch`.

    Writes column t of the trajectory buffers (`types.Trajectory` of numpy
    arrays [N, T+1, ...]); done, game_over and the finished games' returns
    and lengths only where set (the actor zeroes them first).
    """

    def __init__(self, level_set, level_ids, seeds):
        self._level_set = level_set
        self._level_ids = [int(i) for i in level_ids]
        self._heartbeat = getattr(level_set, "heartbeat", None)
        self._returns = np.zeros(len(level_ids), np.float32)
        self._steps = np.zeros(len(level_ids), np.int32)
        self._batch = self._guarded("construction", make_batch, level_set,
                                    self._level_ids, seeds, first=True)

    def _guarded(self, call, fn, *args, first=False):
        """Calls fn(*args) as `watchdog.GuardedEnvironment` would."""
        if not hasattr(self._level_set, "heartbeat"):
            return fn(*args)  # Not in a supervised actor process.
        from impala_tf import watchdog  # pylint: disable=g-import-not-at-top
        if self._heartbeat is not None:  # A hang names the first game.
            watchdog.begin(self._heartbeat, self._level_ids[0], call,
                           watchdog.FIRST_CALL_ALLOWANCE if first else 1.0)
        try:
            return fn(*args)
        except Exception as e:  # pylint: disable=broad-except
            batch = getattr(self, "_batch", None)
            level_id = self._level_ids[batch.current if batch else 0]
            raise watchdog.EnvironmentFailure(
                watchdog.level_label(self._level_set, level_id),
                call if call == "construction" else f"{call}()", e) from e
        finally:
            if self._heartbeat is not None:
                watchdog.end(self._heartbeat)

    def reset_into(self, t, buffers):
        obs = self._guarded("reset", self._batch.reset, first=True)
        buffers.env_outputs.observation["frame"][:, t] = obs

    def step_into(self, actions, t, buffers):
        _, reward, done, over = self._guarded(
            "step", self._batch.step, actions,
            buffers.env_outputs.observation["frame"][:, t])
        buffers.env_outputs.reward[:, t] = reward
        self._returns += reward
        self._steps += 1
        if done.any():
            buffers.env_outputs.done[:, t] = done
            buffers.game_over[:, t] = over
            buffers.episode_return[over, t] = self._returns[over]
            buffers.episode_step[over, t] = self._steps[over]
            self._returns[over] = 0.0
            self._steps[over] = 0

    def close(self):
        self._guarded("close", self._batch.close)
