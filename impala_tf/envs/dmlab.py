"""DeepMind Lab as a dm_env.Environment, each Lab in its own process.

DeepMind Lab keeps one global game engine per process, so every
:class:`DmLabEnvironment` starts a child process (multiprocessing, *spawn*
context) that owns one ``deepmind_lab.Lab`` and answers requests over a Pipe;
the object in the parent implements the dm_env API.

What the environment looks like (IMPALA paper, Appendix D; official release
``environments.py`` / ``experiment.py``):

* Observations ``RGB_INTERLEAVED`` (uint8, [height, width, 3], 72x96 by
  default) and ``INSTR`` (the language instruction, '' on levels without one),
  as ``{'frame': ..., 'instruction': str}``.
* Actions: ``DiscreteArray(9)`` indexing the paper's action set of Table D.2
  (:data:`DEFAULT_ACTION_SET`), each executed with
  ``lab.step(action, num_steps=num_action_repeats)`` (4 by default); the
  reward is the sum DeepMind Lab returns over those frames.
* Level names: a ``dmlab/`` prefix is stripped first; a level a suite names
  (``envs.suites``; e.g. DMLab-30's ``rooms_watermaze``) is loaded as the
  level script the suite gives (``contributed/dmlab30/rooms_watermaze``);
  any other name (``seekavoid_arena_01``, ``contributed/dmlab30/...``) is
  passed to DeepMind Lab as given.
* Config (all values strings): ``width``, ``height``, ``logLevel='WARN'``,
  ``datasetPath`` when given, and in test mode ``allowHoldOutLevels='true'``
  and ``mixerSeed=str(0x600D5EED)`` ('1611489005'), the evaluation mixer seed
  of the official release; ``extra_config`` entries are added last.
* Seeds: each ``reset()`` passes ``seed=`` drawn from
  ``np.random.RandomState(seed)``, so actors with different seeds see
  different episodes and a run is reproducible.
* Episode ends: when ``lab.is_running()`` turns False after a step, the step
  returns a LAST time step (discount 0, the reward of that step). DeepMind Lab
  gives no observation once the episode has ended (``observations()`` raises),
  so the LAST time step carries the last observation the Lab produced, i.e.
  the one before the final action. The next ``reset()`` (or ``step()``, per
  dm_env) starts a new episode.

Installing DeepMind Lab: it is not on PyPI. Build the wheel from
https://github.com/deepmind/lab (``docs/users/build.md``) with Bazel:
``bazel build -c opt //python/pip_package:build_pip_package``, then
``./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg`` and
``pip install /tmp/dmlab_pkg/deepmind_lab-*.whl``. Without it, constructing a
:class:`DmLabEnvironment` raises :class:`DeepMindLabNotInstalledError`.

The module imported in the child is ``deepmind_lab`` unless the
``lab_module`` argument or the environment variable
``IMPALA_TF_DEEPMIND_LAB_MODULE`` names another one (the tests use a test
double, ``tests/fake_deepmind_lab.py``).

The child process (started and served by :mod:`impala_tf.envs.dmlab_process`,
which describes its life cycle) is stopped by :meth:`DmLabEnvironment.close`,
by garbage collection of the environment and at interpreter exit.
Multiprocessing does not let daemonic processes have children, so create
these environments in the main process, in threads, or in non-daemonic
processes. An instance is not safe to use from several threads at once.
"""

import importlib.util
import operator
import os
import weakref

import dm_env
from dm_env import specs
import numpy as np

from impala_tf import errors
from impala_tf.envs import dmlab_common
from impala_tf.envs import dmlab_process
from impala_tf.envs import suites

DEEPMIND_LAB_MODULE_ENV_VAR = "IMPALA_TF_DEEPMIND_LAB_MODULE"
DEFAULT_LAB_MODULE = "deepmind_lab"

LEVEL_NAME_PREFIX = "dmlab/"

# Evaluation mixer seed of the official release (scalable_agent): 1611489005.
TEST_MIXER_SEED = 0x600D5EED

# Shared with the child process (dmlab_common).
OBSERVATION_NAMES = dmlab_common.OBSERVATION_NAMES
LAB_ACTION_NAMES = dmlab_common.LAB_ACTION_NAMES
ACTION_NAMES = dmlab_common.ACTION_NAMES
DEFAULT_ACTION_SET = dmlab_common.DEFAULT_ACTION_SET
LevelCache = dmlab_common.LevelCache


