"""A tiny learnable environment for tests and for trying the trainer quickly.

`ColourChoice`: each step shows a uniformly coloured frame (uint8
[size, size, 3]), red or green at random; action 0 earns +1 on red, action 1
earns +1 on green, anything else 0. An episode lasts `episode_length` steps,
so a random policy over `num_actions` actions scores
`episode_length / num_actions` on average and the best policy
`episode_length`. Usable as `--level_name=impala_tf.envs.toy:colour_choice`.
"""

import dm_env
from dm_env import specs
import numpy as np

_COLOURS = np.array([[255, 0, 0], [0, 255, 0]], np.uint8)


class ColourChoice(dm_env.Environment):

    def __init__(self, seed=0, size=24, episode_length=10, num_actions=2):
        self._rng = np.random.RandomState(seed)
        self._size = size
        self._length = episode_length
        self._num_actions = num_actions
        self._t = 0
        self._colour = 0

    def _frame(self):
        self._colour = self._rng.randint(2)
        frame = np.empty([self._size, self._size, 3], np.uint8)
        frame[:] = _COLOURS[self._colour]
        return frame

    def reset(self):
        self._t = 0
        return dm_env.restart(self._frame())

    def step(self, action):
        reward = float(int(action) == self._colour)
        self._t += 1
        if self._t >= self._length:
            return dm_env.termination(reward, self._frame())
        return dm_env.transition(reward, self._frame())

    def observation_spec(self):
        return specs.BoundedArray((self._size, self._size, 3), np.uint8, 0,
                                  255, name="frame")

    def action_spec(self):
        return specs.DiscreteArray(self._num_actions, name="action")


def colour_choice(seed=0, is_test=False):
    del is_test
    return ColourChoice(seed=seed)
