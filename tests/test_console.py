"""Tests of impala_tf.cli.console: which of TensorFlow's lines are dropped,
the filter process (children's lines, exit, nesting), and a real `python -m
impala_tf train` run with and without --show_tf_logs."""

import os
import select
import subprocess
import sys
import textwrap
import threading

import pytest

from impala_tf import testing
from impala_tf.cli import console

# What TensorFlow 2.21 printed on this project's CPU machine (one process).
BANNER = (b"WARNING: All log messages before absl::InitializeLog() is called "
          b"are written to STDERR")
ONEDNN = (b"I0000 00:00:1796404053.824057   24940 port.cc:153] oneDNN custom "
          b"operations are on. You may see slightly different numerical "
          b"results due to floating-point round-off errors from different "
          b"computation orders. To turn them off, set the environment "
          b"variable `TF_ENABLE_ONEDNN_OPTS=0`.")
CUDA = (b"I0000 00:00:1796404053.824385   24940 cudart_stub.cc:31] Could not "
        b"find cuda drivers on your machine, GPU will not be used.")
WARN = b"W0000 00:00:1796404058.1 24940 some.cc:7] a warning"
CUINIT = (b"E0000 00:00:1796404058.162782   24940 cuda_platform.cc:52] failed "
          b"call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: "
          b"UNKNOWN ERROR (303)")
FATAL = b"F0000 00:00:1796404058.2 24940 x.cc:1] a fatal error"
# Python's absl.logging has the same format with a real date: never dropped.
PY_ABSL = b"W1204 17:07:33.123456 140000 experiment.py:12] a Python warning"
NOISE_TEXT = ["All log messages before absl::InitializeLog()",
              "oneDNN custom operations are on",
              "Could not find cuda drivers", "failed call to cuInit"]


def test_environment_default_user_value_and_show():
    env = {}
    assert console.configure_environment(False, env, level="3") == 3
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {"TF_CPP_MIN_LOG_LEVEL": "1"}
    assert console.configure_environment(False, env, level="3") == 1
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "1"}
    assert console.configure_environment(True, env, level="3") == 0
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert console.configure_environment(
        False, {"TF_CPP_MIN_LOG_LEVEL": "x"}) == 0
    assert console.configure_environment(
        False, {"TF_CPP_MIN_LOG_LEVEL": "9"}) == 3


def test_default_level_keeps_errors_where_a_gpu_driver_is(tmp_path):
    assert console.default_level(str(tmp_path / "none")) == "3"
    (tmp_path / "nvidiactl").write_text("")
    assert console.default_level(str(tmp_path / "nvidiactl")) == "2"


@pytest.mark.parametrize("level,dropped", [
    (0, []),
    (1, [BANNER, ONEDNN, CUDA]),
    (2, [BANNER, ONEDNN, CUDA, WARN]),
    (3, [BANNER, ONEDNN, CUDA, WARN, CUINIT]),
])
def test_line_filter_applies_the_level(level, dropped):
    lines = [BANNER, ONEDNN, b"plain text", CUDA, WARN, PY_ABSL, CUINIT,
             FATAL, b"  File \"x.py\", line 3", b""]
    out = console.LineFilter(level).feed(b"\n".join(lines) + b"\n")
    assert out == b"".join(l + b"\n" for l in lines if l not in dropped)


def test_line_filter_holds_a_partial_line():
    line_filter = console.LineFilter(3)
    assert line_filter.feed(b"one\n" + ONEDNN[:30]) == b"one\n"
    assert line_filter.pending
    assert line_filter.feed(ONEDNN[30:] + b"\r\nprompt> ") == b""
    assert line_filter.flush() == b"prompt> "
    assert not line_filter.pending and line_filter.flush() == b""
    line_filter.feed(CUDA)
    assert line_filter.flush() == b""  # A dropped line without its end.


def test_line_filter_takes_the_marker_out_and_hands_over_before_it():
    line_filter = console.LineFilter(3, marker=b"\0mark\0")
    assert line_filter.feed(b"a\n" + CUDA + b"\nhalf") == b"a\n"
    assert line_filter.feed(b" line\0ma") == b""
    assert not line_filter.marker_seen
    assert line_filter.feed(b"rk\0after\n" + ONEDNN + b"\n") == (
        b"half lineafter\n")
    assert line_filter.marker_seen