class DeepMindLabNotInstalledError(errors.UsageError, ImportError):
    """The DeepMind Lab Python module cannot be imported."""


def _not_installed_message(module_name, detail=None):
    cause = (f"cannot be imported ({detail})" if detail
             else "is not installed")
    return (
        f"DeepMind Lab (Python module '{module_name}') {cause}: build it "
        "from https://github.com/deepmind/lab with Bazel "
        "(`bazel build -c opt //python/pip_package:build_pip_package`, then "
        "`./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg`) "
        "and install the wheel with "
        "`pip install /tmp/dmlab_pkg/deepmind_lab-*.whl`.")


def lab_module_name(lab_module=None):
    """The module that provides ``Lab``: argument, env var, or deepmind_lab."""
    return (lab_module or os.environ.get(DEEPMIND_LAB_MODULE_ENV_VAR)
            or DEFAULT_LAB_MODULE)


def check_lab_module(lab_module=None):
    """Raises DeepMindLabNotInstalledError unless the Lab module is findable.

    Only looks the module up (importlib.util.find_spec); it is imported in the
    environment's own process.
    """
    name = lab_module_name(lab_module)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise DeepMindLabNotInstalledError(_not_installed_message(name),
                                           name=name)
    return name


def resolve_level_name(level):
    """The level script name DeepMind Lab is given for ``level``: a suite's
    script for a level it names, else ``level`` (``dmlab/`` stripped)."""
    if not isinstance(level, str) or not level:
        raise ValueError(f"level must be a non-empty string, got {level!r}")
    name = level
    if name.startswith(LEVEL_NAME_PREFIX):
        name = name[len(LEVEL_NAME_PREFIX):]
    found = suites.find_level(name, "dmlab")
    return found[1].env_id if found is not None else name


def _config_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def make_config(width=96, height=72, is_test=False, dataset_path=None,
                extra_config=None):
    """The Lab ``config`` dict (string keys and string values)."""
    config = {
        "width": str(int(width)),
        "height": str(int(height)),
        "logLevel": "WARN",
    }
    if dataset_path:
        config["datasetPath"] = str(dataset_path)
    if is_test:
        config["allowHoldOutLevels"] = "true"
        config["mixerSeed"] = str(TEST_MIXER_SEED)
    for key, value in (extra_config or {}).items():
        config[str(key)] = _config_value(value)
    return config


