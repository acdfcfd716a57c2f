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

Both are built on `ale_core` (the emulator, no-op resets, max-pooling, life
loss, the frame stack); `envs.batch.AtariEnvironmentBatch` adapts an
`AtariBatch` to the actor's `envs.batch.EnvironmentBatch` interface.
"""

import math

import numpy as np

from impala_tf.envs import ale_core


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
      monitor: optional callable(index, call), told before game `index` is
        constructed, reset, stepped or closed (`envs.batch`).
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
                 full_action_space=False, screen_size=84, monitor=None):
        if len(games) != len(seeds) or not games:
            raise ValueError("need as many seeds as games, at least one")
        for seed in seeds:
            ale_core.check_settings(seed, num_action_repeats, frame_stack,
                                    noop_max, max_episode_frames,
                                    sticky_action_prob, screen_size)
        self._monitor = monitor or (lambda index, call: None)
        self._games = []
        for i, (game, seed) in enumerate(zip(games, seeds)):
            self._monitor(i, "construction")
            self._games.append(ale_core.AleGame(
                game, seed=seed, num_action_repeats=num_action_repeats,
                noop_max=noop_max,
                terminal_on_life_loss=terminal_on_life_loss,
                max_episode_frames=max_episode_frames,
                sticky_action_prob=sticky_action_prob,
                full_action_space=full_action_space))
        dims = {g.screen_dims for g in self._games}
        if len(dims) != 1:
            raise ValueError(f"games with different screens: {sorted(dims)}")
        height, width = dims.pop()
        size = int(screen_size)
        self._pooled = np.zeros((len(games), height, width), np.uint8)
        self._resize = BatchResizer((height, width), (size, size))
        self._stack = ale_core.FrameStack(
            (len(games), size, size, int(frame_stack)))
        self._observation_spec = ale_core.observation_spec(
            size, int(frame_stack))

    @property
    def num_envs(self):
        return len(self._games)

    @property
    def num_actions(self):
        return [g.num_actions for g in self._games]

    def observation_spec(self):
        return self._observation_spec

    def _restart(self, index, real):
        """Starts the next episode of games `index`; `real[k]`: game reset
        (else a life-loss continuation: the stack restarts from its newest
        frame)."""
        fresh = [i for i, r in zip(index, real) if r]
        for i in fresh:
            self._monitor(i, "reset")
            self._games[i].reset_game(self._pooled[i])
        if fresh:
            self._stack.push(self._resize(self._pooled[fresh]), fresh)
        self._stack.restart(index)

    def _observation(self, out):
        if out is None:
            return self._stack.array.copy()
        np.copyto(out, self._stack.array)
        return out

    def reset(self, out=None):
        """Real resets of every game; observations [N, h, w, stack]
        (written into `out` if given)."""
        n = self.num_envs
        self._restart(list(range(n)), [True] * n)
        return self._observation(out)

    def step(self, actions, out=None):
        """Steps game i with action index `actions[i]`.

        Returns (observation uint8 [N, h, w, stack] (written into `out` if
        given), reward float32 [N], done bool [N], game_over bool [N]).
        """
        n = self.num_envs
        reward = np.zeros(n, np.float32)
        done = np.zeros(n, bool)
        game_over = np.zeros(n, bool)
        pooled, monitor = self._pooled, self._monitor
        ended = []
        for i, game in enumerate(self._games):
            monitor(i, "step")
            step = game.act(int(actions[i]), pooled[i])
            reward[i] = step.reward
            if step.done:
                done[i] = True
                game_over[i] = step.game_over
                ended.append(i)
        self._stack.push(self._resize(pooled))
        if ended:
            self._restart(ended, game_over[ended])
        return self._observation(out), reward, done, game_over

    def close(self):
        for i, game in enumerate(self._games):
            self._monitor(i, "close")
            game.close()
        self._games = []


def make_batch(level_set, level_ids, seeds, monitor=None):
    """An `AtariBatch` of `level_set`'s games `level_ids` with
    `level_set.make`'s training arguments (and `monitor`, see AtariBatch)."""
    kwargs = level_set.environment_kwargs(is_test=False)
    return AtariBatch([level_set.levels[i] for i in level_ids], list(seeds),
                      monitor=monitor, **kwargs)
