"""A test double of DeepMind Lab's Python module ``deepmind_lab``.

It follows the documented API (lab/docs/users/python_api.md) and the checks of
the real module (lab/python/dmlab_module.c):

* ``Lab(level, observations, config=None, renderer='software',
  level_cache=None)``: ``observations`` must be a list and ``config`` a dict
  of string keys and string values (TypeError otherwise, like the real
  module); ``renderer`` 'software' or 'hardware' (RuntimeError); unknown
  level scripts fail with RuntimeError; unknown observation names with
  ValueError. The two DMLab-30 hold-out levels (``*_test``) need
  ``allowHoldOutLevels='true'``. ``width``, ``height``, ``fps`` and
  ``mixerSeed`` must parse as numbers.
* ``reset(episode=-1, seed=None)``: ``seed`` must be a Python int or None
  (ValueError, as the real module does for e.g. numpy integers).
* ``step(action, num_steps=1) -> float``: ``action`` a 1-D np.ndarray of 7
  ``np.intc`` (TypeError / ValueError as in the real module); RuntimeError
  when the episode is not running. Stricter than the real module (whose
  behaviour is undefined there): values must lie within ``action_spec()``
  bounds and ``num_steps`` must be an int >= 1 (ValueError).
* ``observations()`` raises RuntimeError when not running (as the real one
  does after an episode ends); ``is_running()``, ``num_steps()`` (frames
  since reset), ``observation_spec()``, ``action_spec()``, ``fps()``,
  ``events()``, ``close()``.
* ``level_cache``: on every ``reset()`` the "map" for (level, mixerSeed,
  seed % 4) is fetched with ``level_cache.fetch(key, pk3_path)``; on a miss
  it is "compiled" and passed to ``level_cache.write(key, pk3_path)``.

The task (tiny but learnable; one decision per ``step()`` call):

* Language levels (``language_*``): the frame's left and right halves have two
  different colours, and ``INSTR`` is e.g. ``'Pick the red object.'``.
  Looking towards the named colour (``LOOK_LEFT_RIGHT_PIXELS_PER_FRAME`` < 0
  for left, > 0 for right; e.g. Look Left or Forward+Look Left) gives +1,
  looking the other way -1, anything else 0. Solving it needs the instruction.
* Other levels: the frame is one colour; red or yellow means "look left",
  green or blue "look right", with the same rewards. ``INSTR`` is ''.

Every step draws a new trial; episodes last ``episode_frames`` frames (the
Lab counts frames: ``step(a, num_steps=4)`` uses 4). Everything is
deterministic given ``reset(seed=...)``.

Episode length: ``config['episodeLengthSeconds'] * fps`` frames if set (a
real setting of most DMLab levels), else ``$FAKE_DEEPMIND_LAB_EPISODE_FRAMES``,
else 400 frames (100 agent steps with action repeat 4).

Recording: each Lab keeps ``calls``, a list of ``(method, details dict)``;
``INSTANCES`` lists the Labs made in this process. When
``$FAKE_DEEPMIND_LAB_LOG`` names a file, every call is also appended to it as
a JSON line with the process id, so tests can inspect a Lab that lives in
another process.
"""

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

EPISODE_FRAMES_ENV_VAR = "FAKE_DEEPMIND_LAB_EPISODE_FRAMES"
LOG_ENV_VAR = "FAKE_DEEPMIND_LAB_LOG"
DEFAULT_EPISODE_FRAMES = 400
NUM_MAPS = 4  # Distinct "compiled maps" per level (seed % NUM_MAPS).