class DmLabEnvironment(dm_env.Environment):
    """One DeepMind Lab level, in its own process, as a dm_env.Environment."""

    def __init__(self, level, seed, num_action_repeats=4, width=96, height=72,
                 is_test=False, level_cache_dir=None, dataset_path=None,
                 renderer="software", extra_config=None, lab_module=None):
        """Starts the Lab process; returns once the Lab is constructed.

        Args:
          level: a suite's level name (e.g. DMLab-30's 'rooms_watermaze'),
            'dmlab/<name>', or any other DeepMind Lab level script name
            (passed as given); see :func:`resolve_level_name`.
          seed: seeds the RandomState that draws each episode's Lab seed.
          num_action_repeats: frames per agent step (``num_steps`` of
            ``Lab.step``).
          width, height: frame size in pixels (96x72 in the paper).
          is_test: evaluation mode: ``allowHoldOutLevels='true'`` and the
            fixed ``mixerSeed`` (:data:`TEST_MIXER_SEED`).
          level_cache_dir: optional directory for a :class:`LevelCache`.
          dataset_path: optional ``datasetPath`` (needed by some levels).
          renderer: 'software' (OSMesa) or 'hardware' (EGL/GLX).
          extra_config: more Lab settings; values are converted to strings
            (booleans to 'true'/'false').
          lab_module: module providing ``Lab``; default
            ``$IMPALA_TF_DEEPMIND_LAB_MODULE`` or 'deepmind_lab'.

        Raises:
          DeepMindLabNotInstalledError: the Lab module cannot be imported.
          ValueError, RuntimeError, TypeError: as raised by ``Lab(...)``
            (unknown level, bad setting, ...) in the child.
        """
        self._closed = True  # Until the child is up; makes close() safe.
        self._finalizer = None
        if renderer not in ("software", "hardware"):
            raise ValueError(
                f"renderer must be 'software' or 'hardware', got {renderer!r}")
        num_action_repeats = int(num_action_repeats)
        if num_action_repeats < 1:
            raise ValueError(
                f"num_action_repeats must be >= 1, got {num_action_repeats}")
        module_name = check_lab_module(lab_module)

        self._requested_level = level
        self._level = resolve_level_name(level)
        self._num_action_repeats = num_action_repeats
        self._width, self._height = int(width), int(height)
        self._is_test = bool(is_test)
        self._config = make_config(width, height, is_test, dataset_path,
                                   extra_config)
        self._random_state = np.random.RandomState(seed)
        self._needs_reset = True
        self._last_observation = None

        process, parent_conn = dmlab_process.start_child(
            module_name, self._level, self._config, renderer,
            level_cache_dir, num_action_repeats)
        self._process = process
        self._conn = parent_conn
        self._finalizer = weakref.finalize(
            self, dmlab_process.shutdown_child, process, parent_conn)
        self._closed = False

        try:
            status, payload = self._receive()
        except BaseException:
            self.close()
            raise
        if status == "ready":
            return
        self.close()
        if status == "import_error":
            raise DeepMindLabNotInstalledError(
                _not_installed_message(module_name, payload), name=module_name)
        raise dmlab_process.unpack_exception(payload, self._level)

    # -- plumbing ----------------------------------------------------------

    def _child_died(self):
        error = dmlab_process.exit_error(self._process, self._level)
        self.close()
        return error

    def _receive(self):
        reply = dmlab_process.receive(self._process, self._conn)
        if reply is None:
            raise self._child_died()
        return reply

    def _request(self, command, argument=None):
        if self._closed:
            raise RuntimeError("the DeepMind Lab environment is closed")
        if not dmlab_process.send(self._conn, (command, argument)):
            raise self._child_died()
        status, payload = self._receive()
        if status == "ok":
            return payload
        raise dmlab_process.unpack_exception(payload, self._level)

    @staticmethod
    def _make_observation(observed):
        frame, instruction = observed
        return {"frame": frame, "instruction": instruction}

    # -- dm_env API ----------------------------------------------------------

    def reset(self):
        """Starts a new episode with the next seed; returns a FIRST step."""
        episode_seed = int(self._random_state.randint(0, 2**31 - 1))
        observation = self._make_observation(
            self._request("reset", episode_seed))
        self._last_observation = observation
        self._needs_reset = False
        return dm_env.restart(observation)

    def step(self, action):
        """Executes action index ``action`` (0..8) for num_action_repeats
        frames; after a LAST step, starts a new episode instead (dm_env)."""
        if self._needs_reset:
            return self.reset()
        try:
            index = operator.index(action)
        except TypeError:
            index = None
        if index is None or not 0 <= index < len(DEFAULT_ACTION_SET):
            raise ValueError(
                f"action must be an integer in [0, {len(DEFAULT_ACTION_SET)})"
                f", got {action!r}")
        reward, running, observed = self._request("step", index)
        if running:
            observation = self._make_observation(observed)
            self._last_observation = observation
            return dm_env.transition(reward, observation)
        self._needs_reset = True
        return dm_env.termination(reward, self._last_observation)

    def observation_spec(self):
        return {
            "frame": specs.BoundedArray(
                (self._height, self._width, 3), np.uint8, minimum=0,
                maximum=255, name="frame"),
            "instruction": specs.Array((), object, name="instruction"),
        }

    def action_spec(self):
        return specs.DiscreteArray(len(DEFAULT_ACTION_SET), dtype=np.int32,
                                   name="action")

    def close(self):
        """Stops the Lab process (idempotent)."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    # -- extras ----------------------------------------------------------

    @property
    def level_name(self):
        """The level script name given to DeepMind Lab."""
        return self._level

    @property
    def config(self):
        """The Lab config (string values), as sent to the child."""
        return dict(self._config)

    @property
    def num_action_repeats(self):
        return self._num_action_repeats

    @property
    def pid(self):
        """Process id of the child that owns the Lab."""
        return self._process.pid if self._finalizer is not None else None

    @property
    def closed(self):
        return self._closed
