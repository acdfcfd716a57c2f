"""End-to-end tests of the single-machine trainer with real processes.

Each run starts a real learner and real actor processes, on
`impala_tf.envs.toy:colour_choice` (random policy: 5 per episode, best: 10)
unless said otherwise, in a private network namespace: a local run opens no
port (`test_local_run_opens_no_port` checks), but one on the gRPC transport
starts TF's server, which listens on every interface.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from impala_tf.runtime import progress
from impala_tf import testing
from tests import procs

TOY = testing.TOY_LEVEL
SMALL = testing.TINY_FLAGS


def real_processes(test):
    """A test that trains with a learner (a TF server) and actors."""
    return pytest.mark.slow(procs.requires_netns(test))


def tf_sees_gpu():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return bool(tf.config.list_physical_devices("GPU"))


def _records(logdir):
    return progress.read_records(logdir, strict=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run shared by the tests below."""
    logdir = str(tmp_path_factory.mktemp("run"))
    result = testing.run_impala(
        SMALL + ["--logdir=" + logdir, "--total_environment_frames=16000"])
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir, result


@real_processes
def test_trains_and_learns(trained):
    logdir, result = trained
    records = _records(logdir)
    last = records[-1]
    assert last["env_frames"] >= 16000
    for key in ("env_frames", "learner_steps", "wall_time", "fps",
                "episode_return_mean"):
        assert key in last
    # Random play scores 5 of 10; a learning agent is clearly above.
    assert last["episode_return_mean"] > 7.5, records
    assert "frames/s" in result.stdout and "ETA" in result.stdout
    assert ("[impala] precision: float32 (--precision=float32)"
            in result.stdout)  # The default, said once at start.
    assert ("[impala] learner step: XLA-compiled (default: a GPU is visible)"
            if tf_sees_gpu() else "[impala] learner step: not compiled "
            "(default: no GPU visible)") in result.stdout
    # The last line gives the run's figures, not an empty last interval.
    final = [line for line in result.stdout.splitlines()
             if line.startswith("[impala] frames")][-1]
    assert "frames/s over the run" in final, final
    assert " 0 frames/s" not in final and "loss nan" not in final, final
    # A user level: 32 environments per actor, one slot holds a batch.
    assert "through shared memory (2 x 1 slot(s)" in result.stdout
    assert "no network port is open" in result.stdout
    assert "serving on" not in result.stdout
    assert os.path.isdir(os.path.join(logdir, "train"))  # TensorBoard.
    assert any(n.startswith("events.") for n in
               os.listdir(os.path.join(logdir, "train")))


