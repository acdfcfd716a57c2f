"""What a DeepMind Lab environment's two processes share.

`dmlab.DmLabEnvironment` (the parent) and `dmlab_process` (the child that
owns the Lab) both need these; keeping them here lets neither import the
other's module in a cycle: the observation and action names asked of the
Lab, the paper's action set, and the on-disk level cache.
"""

import contextlib
import os
import shutil
import tempfile

OBSERVATION_NAMES = ("RGB_INTERLEAVED", "INSTR")

# The 7 DeepMind Lab action dimensions, in action_spec() order.
LAB_ACTION_NAMES = (
    "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME",
    "LOOK_DOWN_UP_PIXELS_PER_FRAME",
    "STRAFE_LEFT_RIGHT",
    "MOVE_BACK_FORWARD",
    "FIRE",
    "JUMP",
    "CROUCH",
)

# The paper's Table D.2 (the release's DEFAULT_ACTION_SET).
ACTION_NAMES = (
    "forward", "backward", "strafe_left", "strafe_right", "look_left",
    "look_right", "forward_look_left", "forward_look_right", "fire")
DEFAULT_ACTION_SET = (
    (0, 0, 0, 1, 0, 0, 0),     # Forward
    (0, 0, 0, -1, 0, 0, 0),    # Backward
    (0, 0, -1, 0, 0, 0, 0),    # Strafe Left
    (0, 0, 1, 0, 0, 0, 0),     # Strafe Right
    (-20, 0, 0, 0, 0, 0, 0),   # Look Left
    (20, 0, 0, 0, 0, 0, 0),    # Look Right
    (-20, 0, 0, 1, 0, 0, 0),   # Forward + Look Left
    (20, 0, 0, 1, 0, 0, 0),    # Forward + Look Right
    (0, 0, 0, 0, 1, 0, 0),     # Fire
)


class LevelCache:
    """On-disk DeepMind Lab level cache: compiled maps (.pk3) by key.

    Implements the ``level_cache`` protocol of ``deepmind_lab.Lab``:
    ``fetch(key, pk3_path) -> bool`` copies a cached map to ``pk3_path``;
    ``write(key, pk3_path)`` stores a freshly compiled one. Writes go through a
    temporary file and a rename, so several processes can share a directory.
    """

    def __init__(self, cache_dir):
        self._cache_dir = os.fspath(cache_dir)
        os.makedirs(self._cache_dir, exist_ok=True)

    @property
    def cache_dir(self):
        return self._cache_dir

    def _path(self, key):
        key = str(key)
        if not key or key in (".", "..") or "/" in key or "\\" in key:
            raise ValueError(f"invalid level cache key {key!r}")
        return os.path.join(self._cache_dir, key)

    def fetch(self, key, pk3_path):
        path = self._path(key)
        try:
            shutil.copyfile(path, pk3_path)
        except FileNotFoundError:
            return False
        return True

    def write(self, key, pk3_path):
        path = self._path(key)
        if os.path.exists(path):
            return
        fd, tmp = tempfile.mkstemp(dir=self._cache_dir, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(pk3_path, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