_DMLAB30 = (
    "rooms_collect_good_objects_train", "rooms_collect_good_objects_test",
    "rooms_exploit_deferred_effects_train",
    "rooms_exploit_deferred_effects_test", "rooms_select_nonmatching_object",
    "rooms_watermaze", "rooms_keys_doors_puzzle",
    "language_select_described_object", "language_select_located_object",
    "language_execute_random_task", "language_answer_quantitative_question",
    "lasertag_one_opponent_small", "lasertag_three_opponents_small",
    "lasertag_one_opponent_large", "lasertag_three_opponents_large",
    "natlab_fixed_large_map", "natlab_varying_map_regrowth",
    "natlab_varying_map_randomized", "skymaze_irreversible_path_hard",
    "skymaze_irreversible_path_varied",
    "psychlab_arbitrary_visuomotor_mapping",
    "psychlab_continuous_recognition", "psychlab_sequential_comparison",
    "psychlab_visual_search", "explore_object_locations_small",
    "explore_object_locations_large", "explore_obstructed_goals_small",
    "explore_obstructed_goals_large", "explore_goal_locations_small",
    "explore_goal_locations_large", "explore_object_rewards_few",
    "explore_object_rewards_many",
)
LEVELS = frozenset(
    ["contributed/dmlab30/" + name for name in _DMLAB30] +
    ["seekavoid_arena_01", "lt_chasm", "nav_maze_static_01",
     "tests/empty_room_test"])
HOLD_OUT_LEVELS = frozenset((
    "contributed/dmlab30/rooms_collect_good_objects_test",
    "contributed/dmlab30/rooms_exploit_deferred_effects_test",
))

_ACTION_SPEC = (
    {"min": -512, "max": 512, "name": "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME"},
    {"min": -512, "max": 512, "name": "LOOK_DOWN_UP_PIXELS_PER_FRAME"},
    {"min": -1, "max": 1, "name": "STRAFE_LEFT_RIGHT"},
    {"min": -1, "max": 1, "name": "MOVE_BACK_FORWARD"},
    {"min": 0, "max": 1, "name": "FIRE"},
    {"min": 0, "max": 1, "name": "JUMP"},
    {"min": 0, "max": 1, "name": "CROUCH"},
)
_ACTION_MIN = np.array([a["min"] for a in _ACTION_SPEC])
_ACTION_MAX = np.array([a["max"] for a in _ACTION_SPEC])

COLOURS = (
    ("red", (220, 40, 40)),
    ("green", (40, 200, 60)),
    ("blue", (50, 70, 230)),
    ("yellow", (230, 220, 50)),
)
_LOOK_LEFT_COLOURS = frozenset(("red", "yellow"))
LEFT, RIGHT = -1, 1

_LOG_LEVELS = ("error", "warn", "warning", "info", "debug")

# Lab objects created in this process.
INSTANCES = []

_runfiles_path = os.path.dirname(os.path.abspath(__file__))


def version():
    return "1.0-fake"


def runfiles_path():
    return _runfiles_path


def set_runfiles_path(path):
    global _runfiles_path
    if not isinstance(path, str):
        raise TypeError("argument 1 must be str")
    _runfiles_path = path
    return True


