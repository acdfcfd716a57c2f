"""Task 2 of `benchmarks.table1`: episodes of very different lengths, slow restarts.

    --level_name=benchmarks.slow_reset_env:make_env

The paper's task 2 (DMLab rooms_keys_doors_puzzle) has variable-length
episodes and restarts that take a while (the level is generated anew);
an architecture that steps environments in lock-step waits for whichever
is restarting. This plug-in `dm_env.Environment` has that shape with
Atari-like observations, so the shallow agent and Atari's batch run on it:

  * observation: uint8 [84, 84, 4] (Atari's preprocessed frame stack): a
    bright band marks one of 6 targets, drawn anew at every step;
  * actions: 6 (Pong's minimal set); reward +1 when the action names the
    target, else 0 (random play: 1/6 per step; learnable in a few
    thousand steps);
  * episode length, in agent steps: log-uniform between 20 and 1,000
    (median 140, mean 250), drawn at each reset from the environment's own
    seed;
  * each step costs STEP_CPU_S (0.25 ms) of CPU, about an Atari step with
    four action repeats and its preprocessing here;
  * each reset costs CPU time drawn log-normal with a median of 50 ms and
    sigma 0.7, clipped to [15, 400] ms (mean 64 ms; 5% below 16 ms,
    5% above 159 ms).

The costs are CPU work, not sleeps (`burn_cpu` spins until this thread has
used that much CPU time): a real restart occupies a core, so on a small
machine it also slows whatever shares the core, as a level generation
would; a sleep would leave the core to others and flatter the synchronous
designs. Under load the wall time of a reset stretches, as a real one's
does.
"""

import time

import dm_env
from dm_env import specs
import numpy as np

FRAME_SHAPE = (84, 84, 4)
NUM_ACTIONS = 6
MIN_EPISODE_STEPS, MAX_EPISODE_STEPS = 20, 1000
STEP_CPU_S = 0.00025
RESET_MEDIAN_S, RESET_SIGMA = 0.050, 0.7
RESET_MIN_S, RESET_MAX_S = 0.015, 0.400


def burn_cpu(seconds):
    """Spins until this thread has used `seconds` more of CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _frames():
    """The frame of each target: uint8 [NUM_ACTIONS, 84, 84, 4]."""
    frames = np.full((NUM_ACTIONS,) + FRAME_SHAPE, 16, np.uint8)
    width = FRAME_SHAPE[1] // NUM_ACTIONS
    for k in range(NUM_ACTIONS):
        frames[k, :, k * width:(k + 1) * width] = 220
    return frames


_FRAMES = _frames()


def episode_steps(rng):
    """An episode's length in agent steps (log-uniform, module doc)."""
    return int(np.exp(rng.uniform(np.log(MIN_EPISODE_STEPS),
                                  np.log(MAX_EPISODE_STEPS + 1))))


def reset_cost_s(rng):
    """A reset's CPU seconds (log-normal, clipped; module doc)."""
    return float(np.clip(RESET_MEDIAN_S * np.exp(RESET_SIGMA * rng.normal()),
                         RESET_MIN_S, RESET_MAX_S))


class SlowResetEnvironment(dm_env.Environment):
    """The module doc's environment; `seed` fixes its lengths, costs and
    targets."""

    def __init__(self, seed=0):
        self._rng = np.random.default_rng(seed)
        self._length = 0
        self._t = 0
        self._target = 0

    def _observation(self):
        self._target = int(self._rng.integers(NUM_ACTIONS))
        return _FRAMES[self._target].copy()

    def reset(self):
        burn_cpu(reset_cost_s(self._rng))
        self._length = episode_steps(self._rng)
        self._t = 0
        return dm_env.restart(self._observation())

    def step(self, action):
        burn_cpu(STEP_CPU_S)
        reward = float(int(action) == self._target)
        self._t += 1
        if self._t >= self._length:
            return dm_env.termination(reward, self._observation())
        return dm_env.transition(reward, self._observation())

    def observation_spec(self):
        return specs.BoundedArray(FRAME_SHAPE, np.uint8, 0, 255,
                                  name="frame")

    def action_spec(self):
        return specs.DiscreteArray(NUM_ACTIONS, name="action")


def make_env(seed=0, is_test=False):
    """The registry's MODULE:FUNCTION form."""
    del is_test
    return SlowResetEnvironment(seed=seed)
