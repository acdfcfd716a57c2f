"""Distributed IMPALA: remote actors, synchronous learners, the launcher.

The process tests start real learners and actors (`python -m
impala_tf.cli.experiment --job_name=...`, `python -m impala_tf.cli.launch`) inside a
private network namespace (`unshare -n`, loopback only), because TF's gRPC
servers listen on every interface. Each scenario is a bash script run in its
own namespace and process group, bounded in time, and killed with
everything it started when it ends.
"""

import os
import textwrap

import numpy as np
import pytest

from impala_tf.runtime import progress
from impala_tf import testing
from tests import procs

TOY = testing.TOY_LEVEL
SMALL = ["--level_name=" + TOY, "--use_lstm=false", "--batch_size=4",
         "--unroll_length=10", "--learning_rate=0.002", "--log_interval_s=1"]


def _isolated_script(script, timeout, cwd=testing.REPO):
    """Runs a bash script in a fresh network namespace; (rc, output)."""
    return testing.run_isolated_script(textwrap.dedent(script), timeout, cwd)


# Bash helpers: `wait_for SECONDS 'CONDITION'` evaluates CONDITION (a
# string, re-evaluated each time) until it holds; `lines FILE` counts lines.
WAIT_FOR = """
lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until eval "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "TIMEOUT waiting for: $*"; \
return 1; fi
    sleep 0.5
  done
}
"""


def _records(logdir):
    return progress.read_records(logdir, strict=True)


# --------------------------------------------------------------------------
# Units (no servers).

def test_parse_hosts_and_actor_assignment():
    from impala_tf.runtime import distributed
    assert distributed.parse_hosts(" a:1, b:2 ") == ["a:1", "b:2"]
    assert distributed.parse_hosts("") == []
    for bad in ("a", "a:0", "a:x", "a:1,a:1", ":5"):
        with pytest.raises(ValueError):
            distributed.parse_hosts(bad)
    hosts = ["a:1", "b:2", "c:3"]
    assert distributed.learner_for_actor(4, None, hosts) == (
        "b:2", 1, "worker")
    assert distributed.learner_for_actor(4, "x:9", []) == (
        "x:9", 0, "learner")
    assert distributed.learner_for_actor(4, None, ["y:7"]) == (
        "y:7", 0, "learner")


def test_actor_counter_counts_joins_and_departures():
    from impala_tf.runtime import distributed
    counts = np.zeros(8, np.int64)
    lines = []
    now = [100.0]  # The counter's clock, in seconds.
    counter = distributed.ActorCounter(lambda: counts.copy(), timeout_s=0.2,
                                       log=lines.append, clock=lambda: now[0])
    counter.poll()
    assert counter.stats() == {"actors_connected": 0, "actors_seen": 0}
    counts[[1, 5]] = 1
    counter.poll()
    assert counter.stats() == {"actors_connected": 2, "actors_seen": 2}
    now[0] += 0.3  # Past timeout_s.
    counts[1] += 1  # Actor 1 still pulls; actor 5 went silent.
    counter.poll()
    assert counter.stats() == {"actors_connected": 1, "actors_seen": 2}
    assert any("actor 5 sent nothing" in line for line in lines), lines


def test_launcher_plans_roles_and_rejects_role_flags(capsys):
    from impala_tf.cli import launch
    listen = "--listen_on_all_interfaces"
    args, flags = launch.parse_args(
        ["--num_actor_processes=3", "--num_learners=2", listen,
         "--learner_address=node7:4000", "--level_name=atari/pong"])
    learners, actors, remote = launch.plan(args, flags, python="py")
    assert len(learners) == 2 and len(actors) == 3
    hosts = learners[0][learners[0].index("--task=0") + 1]
    assert hosts.startswith("--learner_hosts=node7:4000,node7:")
    assert learners[1][3:6] == ["--job_name=learner", "--task=1", hosts]
    assert actors[2][3:6] == ["--job_name=actor", "--task=2", hosts]
    assert all(c[-1] == "--level_name=atari/pong" for c in learners + actors)
    assert "--job_name=actor" in remote and hosts in remote
    # Only the learners listen: the consent goes to them alone.
    assert all(listen in c for c in learners)
    assert not any(listen in c for c in actors + [remote])
    assert launch.main(["--num_actor_processes=1", "--dry_run", listen,
                        "--learner_address=node7:4000"]) == 0
    out = capsys.readouterr().out
    assert "--learner_address=node7:4000" in out
    assert "on other machines" in out
    with pytest.raises(SystemExit):
        launch.parse_args(["--task=2", listen])


@pytest.mark.parametrize("flags", [
    [], ["--nolisten_on_all_interfaces"],
    ["--listen_on_all_interfaces", "--listen_on_all_interfaces=false"]])