def _log(record):
    path = os.environ.get(LOG_ENV_VAR)
    if not path:
        return
    record = dict(record, pid=os.getpid())
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_log(path):
    """The JSON records appended to ``path`` by Labs (any process)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _parse_int(key, value, minimum=None, maximum=None):
    try:
        number = int(value, 0)
    except ValueError:
        raise RuntimeError(
            f"Failed to apply setting '{key} = {value}' - "
            f"\"'{key}' must be an integer\"") from None
    if ((minimum is not None and number < minimum) or
            (maximum is not None and number > maximum)):
        raise RuntimeError(
            f"Failed to apply setting '{key} = {value}' - \"out of range\"")
    return number


class Lab:
    """Test double of ``deepmind_lab.Lab``."""

    def __init__(self, level, observations, config=None, renderer="software",
                 level_cache=None):
        if not isinstance(level, str):
            raise TypeError("argument 1 (level) must be str")
        if not isinstance(observations, list):
            raise TypeError("argument 2 (observations) must be list")
        if config is not None and not isinstance(config, dict):
            raise TypeError("argument 3 (config) must be dict")
        if not isinstance(renderer, str):
            raise TypeError("argument 4 (renderer) must be str")
        if renderer not in ("software", "hardware", ""):
            raise RuntimeError(
                'Failed to set renderer must be "hardware" or "software" '
                f'actual "{renderer}"!')
        config = {} if config is None else config
        for key, value in config.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    "bad argument type for built-in operation (config keys "
                    f"and values must be str; got {key!r}: {value!r})")
        if level_cache is not None:
            for method in ("fetch", "write"):
                if not callable(getattr(level_cache, method, None)):
                    raise AttributeError(
                        f"level_cache has no method {method!r}")

        self.calls = []
        self._record("__init__", level=level, observations=list(observations),
                     config=dict(config), renderer=renderer,
                     level_cache=level_cache is not None)

        self.level = level
        self.config = dict(config)
        self.renderer = renderer
        self._level_cache = level_cache
        self._width = _parse_int("width", config.get("width", "320"), 1, 4096)
        self._height = _parse_int("height", config.get("height", "240"), 1,
                                  4096)
        self._fps = _parse_int("fps", config.get("fps", "60"), 1, 10000)
        self.mixer_seed = _parse_int("mixerSeed", config.get("mixerSeed", "0"),
                                     0, 2**32 - 1)
        allow_hold_out = config.get("allowHoldOutLevels", "false")
        if allow_hold_out not in ("true", "false"):
            raise RuntimeError(
                "Failed to apply setting 'allowHoldOutLevels = "
                f"{allow_hold_out}' - \"must be 'true' or 'false'\"")
        log_level = config.get("logLevel", "warn")
        if log_level.lower() not in _LOG_LEVELS:
            raise RuntimeError(
                f"Failed to apply setting 'logLevel = {log_level}'")

        if level not in LEVELS:
            raise RuntimeError(
                f"Failed to init environment - \"Could not find level "
                f"'{level}'\"")
        if level in HOLD_OUT_LEVELS and allow_hold_out != "true":
            raise RuntimeError(
                "Failed to init environment - \"This level must only be used "
                "during evaluation. For training, use the *_train.lua version "
                "of the level.\"")
        if "episodeLengthSeconds" in config:
            try:
                seconds = float(config["episodeLengthSeconds"])
            except ValueError:
                raise RuntimeError(
                    "Failed to init environment - \"episodeLengthSeconds must "
                    "be a number\"") from None
            self.episode_frames = max(1, int(round(seconds * self._fps)))
        else:
            self.episode_frames = int(os.environ.get(
                EPISODE_FRAMES_ENV_VAR, DEFAULT_EPISODE_FRAMES))
        self.is_language = level.split("/")[-1].startswith("language_")

        specs = {spec["name"]: spec for spec in self.observation_spec()}
        for name in observations:
            if not isinstance(name, str):
                raise TypeError("observation names must be str")
            if name not in specs:
                raise ValueError(f"Unknown observation '{name}'.")
        self._observation_names = list(observations)

        self._status = "uninitialized"
        self._episode = 0
        self._num_steps = 0
        self._rng = None
        self._trial = None
        self._tmpdir = None
        self.episode_seeds = []
        self.cache_hits = 0
        self.cache_misses = 0
        INSTANCES.append(self)

    # -- helpers -----------------------------------------------------------

    def _record(self, method, **details):
        self.calls.append((method, details))
        _log(dict(details, method=method))

    def _check_open(self, method):
        if self._status == "closed":
            raise RuntimeError(f"Environment closed; cannot call {method}()")

    def _new_trial(self):
        rng = self._rng
        if self.is_language:
            left, right = rng.choice(len(COLOURS), size=2, replace=False)
            side = LEFT if rng.randint(2) == 0 else RIGHT
            target = COLOURS[left if side == LEFT else right][0]
            self._trial = {"colours": (int(left), int(right)), "side": side,
                           "instruction": f"Pick the {target} object."}
        else:
            colour = int(rng.randint(len(COLOURS)))
            side = (LEFT if COLOURS[colour][0] in _LOOK_LEFT_COLOURS
                    else RIGHT)
            self._trial = {"colours": (colour, colour), "side": side,
                           "instruction": ""}

    def _frame(self):
        frame = np.empty((self._height, self._width, 3), dtype=np.uint8)
        left, right = self._trial["colours"]
        half = self._width // 2
        frame[:, :half] = COLOURS[left][1]
        frame[:, half:] = COLOURS[right][1]
        return frame

    def _load_map(self, seed):
        """Consults the level cache like DeepMind Lab's map compilation."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="fake_dmlab_")
        key = hashlib.md5(
            f"{self.level}|{self.mixer_seed}|{seed % NUM_MAPS}".encode()
        ).hexdigest()
        pk3_path = os.path.join(self._tmpdir, key + ".pk3")
        with open(pk3_path, "wb"):
            pass  # The engine hands the cache an empty target file.
        if self._level_cache is not None and self._level_cache.fetch(
                key, pk3_path):
            with open(pk3_path, "rb") as f:
                content = f.read()
            if content != self._map_content(key):
                raise RuntimeError(
                    f"Failed to start environment - \"level cache returned a "
                    f"corrupt map for key {key}\"")
            self.cache_hits += 1
            self._record("level_cache_hit", key=key)
        else:
            with open(pk3_path, "wb") as f:
                f.write(self._map_content(key))
            self.cache_misses += 1
            self._record("level_cache_miss", key=key)
            if self._level_cache is not None:
                self._level_cache.write(key, pk3_path)

    @staticmethod
    def _map_content(key):
        return b"PK\x03\x04 fake DeepMind Lab map " + key.encode()

    # -- API -----------------------------------------------------------------

    def reset(self, episode=-1, seed=None):
        self._check_open("reset")
        if not isinstance(episode, int):
            raise TypeError("'episode' must be int")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(
                f"'seed' must be int or None, was '{type(seed).__name__}'.")
        self._record("reset", episode=episode, seed=seed)
        if episode >= 0:
            self._episode = episode
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        seed %= 2**32
        self._load_map(seed)
        self.episode_seeds.append(seed)
        self._rng = np.random.RandomState(
            (seed + 7919 * self._episode + self.mixer_seed) % 2**32)
        self._num_steps = 0
        self._episode += 1
        self._status = "running"
        self._new_trial()
        return True

    def num_steps(self):
        return self._num_steps

    def is_running(self):
        return self._status == "running"

    def step(self, action, num_steps=1):
        if not isinstance(action, np.ndarray):
            raise TypeError(
                "argument 1 must be numpy.ndarray, not "
                f"{type(action).__name__}")
        if not self.is_running():
            raise RuntimeError("Environment in wrong status to advance.")
        if action.ndim != 1 or action.shape[0] != len(_ACTION_SPEC):
            raise ValueError(f"action must have shape ({len(_ACTION_SPEC)})")
        if action.dtype != np.intc:
            raise ValueError("action must have dtype np.intc")
        if isinstance(num_steps, bool) or not isinstance(
                num_steps, (int, np.integer)):
            raise TypeError("'num_steps' must be int")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if np.any(action < _ACTION_MIN) or np.any(action > _ACTION_MAX):
            raise ValueError(
                f"action {action.tolist()} is outside the action_spec bounds")
        self._record("step", action=action.tolist(), num_steps=int(num_steps))

        look = int(action[0])
        side = LEFT if look < 0 else RIGHT if look > 0 else 0
        if side == 0:
            reward = 0.0
        else:
            reward = 1.0 if side == self._trial["side"] else -1.0
        self._num_steps += int(num_steps)
        if self._num_steps >= self.episode_frames:
            self._status = "terminated"
        else:
            self._new_trial()
        return reward

    def observation_spec(self):
        return [
            {"name": "RGB_INTERLEAVED", "shape": (self._height, self._width, 3),
             "dtype": np.uint8},
            {"name": "RGB", "shape": (3, self._height, self._width),
             "dtype": np.uint8},
            {"name": "INSTR", "shape": (), "dtype": str},
            {"name": "DEBUG.POS.TRANS", "shape": (3,), "dtype": np.float64},
        ]

    def action_spec(self):
        return [dict(spec) for spec in _ACTION_SPEC]

    def fps(self):
        return self._fps

    def observations(self):
        if not self.is_running():
            raise RuntimeError(
                "Environment in wrong status for call to observations()")
        frame = self._frame()
        result = {}
        for name in self._observation_names:
            if name == "RGB_INTERLEAVED":
                result[name] = frame
            elif name == "RGB":
                result[name] = np.ascontiguousarray(frame.transpose(2, 0, 1))
            elif name == "INSTR":
                result[name] = self._trial["instruction"]
            elif name == "DEBUG.POS.TRANS":
                result[name] = np.zeros(3, dtype=np.float64)
        return result

    def events(self):
        if self._status not in ("running", "terminated"):
            raise RuntimeError(
                "Environment in wrong status for call to events()")
        return []

    def close(self):
        if self._status == "closed":
            return False
        self._record("close")
        self._status = "closed"
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        return True
