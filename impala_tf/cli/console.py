"""A quiet console: TensorFlow's C++ start-up lines hidden from `impala-tf`.

TensorFlow 2.21 prints these lines in every process that imports it:

    WARNING: All log messages before absl::InitializeLog() is called ...
    I0000 00:00:1796404053.824057 24940 port.cc:153] oneDNN custom ...
    I0000 00:00:1796404053.824385 24940 cudart_stub.cc:31] Could not find ...
    I0000 00:00:1796404053.903850 24940 cpu_feature_guard.cc:227] This ...
    E0000 00:00:1796404058.162782 24940 cuda_platform.cc:52] failed call ...

TF_CPP_MIN_LOG_LEVEL hides the last two but not the first three: TensorFlow
logs them while its libraries load, before it applies the level, and no
environment variable silences them (TF_ENABLE_ONEDNN_OPTS=0 drops the
oneDNN notice only by turning oneDNN off). So `quiet_tensorflow`:

  * sets TF_CPP_MIN_LOG_LEVEL, unless the user did: 3 (errors hidden too:
    without a GPU driver the cuInit line is an error) or 2 where a GPU
    driver exists (/dev/nvidiactl), so GPU errors stay visible;
  * passes standard error through a filter process that applies that level
    to the lines TensorFlow writes before it reads it: C++ log records
    (absl's format with the zero date `I0000 00:00:`, which TensorFlow's
    lines always have and Python's absl.logging lines never do) below the
    level, and absl's "All log messages before absl::InitializeLog()"
    warning. Every process the program starts (multiprocessing spawn,
    subprocess) inherits both, so its actors are quiet too.

Everything else on standard error (Python's output, warnings, tracebacks,
TensorFlow's records at or above the level) goes through unchanged, line by
line; a partial line goes through after 50 ms without more output.
Standard output is not touched. At a normal exit the program waits until
the filter has passed on what it wrote; a process ending with os._exit
does not wait, so its last lines can follow the shell's prompt by moments.

`show=True` (`impala-tf --show_tf_logs ...`) sets TF_CPP_MIN_LOG_LEVEL=0 and
starts no filter: every line shows. A user who sets TF_CPP_MIN_LOG_LEVEL
keeps that level (0: no filter).
"""

import atexit
import os
import re
import select
import signal
import sys

LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
# Marks a standard error that already goes through a filter ("dev:inode" of
# its pipe), so a program started by another one starts no second filter.
FILTER_VAR = "IMPALA_TF_STDERR_FILTER"

# absl's C++ log prefix with the zero date of a process that never called
# absl::InitializeLog() (TensorFlow's): severity letter, "0000 00:00:",
# seconds since the epoch, thread id, file:line].
_CPP_RECORD = re.compile(rb"^([IWEF])0000 00:00:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_ABSL_BANNER = (b"WARNING: All log messages before absl::InitializeLog() is "
                b"called are written to STDERR")
# How long a partial line waits for its end before it goes through.
PARTIAL_LINE_S = 0.05
# How long the program waits at exit for the filter to pass on what it
# wrote (the filter itself ends once no process writes to it).
DRAIN_S = 2.0


def default_level(gpu_driver_path="/dev/nvidiactl"):
    """The TF_CPP_MIN_LOG_LEVEL used when the user set none: "2" (hide INFO
    and WARNING) where a GPU driver exists, else "3" (ERROR too)."""
    return "2" if os.path.exists(gpu_driver_path) else "3"


def configure_environment(show, environ=None, level=None):
    """Sets TF_CPP_MIN_LOG_LEVEL in `environ` (default os.environ) before
    TensorFlow is imported; returns the level the filter should apply (an
    int, 0: no filter).

    Args:
      show: the user asked for every line: the level is 0, whatever was set.
      environ: the environment to change.
      level: the default level (default: `default_level()`); a value the
        user set in `environ` wins over it.
    """
    environ = os.environ if environ is None else environ
    if show:
        environ[LEVEL_VAR] = "0"
        return 0
    value = environ.setdefault(LEVEL_VAR, level or default_level())
    try:
        return max(0, min(3, int(value)))
    except ValueError:  # TensorFlow reads a malformed value as 0.
        return 0


