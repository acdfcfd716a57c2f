"""Environments that fail on purpose, for tests/test_reliability.py.

Usable as `--level_name=tests.faulty_envs:<function>` from the repository
root. Faults that must happen once per run, whichever actor process gets
there first, are claimed through files in the directory named by the
environment variable `FAULT_DIR_VAR` (inherited by actor processes); with the
variable unset those environments never fail.

Also here: stand-in actor entry points for `supervisor.ActorSupervisor`
tests (same signature as `supervisor.actor_process_main`, no TensorFlow).
"""

import math
import os
import time

from impala_tf.runtime import watchdog
from impala_tf.envs import toy

FAULT_DIR_VAR = "IMPALA_TEST_FAULT_DIR"
FAULT_STEP = 25


def claim(token):
    """True for the first process in this run to claim `token`."""
    directory = os.environ.get(FAULT_DIR_VAR)
    if not directory:
        return False
    try:
        fd = os.open(os.path.join(directory, token),
                     os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


class FlakyColourChoice(toy.ColourChoice):
    """Colour choice whose FAULT_STEP-th step, once per run each, raises,
    then hangs (sleeps for an hour), then returns a NaN reward."""

    def __init__(self, seed=0):
        super().__init__(seed=seed)
        self._steps = 0

    def step(self, action):
        self._steps += 1
        ts = super().step(action)
        if self._steps == FAULT_STEP:
            if claim("crash"):
                raise RuntimeError("deliberate failure for the test")
            if claim("hang"):
                time.sleep(3600)
            if claim("nan"):
                ts = ts._replace(reward=math.nan)
        return ts


def flaky_env(seed=0):
    return FlakyColourChoice(seed=seed)


class _StepFails(toy.ColourChoice):
    """Raises KeyError('boom') in every step and OSError in close."""

    def step(self, action):
        raise KeyError("boom")

    def close(self):
        raise OSError("also broken")


def step_fails(seed=0):
    return _StepFails(seed=seed)


def broken_env(seed=0):
    raise RuntimeError(f"no such device (seed {seed})")


def three_actions(seed=0):
    return toy.ColourChoice(seed=seed, num_actions=3)


# Stand-in actor processes: (config, task, address, stop_event, parent_pid,
# heartbeat). `config.behaviour` says what they do.

def fake_actor_main(config, task, address, stop_event, parent_pid,
                    heartbeat=None):
    del address, parent_pid
    behaviour = config.behaviour
    if behaviour == "crash":
        os._exit(1)
    if behaviour == "env_error":
        os._exit(3)
    if behaviour == "hang" and heartbeat is not None:
        watchdog.begin(heartbeat, 0, "step")
        time.sleep(3600)
    if heartbeat is not None:
        watchdog.mark_running(heartbeat)
    while not stop_event.is_set():  # "run": a healthy actor.
        time.sleep(0.05)
    del task


class FakeActorConfig:
    def __init__(self, behaviour, level_set):
        self.behaviour = behaviour
        self.level_set = level_set