def test_launcher_refuses_to_listen_without_the_flag(flags, capsys):
    from impala_tf.cli import launch
    with pytest.raises(SystemExit) as exit_info:
        launch.main(["--num_actor_processes=1", "--dry_run"] + flags)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert ("has no authentication and listens on every network interface"
            in captured.err), captured.err
    assert "pass --listen_on_all_interfaces" in captured.err
    assert "[launch]" not in captured.out  # Nothing planned or started.


@pytest.mark.slow
@pytest.mark.parametrize("flags,why", [
    (["--job_name=learner", "--learner_address=localhost:23431"],
     "--job_name=learner (remote actors)"),
    (["--job_name=learner", "--learner_hosts=localhost:23432,localhost:23433"],
     "--learner_hosts (synchronous learners)"),
    (["--local_transport=grpc"], "--local_transport=grpc"),
])
def test_a_learner_that_would_listen_needs_the_flag(flags, why, tmp_path):
    """A learner that needs TensorFlow's gRPC server (it binds every
    interface, without authentication) exits 2 with one sentence unless
    --listen_on_all_interfaces is given; nothing is written."""
    logdir = tmp_path / "run"
    result = testing.run_impala(
        SMALL + flags + [f"--logdir={logdir}"], timeout=120,
        isolate=testing.can_isolate())  # Isolated in case it did listen.
    assert result.returncode == 2, (result.stdout, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert errors == [
        f"error: {why} needs TensorFlow's gRPC server, which has no "
        "authentication and listens on every network interface whatever "
        "--learner_address says, so anyone who reaches its port can run "
        "code as this user; pass --listen_on_all_interfaces to start it "
        "anyway, on a private network only"], result.stderr
    assert not logdir.exists()


# --------------------------------------------------------------------------
# Real processes.

@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    """2 learner processes (batch B each) and the in-process MirroredStrategy
    harness, both against one learner on the union batch (2B)."""
    if not testing.can_isolate():
        pytest.skip("needs `unshare -n` to keep TF servers off the network")
    d = tmp_path_factory.mktemp("equivalence")
    helper = "$PY -m tests.distributed_equivalence"
    rc, out = _isolated_script(f"""
        H=127.0.0.1:23411,127.0.0.1:23412
        {helper} multi {d}/multi0.npz $H 0 > {d}/m0.log 2>&1 &
        M0=$!
        {helper} multi {d}/multi1.npz $H 1 > {d}/m1.log 2>&1 &
        M1=$!
        {helper} single {d}/single.npz > {d}/single.log 2>&1 &
        S=$!
        {helper} mirrored {d}/mirrored.npz > {d}/mirrored.log 2>&1
        echo mirrored=$?
        wait $S; echo single=$?
        wait $M0; echo multi0=$?
        wait $M1; echo multi1=$?
        """, timeout=400)
    logs = "".join(open(d / n).read()[-1500:] for n in
                   ("m0.log", "m1.log", "single.log", "mirrored.log"))
    for name in ("mirrored", "single", "multi0", "multi1"):
        assert f"{name}=0" in out, out + logs
    return {n: dict(np.load(d / f"{n}.npz")) for n in
            ("multi0", "multi1", "single", "mirrored")}


def _assert_same_update(got, want):
    names = [k for k in want if k.startswith("w")]
    change = max(np.abs(want[k] - want["init_" + k]).max() for k in names)
    assert change > 1e-3  # The updates are not vacuous.
    for k in names:
        np.testing.assert_array_equal(got["init_" + k], want["init_" + k])
        # Float32 sums in another order: ~1e-8 here. Summing *clipped*
        # gradients, or averaging, would be off by ~change.
        np.testing.assert_allclose(got[k], want[k], rtol=0,
                                   atol=1e-4 * change, err_msg=k)
    assert int(got["num_frames"]) == int(want["num_frames"])
    assert int(got["num_steps"]) == int(want["num_steps"])


@pytest.mark.slow
@procs.requires_netns
def test_two_learner_processes_match_one_learner_on_union_batch(
        equivalence):
    multi0, multi1 = equivalence["multi0"], equivalence["multi1"]
    for k in multi0:  # The two learners hold bitwise the same weights.
        np.testing.assert_array_equal(multi0[k], multi1[k], err_msg=k)
    _assert_same_update(multi0, equivalence["single"])
    assert float(multi0["stop_votes"]) == 0.0


@pytest.mark.slow
@procs.requires_netns
def test_mirrored_replicas_match_one_learner_on_union_batch(equivalence):
    _assert_same_update(equivalence["mirrored"], equivalence["single"])


@pytest.mark.slow
@procs.requires_netns
def test_remote_actors_join_late_leave_early_and_exit_zero(tmp_path):
    """A --job_name=learner waits for remote actors, counts them as they
    come and go, keeps training, stops on SIGTERM; actors then exit 0."""
    logdir = tmp_path / "run"
    flags = " ".join(SMALL + ["--learner_address=localhost:23421",
                              "--total_environment_frames=100000000"])
    exp = "$PY -m impala_tf.cli.experiment"
    rc, out = _isolated_script(WAIT_FOR + f"""
        F="{flags}"
        $PY -m impala_tf.cli.experiment $F --job_name=learner \\
            --listen_on_all_interfaces --logdir={logdir} \\
            --actor_timeout_s=5 > {tmp_path}/L.log 2>&1 &
        L=$!
        {exp} $F --job_name=actor --task=0 > {tmp_path}/A0.log 2>&1 &
        A0=$!
        wait_for 120 'grep -q "actor 0 connected (" {tmp_path}/L.log'
        {exp} $F --job_name=actor --task=1 > {tmp_path}/A1.log 2>&1 &
        A1=$!
        wait_for 120 'grep -q "actors_connected.: 2" {logdir}/progress.jsonl'
        kill -KILL $A1
        wait_for 60 'grep -q "actor 1 sent nothing" {tmp_path}/L.log'
        N=$(lines {logdir}/progress.jsonl)
        wait_for 60 '[ $(lines {logdir}/progress.jsonl) -ge $((N + 2)) ]'
        kill -TERM $L
        wait $L; echo learner=$?
        wait $A0; echo actor0=$?
        """, timeout=300)
    logs = {n: (tmp_path / f"{n}.log").read_text() for n in ("L", "A0")}
    assert "learner=0" in out and "actor0=0" in out, (out, logs)
    assert "learner serving on localhost:23421" in logs["L"]
    assert "no authentication" in logs["L"]
    assert "actor 1 connected (" in logs["L"]
    assert "the learner is done" in logs["A0"]
    records = _records(logdir)
    both = [i for i, r in enumerate(records) if r["actors_connected"] == 2]
    after = [r for r in records[both[0]:] if r["actors_connected"] == 1]
    assert after, records  # Actor 1 left: counted down to 1...
    assert after[-1]["env_frames"] > after[0]["env_frames"]  # ...training on.
    assert records[-1]["actors_seen"] == 2
    assert any(n.startswith("ckpt-") for n in
               os.listdir(logdir / "checkpoints"))


@pytest.mark.slow
@procs.requires_netns
def test_launcher_two_learners_stop_together(tmp_path):
    """launch: 2 synchronous learners + 2 actors through the distributed
    path; SIGTERM to learner 1 alone stops both after the same step,
    learner 0 checkpoints, every process exits."""
    logdir = tmp_path / "run"
    flags = " ".join(SMALL + [f"--logdir={logdir}",
                              "--total_environment_frames=100000000"])
    rc, out = _isolated_script(WAIT_FOR + f"""
        $PY -m impala_tf.cli.launch --num_actor_processes=2 --num_learners=2 \\
            --listen_on_all_interfaces {flags} > {tmp_path}/launch.log 2>&1 &
        LAUNCH=$!
        wait_for 150 '[ $(lines {logdir}/learner_1/progress.jsonl) -ge 1 ]'
        wait_for 60 '[ $(lines {logdir}/progress.jsonl) -ge 2 ]'
        L1=$(pgrep -P $LAUNCH -f -- "--job_name=learner --task=1")
        echo "learner 1 is pid $L1"
        kill -TERM $L1
        wait $LAUNCH; echo launch=$?
        """, timeout=300)
    log = (tmp_path / "launch.log").read_text()
    assert "launch=0" in out, out + log[-4000:]
    assert "on other machines" in log and "--job_name=actor" in log
    assert log.count("the learner is done") == 2, log[-4000:]
    assert "still running" not in log
    chief = _records(logdir)
    other = _records(logdir / "learner_1")
    assert chief[-1]["learner_steps"] == other[-1]["learner_steps"] > 0
    assert chief[-1]["env_frames"] == other[-1]["env_frames"]
    assert chief[-1]["env_frames"] == chief[-1]["learner_steps"] * 2 * 4 * 10
    ckpts = os.listdir(logdir / "checkpoints")
    assert f"ckpt-{chief[-1]['learner_steps']}.index" in ckpts
    assert not os.path.exists(logdir / "learner_1" / "checkpoints") or not [
        n for n in os.listdir(logdir / "learner_1" / "checkpoints")
        if n.startswith("ckpt")]
