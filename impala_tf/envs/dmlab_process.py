"""The process machinery behind :class:`impala_tf.envs.dmlab.DmLabEnvironment`.

DeepMind Lab keeps one global game engine per process, so each environment
runs its ``deepmind_lab.Lab`` in a child process started here (multiprocessing,
*spawn* context) and talks to it over a duplex Pipe. This module holds both
ends of that conversation except the dm_env object itself:

* :func:`start_child` starts the child without re-importing the parent's
  ``__main__`` module (which spawn would otherwise do; a training script's
  TensorFlow import would then be repeated in every environment process) and
  returns the process and the parent's end of the Pipe.
* The child (``_child_main``) ignores SIGINT (the parent shuts it down),
  imports the Lab module, builds the Lab (with a
  :class:`~impala_tf.envs.dmlab_common.LevelCache` when given a cache
  directory),
  checks its action_spec, answers ``('ready', pid)`` and then serves
  ``('reset', seed)``, ``('step', action_index)`` and ``('close', None)``.
  It exits on ``close``, when the Pipe reaches EOF, or when the parent
  process disappears (it polls its parent id).
* Replies are ``('ok', result)``, ``('error', packed_exception)`` or, if the
  Lab module cannot be imported, ``('import_error', message)``. Exceptions
  travel pickled when they can be (:func:`unpack_exception` re-raises them
  in the parent with the child's traceback as a note), otherwise as
  ``RuntimeError('<type>: <message>')``.
* :func:`shutdown_child` asks the child to exit, then terminates and kills it
  if it does not.

The observations the child asks for, the action_spec it expects, the action
set and ``LevelCache`` live in :mod:`impala_tf.envs.dmlab_common` (shared
with :mod:`impala_tf.envs.dmlab`, which re-exports them); this module never
imports :mod:`impala_tf.envs.dmlab`.
"""

import contextlib
import importlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
import types

import numpy as np

from impala_tf.envs import dmlab_common

# How often the child checks that its parent is still alive, and how often the
# parent checks that the child is, while waiting (seconds); how long shutdown
# waits for the child to exit on its own.
_CHILD_POLL_S = 0.5
_PARENT_POLL_S = 0.5
_CLOSE_TIMEOUT_S = 10.0


def send(conn, message):
    """Sends ``message`` over ``conn``; False if the other end is gone."""
    try:
        conn.send(message)
        return True
    except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
        return False


# ---------------------------------------------------------------------------
# Exceptions across the Pipe.


def _pack_exception(e):
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    try:
        payload = pickle.dumps(e)
        pickle.loads(payload)
    except Exception:  # pylint: disable=broad-except
        payload = None
    return (payload, type(e).__name__, str(e), tb)


def unpack_exception(packed, level):
    """The exception packed by the child, noted with the child's traceback."""
    payload, type_name, message, tb = packed
    error = None
    if payload is not None:
        with contextlib.suppress(Exception):
            error = pickle.loads(payload)
    if not isinstance(error, BaseException):
        error = RuntimeError(f"{type_name}: {message}")
    error.add_note(f"Raised in the DeepMind Lab process for level {level!r}:"
                   f"\n{tb}")
    return error


# ---------------------------------------------------------------------------
# The child process.


def _observe(lab):
    observations = lab.observations()
    frame = np.asarray(observations["RGB_INTERLEAVED"], dtype=np.uint8)
    instruction = observations.get("INSTR", "")
    if isinstance(instruction, bytes):
        instruction = instruction.decode("utf-8", errors="replace")
    return frame, str(instruction)


