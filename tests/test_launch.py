"""Tests for impala_tf/cli/launch.py: help and bad input start nothing, and
the launcher's handling of its processes (stand-in processes, no
TensorFlow). The launches of real learners and actors are in
test_distributed.py."""

import os
import sys
import textwrap

import pytest

from impala_tf import testing
from impala_tf.cli import launch

LISTEN = "--listen_on_all_interfaces"


@pytest.mark.parametrize("asked", ["--help", "--helpshort", "--helpfull",
                                   "-h", "-?", "-helpfull"])
def test_help_prints_help_and_starts_nothing(asked):
    # With consent and actors asked for: were anything started, the
    # launcher would wait for its learner and the command time out.
    result = testing.run_impala(
        [LISTEN, "--num_actor_processes=2", asked], timeout=120,
        module="impala_tf.cli.launch", isolate=testing.can_isolate())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: impala-tf launch")
    assert "--num_actor_processes" in result.stdout
    assert "[launch]" not in result.stdout + result.stderr
    full = "helpfull" in asked
    assert ("--level_name" in result.stdout) == full
    assert ("--total_environment_frames" in result.stdout) == full


def test_help_asked():
    assert launch._help_asked(["--num_learners=2"]) is None
    assert launch._help_asked(["--helpfull=false", "--nohelp"]) is None
    assert launch._help_asked(["--", "--help"]) is None
    assert launch._help_asked(["--help=true"]) == "short"
    assert launch._help_asked(["--help", "--helpfull"]) == "full"


@pytest.mark.parametrize("argv,sentence", [
    (["--task=2", LISTEN], "error: --task is set by the launcher"),
    (["--num_learners=0", LISTEN],
     "error: --num_actor_processes >= 0 and --num_learners >= 1"),
    (["--learner_address=node7", LISTEN, "--dry_run"],
     "error: --learner_address must be HOST:PORT with a fixed port"),
    (["stray", LISTEN], "error: unexpected argument 'stray'"),
    (["--num_learners=x", LISTEN],
     "error: argument --num_learners: invalid int value: 'x'"),
])
def test_bad_input_is_one_sentence_and_status_2(argv, sentence, capsys):
    with pytest.raises(SystemExit) as exit_info:
        launch.main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == sentence + "\n"
    assert "[launch]" not in captured.out


# An actor that fails at its first start (exit 1) and, restarted, writes
# its pid to a file, ignores SIGTERM and waits. A learner that exits with
# status 3 once that file exists.
ACTOR = textwrap.dedent("""
    import os, signal, sys
    started = sys.argv[1] + ".started"
    if not os.path.exists(started):
        open(started, "w").close()
        sys.exit(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    signal.pause()
""")
LEARNER = textwrap.dedent("""
    import os, sys, time
    deadline = time.monotonic() + 120
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(3 if os.path.exists(sys.argv[1]) else 4)
""")


def test_launcher_restarts_a_failed_actor_and_kills_one_that_lingers(
        tmp_path):
    ready = str(tmp_path / "actor_ready")
    lines = []
    launcher = launch.Launcher(
        [[sys.executable, "-c", LEARNER, ready]],
        [[sys.executable, "-c", ACTOR, ready]], log=lines.append,
        restart_delay_s=0.0, actor_grace_s=0.2, stop_timeout_s=0.2)
    assert launcher.run() == 3, lines
    assert lines == ["[launch] actor 0 exited with status 1; restarting it",
                     "[launch] a learner failed; stopping the others",
                     "[launch] SIGTERM: asking the learners to stop",
                     "[launch] actors [0] still running 0.2s after the "
                     "learner; stopping them"]
    with open(ready) as f:
        pid = int(f.read())
    actor = launcher._actors[0]
    assert actor.pid == pid and actor.returncode == -9  # SIGTERM ignored.
    assert testing.proc_stat(pid) is None


def test_a_failed_learner_stops_the_others(tmp_path):
    stopped = str(tmp_path / "stopped")
    # A learner that exits 0 on SIGTERM (after noting it), and one that
    # fails at once.
    patient = textwrap.dedent(f"""
        import signal, sys
        def stop(*_):
            open({stopped!r}, "w").close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        signal.pause()
    """)
    lines = []
    launcher = launch.Launcher(
        [[sys.executable, "-c", patient],
         [sys.executable, "-c", "raise SystemExit(5)"]], [],
        log=lines.append, restart_delay_s=0.0)
    assert launcher.run() == 5
    assert lines[0] == "[launch] a learner failed; stopping the others"
    assert os.path.exists(stopped)