def _read_until(fd, expected, timeout_s=10):
    got = b""
    while not got.endswith(expected):
        ready, _, _ = select.select([fd], [], [], timeout_s)
        assert ready, f"only {got!r} within {timeout_s} s"
        chunk = os.read(fd, 4096)
        assert chunk, f"end of file after {got!r}"
        got += chunk
    return got


def test_pump_passes_a_partial_line_on_when_output_pauses():
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    pumping = threading.Thread(
        target=console.pump,
        args=(in_read, out_write, console.LineFilter(3), 0.01))
    pumping.start()
    try:
        os.write(in_write, ONEDNN + b"\nkeep\n" + b"Continue? ")
        assert _read_until(out_read, b"Continue? ") == b"keep\nContinue? "
        os.write(in_write, b"yes\n" + CUDA)
    finally:
        os.close(in_write)
        pumping.join(10)
    assert not pumping.is_alive()
    os.close(out_write)
    with os.fdopen(out_read, "rb") as rest:
        assert rest.read() == b"yes\n"
    os.close(in_read)


_FILTERED_PROGRAM = textwrap.dedent("""\
    import os, subprocess, sys
    from impala_tf.cli import console
    running = console.quiet_tensorflow(show=sys.argv[1] == "show")
    print("filter" if running else "no filter", flush=True)
    os.write(2, sys.argv[2].encode() + b"\\nparent line\\n")
    child = ("import os, sys\\n"
             "from impala_tf.cli import console\\n"
             "if os.environ['TF_CPP_MIN_LOG_LEVEL'] != '0':\\n"
             "    assert console.start_filter(3) is None, 'second filter'\\n"
             "os.write(2, sys.argv[1].encode() + b'\\\\nchild line\\\\n')\\n")
    subprocess.run([sys.executable, "-c", child, sys.argv[2]], check=True)
    # A child that holds standard error open until told to end.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read(); "
         "sys.stderr.write('holder done\\\\n')"], stdin=subprocess.PIPE)
    sys.stderr.write("last line")
    if running:
        print("drained" if running.close() else "not drained", flush=True)
    sys.stderr.write(" after close\\n")
    sys.stderr.flush()
    holder.stdin.close()
    holder.wait()
    sys.exit(3)
    """)


@pytest.mark.parametrize("show", [False, True])
def test_filter_process_covers_children_and_keeps_the_exit_status(show):
    noise = (BANNER + b"\n" + ONEDNN + b"\n" + CUINIT).decode()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", console.FILTER_VAR)}
    result = subprocess.run(
        [sys.executable, "-c", _FILTERED_PROGRAM,
         "show" if show else "quiet", noise],
        cwd=testing.REPO, env=env, capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    if show:
        assert result.stdout == "no filter\n"
        assert result.stderr == (f"{noise}\nparent line\n{noise}\n"
                                 "child line\nlast line after close\n"
                                 "holder done\n")
    else:
        # Drained while the holder still wrote through the filter.
        assert result.stdout == "filter\ndrained\n"
        assert result.stderr == ("parent line\nchild line\nlast line"
                                 " after close\nholder done\n")


@pytest.mark.slow
def test_training_run_is_quiet_unless_asked(tmp_path, monkeypatch):
    """A real `python -m impala_tf train` (a learner and one actor process,
    each importing TensorFlow) shows none of the start-up lines; its export
    with --show_tf_logs does."""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv(console.FILTER_VAR, raising=False)
    flags = [f for f in testing.TINY_FLAGS if not f.startswith(
        ("--num_actors", "--batch_size", "--unroll_length"))]
    flags += ["--num_actors=1", "--batch_size=2", "--unroll_length=5",
              "--total_environment_frames=100"]
    quiet = testing.run_impala(
        ["train"] + flags + [f"--logdir={tmp_path / 'quiet'}"],
        module="impala_tf", isolate=False, timeout=120)
    output = quiet.stdout + quiet.stderr
    assert quiet.returncode == 0, output[-3000:]
    assert "saved" in quiet.stdout
    for text in NOISE_TEXT:
        assert text not in output
    # One process importing TensorFlow is enough here: the run's export.
    shown = testing.run_impala(
        ["export", "--show_tf_logs", f"--logdir={tmp_path / 'quiet'}",
         f"--export_dir={tmp_path / 'exported'}"] + flags,
        module="impala_tf", isolate=False, timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "SavedModel written" in shown.stdout
    assert any(text in shown.stderr for text in NOISE_TEXT), shown.stderr