@real_processes
def test_resume_continues_counters(trained, tmp_path):
    logdir, _ = trained
    copy = str(tmp_path / "resumed")
    subprocess.run(["cp", "-r", logdir, copy], check=True)
    before = _records(copy)[-1]
    # Later flags (SMALL's learning rate 0.002 overridden) and a larger
    # frame target than the run started with.
    result = testing.run_impala(
        SMALL + ["--logdir=" + copy, "--total_environment_frames=20000",
                 "--learning_rate=0.001", "--entropy_cost=0.02"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout
    assert f"at {before['env_frames']:,} frames" in result.stdout
    records = _records(copy)
    new = records[len(_records(logdir)):]
    assert new and min(r["env_frames"] for r in new) > before["env_frames"]
    assert min(r["learner_steps"] for r in new) > before["learner_steps"]
    # The returns go on from the checkpoint's last 100 games: no restart
    # from the first games to end after the resume.
    assert (f"mean return {before['episode_return_mean']:.2f} over the last "
            f"100 of {before['episodes']:,} episodes") in result.stdout
    assert before["episodes"] >= 100
    assert all(r["episodes"] >= before["episodes"]
               and r["episode_return_mean"] is not None for r in new), new
    assert records[-1]["env_frames"] >= 20000
    # The flags win, each change named once; the schedule keeps the
    # horizon the run started with (16,000 frames), so the learning rate
    # does not rise again: it is 0 past 16,000 frames.
    assert ("[impala] resumed with the flags' hyperparameters (checkpoint "
            "-> flags): learning_rate 0.002 -> 0.001, entropy_cost 0.01 -> "
            "0.02") in result.stdout
    assert "decays to 0 at 16,000 frames" in result.stdout
    assert before["env_frames"] >= 16000
    for r in new:
        assert r["learning_rate"] == 0.0, r
        assert r["entropy_cost"] == pytest.approx(0.02), r
    # run_config.json says what trains now and what changed at the resume.
    with open(os.path.join(copy, "run_config.json")) as f:
        saved = json.load(f)
    assert saved["learner"]["learning_rate"] == 0.001
    assert saved["learner"]["learning_rate_decay_frames"] == 16000
    assert saved["history"] == [{
        "frames": before["env_frames"],
        "changed": {"learning_rate": [0.002, 0.001],
                    "entropy_cost": [0.01, 0.02],
                    "total_environment_frames": [16000, 20000]}}]


@real_processes
def test_stop_at_return_ends_a_run_that_plays_well(trained, tmp_path):
    """The trained run (mean return above 7.5, learning rate 0 past its
    16,000-frame schedule) resumed with a frame target it would need hours
    for: it stops once 100 new games average 7 or more."""
    logdir, _ = trained
    copy = str(tmp_path / "resumed")
    subprocess.run(["cp", "-r", logdir, copy], check=True)
    result = testing.run_impala(
        SMALL + ["--logdir=" + copy, "--total_environment_frames=10000000000",
                 "--stop_at_return=7", "--log_interval_s=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reached --stop_at_return=7 at" in result.stdout, result.stdout
    last = _records(copy)[-1]
    assert last["env_frames"] < 10_000_000_000
    assert progress.reached_return(last, 7)
    assert os.path.exists(os.path.join(copy, "checkpoints", "checkpoint"))


@real_processes
def test_test_mode_writes_scores(trained, tmp_path):
    logdir, _ = trained
    out = str(tmp_path / "scores.csv")
    result = testing.run_impala(
        SMALL + ["--logdir=" + logdir, "--mode=test",
                 "--test_num_episodes=5", "--test_output=" + out])
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    assert all(row["level"] == TOY for row in rows)
    assert np.mean([float(r["score"]) for r in rows]) > 7.0


@real_processes
def test_export_reloads_without_impala_or_sonnet(trained, tmp_path):
    logdir, _ = trained
    export_dir = str(tmp_path / "policy")
    result = testing.run_impala(
        SMALL + ["--logdir=" + logdir, "--mode=export",
                 "--export_dir=" + export_dir])
    assert result.returncode == 0, result.stderr[-3000:]
    script = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("sonnet", "impala_tf"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.path = [p for p in sys.path if p not in ("", ".", REPO)]
        import numpy as np, tensorflow as tf
        policy = tf.saved_model.load(sys.argv[1])
        state = policy.initial_state(tf.constant(2))
        red = np.zeros([2, 24, 24, 3], np.uint8); red[..., 0] = 255
        green = np.zeros([2, 24, 24, 3], np.uint8); green[..., 1] = 255
        outs = []
        for frame in (red, green):
            out = policy.step({"frame": tf.constant(frame)},
                              tf.zeros([2], tf.int32), tf.zeros([2]),
                              tf.constant([True, True]), state)
            outs.append(out["policy_logits"].numpy())
            assert out["action"].shape == (2,)
            assert out["baseline"].shape == (2,)
        assert "sonnet" not in sys.modules and "impala_tf" not in sys.modules
        # The trained policy prefers action 0 on red and 1 on green.
        print("PREF", int(np.argmax(outs[0][0])), int(np.argmax(outs[1][0])))
    """).replace("REPO", repr(testing.REPO))
    check = subprocess.run([sys.executable, "-c", script, export_dir],
                           cwd=str(tmp_path), capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stderr[-3000:]
    assert "PREF 0 1" in check.stdout


@real_processes
def test_lstm_agent_trains_over_the_grpc_queue(tmp_path):
    """The LSTM agent (core states in the trajectories), with local actors
    on the gRPC queue instead of shared memory (the other runs' default)."""
    result = testing.run_impala(
        [f for f in SMALL if not f.startswith("--use_lstm")]
        + ["--use_lstm=true", "--logdir=" + str(tmp_path),
           "--total_environment_frames=3200", "--num_actors=1",
           "--local_transport=grpc", "--listen_on_all_interfaces"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shared memory" not in result.stdout
    assert "learner serving on localhost:" in result.stdout
    assert _records(str(tmp_path))[-1]["env_frames"] >= 3200


@real_processes
def test_dmlab_language_level_on_test_double(tmp_path):
    """A short run on a DMLab language level through the DeepMind Lab test
    double: instruction strings travel from the Lab to the agent's encoder,
    through shared memory like the frames (no port opened)."""
    result = testing.run_impala(
        ["--level_name=language_select_described_object",
         "--agent=shallow", "--batch_size=2", "--unroll_length=5",
         "--num_actors=1", "--total_environment_frames=400",
         "--log_interval_s=1", "--logdir=" + str(tmp_path)],
        env={"IMPALA_TF_DEEPMIND_LAB_MODULE": "tests.fake_deepmind_lab"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "through shared memory" in result.stdout
    assert "no network port is open" in result.stdout
    with open(os.path.join(str(tmp_path), "run_config.json")) as f:
        config = json.load(f)
    assert config["network"]["use_instruction"] is True
    assert config["network"]["num_actions"] == 9
    assert config["network"]["observation"]["frame"] == [72, 96, 3]
    assert _records(str(tmp_path))[-1]["env_frames"] >= 400


@pytest.mark.parametrize("requested,local,cpus,expected", [
    (None, 2, 2, 1),     # The shipped default on 2 CPUs: one per process.
    (None, 1, 2, 1),
    (None, 8, 48, 40),   # The CPUs the actors leave free.
    (None, 60, 48, 1),   # Never fewer than one.
    (None, 0, 48, None),  # Only remote actors: TensorFlow's default.
    (3, 2, 2, 3),        # --learner_threads wins.
])
def test_learner_threads(requested, local, cpus, expected):
    from impala_tf.runtime import trainer
    assert trainer.learner_threads(requested, local, cpus) == expected


def test_shared_memory_exactly_where_no_server_runs(tmp_path):
    """Local actors get shared memory (text observations included) and the
    learner no server; any other run gets the server and no slots, and
    needs --listen_on_all_interfaces to start it."""
    import dataclasses
    import multiprocessing
    import tensorflow as tf
    from impala_tf import config as config_lib
    from impala_tf.runtime import trainer

    config = dataclasses.replace(testing.tiny_train_config(tmp_path),
                                 num_actors=2)
    config = dataclasses.replace(config, actor=dataclasses.replace(
        config.actor, envs_per_actor=16, queue_capacity=32))
    assert not config.needs_server
    config_lib.check_listening(config)  # Nothing to consent to.
    spec = {"frame": tf.TensorSpec([3, 4], tf.uint8),
            "instruction": tf.TensorSpec([3], tf.string)}
    slots = trainer.shared_memory_slots(config, spec)(
        multiprocessing.get_context("spawn"))
    assert (slots.n, slots.num_slots) == (16, 1)  # 32 / 2 actors / 16.
    for changes, why in [
            ({"local_transport": "grpc"}, "--local_transport=grpc"),
            ({"spawn_actors": False}, "--job_name=learner"),
            ({"spawn_actors": False, "learner_hosts": ("a:1", "b:2")},
             "--learner_hosts")]:
        other = dataclasses.replace(config, **changes)
        assert other.needs_server
        assert trainer.shared_memory_slots(other, spec) is None
        with pytest.raises(ValueError, match=f"^{why}.*no authentication.*"
                           "pass --listen_on_all_interfaces"):
            config_lib.check_listening(other)
        config_lib.check_listening(dataclasses.replace(
            other, listen_on_all_interfaces=True))


def test_open_ports_sees_listening_and_bound_sockets():
    """The check `test_local_run_opens_no_port` relies on."""
    import socket
    me = [os.getpid()]
    before = testing.open_ports(me)
    with socket.socket() as tcp, socket.socket(socket.AF_INET6) as tcp6, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket() as unconnected:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        tcp6.bind(("::", 0))
        tcp6.listen()
        udp.bind(("127.0.0.1", 0))
        del unconnected  # Neither listening nor bound: not a port.
        found = set(testing.open_ports(me)) - set(before)
        assert found == {
            (me[0], "tcp", f"127.0.0.1:{tcp.getsockname()[1]}"),
            (me[0], "tcp6", f":::{tcp6.getsockname()[1]}"),
            (me[0], "udp", f"127.0.0.1:{udp.getsockname()[1]}")}


@pytest.mark.slow
def test_local_run_opens_no_port(tmp_path):
    """A run whose actors are all local (the default, `make train`) holds no
    listening TCP socket and no UDP socket, in the learner or its actors,
    while it trains; a second run on its logdir meanwhile exits 2 naming
    it; SIGTERM then stops it cleanly. Isolated where possible, in case it
    did listen; the check works either way."""
    logdir = tmp_path / "run"
    args = [sys.executable, "-m", "impala_tf.cli.experiment"] + SMALL + [
        f"--logdir={logdir}", "--total_environment_frames=100000000",
        "--checkpoint_interval_s=1000"]
    log_path = tmp_path / "log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            testing.isolated_command(args) if testing.can_isolate()
            else args, cwd=testing.REPO, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 240
        while True:  # Until both actors run and the learner has trained.
            tree = testing.process_tree(proc.pid)
            actors = [p for p in tree
                      if "spawn_main" in (testing.cmdline(p) or "")]
            if len(actors) == 2 and progress.read_records(str(logdir)):
                break
            assert proc.poll() is None and time.monotonic() < deadline, (
                log_path.read_text()[-4000:])
            time.sleep(0.2)
        tree = testing.process_tree(proc.pid)
        assert proc.pid in tree and set(actors) <= set(tree)
        assert testing.open_ports(tree) == [], log_path.read_text()[-4000:]
        second = testing.run_impala(  # The same logdir, while it trains.
            SMALL + [f"--logdir={logdir}"], timeout=120, isolate=False)
        assert second.returncode == 2, second.stderr[-3000:]
        assert (f"is in use by another training process (pid {proc.pid})"
                in second.stderr) and "Traceback" not in second.stderr
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(90) == 0, log_path.read_text()[-4000:]
    finally:
        testing.kill_group(proc)
        proc.wait()
    text = log_path.read_text()
    assert "no network port is open" in text and "Traceback" not in text


@pytest.mark.slow
def test_logdir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    result = testing.run_impala(SMALL + ["--logdir=" + str(path)],
                                timeout=60, isolate=False)
    assert result.returncode == 2
    assert "is a file" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "keep me"