class LineFilter:
    """Drops TensorFlow's C++ start-up lines from a byte stream.

    `feed` takes what was read and returns what to write now (whole lines);
    a line without its end is held until more comes (`pending`) or `flush`
    hands it over. A record's second line, if it has one, goes through
    (none of the start-up records has one).

    `marker` (bytes, optional) is taken out of the stream wherever it is;
    `marker_seen` says when, and everything before it, a partial line
    too, has been handed over by then.
    """

    def __init__(self, min_level, marker=None):
        """`min_level`: TensorFlow's TF_CPP_MIN_LOG_LEVEL (0-3): records of
        a lower severity (INFO 0, WARNING 1, ERROR 2) are dropped."""
        self._min_level = min_level
        self._marker = marker
        self._partial = b""
        self.marker_seen = False

    def is_noise(self, line):
        """Whether one line (bytes, without its end) is to be dropped."""
        if self._min_level <= 0:
            return False
        if line.rstrip(b"\r") == _ABSL_BANNER:
            return True
        match = _CPP_RECORD.match(line)
        return bool(match) and _SEVERITY[match.group(1)] < self._min_level

    def feed(self, data):
        """Returns the bytes of `data` (after any held partial line) to pass
        on: its complete lines, less the dropped ones."""
        data, self._partial = self._partial + data, b""
        if self._marker and self._marker in data:
            before, after = data.split(self._marker, 1)
            self.marker_seen = True
            return self._lines(before) + self.flush() + self._lines(after)
        return self._lines(data)

    def _lines(self, data):
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return b"".join(line + b"\n" for line in lines
                        if not self.is_noise(line))

    @property
    def pending(self):
        """True while a partial line is held."""
        return bool(self._partial)

    def flush(self):
        """Returns the held partial line (unless it is a dropped line) and
        forgets it."""
        partial, self._partial = self._partial, b""
        return b"" if self.is_noise(partial) else partial


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def pump(read_fd, write_fd, line_filter, partial_line_s=PARTIAL_LINE_S,
         on_marker=None):
    """Copies `read_fd` to `write_fd` through `line_filter` until end of
    file; returns then, or raises OSError if `write_fd` fails. Calls
    `on_marker()` once, after writing what came before the filter's
    marker."""
    while True:
        if on_marker is not None and line_filter.marker_seen:
            on_marker()
            on_marker = None
        timeout = partial_line_s if line_filter.pending else None
        ready, _, _ = select.select([read_fd], [], [], timeout)
        if not ready:
            _write_all(write_fd, line_filter.flush())
            continue
        data = os.read(read_fd, 65536)
        if not data:
            _write_all(write_fd, line_filter.flush())
            return
        _write_all(write_fd, line_filter.feed(data))


def _already_filtered(environ):
    try:
        st = os.fstat(2)
    except OSError:
        return True  # No standard error: nothing to filter.
    return environ.get(FILTER_VAR) == f"{st.st_dev}:{st.st_ino}"


def _run_filter(read_fd, done_fd, min_level, marker):
    """The filter process: never returns. Closes `done_fd` once `marker`
    has come through (what came before it is out), ends at end of file."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                    signal.SIGQUIT):
            # Ctrl-C and a group's SIGTERM stop the program, whose last
            # lines still come through; the filter ends when they are out.
            signal.signal(sig, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # Holds no one's stdout open.
        keep = sorted({read_fd, done_fd})
        for low, high in zip([2] + keep, keep + [os.sysconf("SC_OPEN_MAX")]):
            os.closerange(low + 1, high)  # Fds between the kept ones.
        pump(read_fd, 2, LineFilter(min_level, marker),
             on_marker=lambda: os.close(done_fd))
    except BaseException:  # pylint: disable=broad-except
        pass
    finally:
        os._exit(0)  # pylint: disable=protected-access


class StderrFilter:
    """A running filter: this process's (and its children's) fd 2 is the
    write end of a pipe a forked process reads, filters and copies to the
    original standard error. The filter ends when no process writes to the
    pipe any more."""

    def __init__(self, pid, original_fd, done_fd, marker):
        self.pid = pid
        self._original_fd = original_fd
        self._done_fd = done_fd
        self._marker = marker

    def close(self, timeout_s=DRAIN_S):
        """Points this process's fd 2 back at the original standard error,
        once the filter has passed on everything written before (waiting at
        most `timeout_s`); returns whether it had. Children still running
        keep writing through the filter."""
        if self._original_fd is None:
            return True
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            _write_all(2, self._marker)
            drained, _, _ = select.select([self._done_fd], [], [], timeout_s)
        except OSError:  # The filter is gone.
            drained = []
        os.dup2(self._original_fd, 2)
        os.close(self._original_fd)
        os.close(self._done_fd)
        self._original_fd = None
        try:
            os.waitpid(self.pid, os.WNOHANG)  # Reaped here if it ended.
        except ChildProcessError:
            pass
        return bool(drained)


def start_filter(min_level, environ=None):
    """Starts the filter of this process's standard error (see module doc);
    returns a StderrFilter, closed at exit, or None where there is nothing
    to do: level 0, no fork, no standard error, or one already filtered.

    Call it before TensorFlow is imported and before any thread starts (it
    forks)."""
    environ = os.environ if environ is None else environ
    if min_level <= 0 or not hasattr(os, "fork") or _already_filtered(
            environ):
        return None
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    read_fd, write_fd = os.pipe()
    done_read, done_write = os.pipe()
    # Written by `close`: in the stream after everything this process wrote.
    marker = b"\0impala-tf-console-" + os.urandom(8).hex().encode() + b"\0"
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        os.close(done_read)
        _run_filter(read_fd, done_write, min_level, marker)
    os.close(read_fd)
    os.close(done_write)
    original = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    st = os.fstat(2)
    environ[FILTER_VAR] = f"{st.st_dev}:{st.st_ino}"
    running = StderrFilter(pid, original, done_read, marker)
    atexit.register(running.close)
    return running


def quiet_tensorflow(show, environ=None):
    """`configure_environment`, then `start_filter` at that level; returns
    the StderrFilter or None."""
    environ = os.environ if environ is None else environ
    return start_filter(configure_environment(show, environ), environ)