def _child_main(conn, parent_pid, module_name, level, config, renderer,
                level_cache_dir, num_action_repeats):
    """Owns one Lab; serves ('reset', seed), ('step', index), ('close', _)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        send(conn, ("import_error", f"{type(e).__name__}: {e}"))
        conn.close()
        return

    lab = None
    try:
        level_cache = (dmlab_common.LevelCache(level_cache_dir)
                       if level_cache_dir else None)
        lab = module.Lab(level, list(dmlab_common.OBSERVATION_NAMES),
                         config=config, renderer=renderer,
                         level_cache=level_cache)
        spec_names = tuple(a["name"] for a in lab.action_spec())
        if spec_names != dmlab_common.LAB_ACTION_NAMES:
            raise ValueError(
                f"unexpected DeepMind Lab action_spec {spec_names}; expected "
                f"{dmlab_common.LAB_ACTION_NAMES}")
        actions = [np.array(a, dtype=np.intc)
                   for a in dmlab_common.DEFAULT_ACTION_SET]
    except BaseException as e:  # pylint: disable=broad-except
        send(conn, ("error", _pack_exception(e)))
        if lab is not None:
            with contextlib.suppress(Exception):
                lab.close()
        conn.close()
        return

    if not send(conn, ("ready", os.getpid())):
        lab.close()
        return
    try:
        while True:
            if not conn.poll(_CHILD_POLL_S):
                if os.getppid() != parent_pid:
                    break  # The parent died; we were re-parented.
                continue
            try:
                command, argument = conn.recv()
            except (EOFError, OSError):
                break  # The parent closed its end (or died).
            if command == "close":
                break
            try:
                if command == "reset":
                    lab.reset(seed=argument)
                    result = _observe(lab)
                elif command == "step":
                    reward = lab.step(actions[argument],
                                      num_steps=num_action_repeats)
                    running = bool(lab.is_running())
                    result = (float(reward), running,
                              _observe(lab) if running else None)
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as e:  # pylint: disable=broad-except
                if not send(conn, ("error", _pack_exception(e))):
                    break
                continue
            if not send(conn, ("ok", result)):
                break
    finally:
        with contextlib.suppress(Exception):
            lab.close()
        with contextlib.suppress(Exception):
            conn.close()


# ---------------------------------------------------------------------------
# The parent side: starting, waiting for and stopping the child.


# Serialises the short window in which __main__ is swapped (see below).
_START_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_main_module():
    """Hides ``__main__`` from spawn, so the child does not re-import it."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
        else:
            del sys.modules["__main__"]


def start_child(module_name, level, config, renderer, level_cache_dir,
                num_action_repeats):
    """Starts the Lab process; returns ``(process, parent_conn)``.

    The process is daemonic, so it is also stopped at interpreter exit. Does
    not wait for the child's first reply (``'ready'`` or an error).

    Raises:
      RuntimeError: called in a daemonic process, which may have no children.
    """
    if multiprocessing.current_process().daemon:
        raise RuntimeError(
            "DmLabEnvironment starts a child process, which a daemonic "
            "process may not do; create it in a non-daemonic process or "
            "a thread.")
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=True)
    process = ctx.Process(
        target=_child_main,
        args=(child_conn, os.getpid(), module_name, level, dict(config),
              renderer,
              os.fspath(level_cache_dir) if level_cache_dir else None,
              num_action_repeats),
        name=f"dmlab:{level}",
        daemon=True)
    with _START_LOCK, _without_main_module():
        process.start()
    child_conn.close()
    return process, parent_conn


def receive(process, conn):
    """The child's next reply; None if the child exited without sending one
    (or the Pipe broke)."""
    while not conn.poll(_PARENT_POLL_S):
        if not process.is_alive():
            if conn.poll(0):
                break
            return None
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def exit_error(process, level):
    """The RuntimeError for a child that exited unexpectedly (joins it)."""
    process.join(1.0)
    return RuntimeError(
        f"the DeepMind Lab process for level {level!r} exited "
        f"unexpectedly (exit code {process.exitcode})")


def shutdown_child(process, conn, timeout=_CLOSE_TIMEOUT_S):
    """Asks the child to exit, then terminates and kills it if it does not."""
    with contextlib.suppress(Exception):
        conn.send(("close", None))
    with contextlib.suppress(Exception):
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join(2.0)
    with contextlib.suppress(Exception):
        conn.close()
