"""Tests for impala_tf.pbt.population: copying a donor's checkpoint
while it saves, killed saves and damaged checkpoints, and pbt.jsonl with
torn lines (read, printed by the supervisor and plotted)."""

import json
import os
import threading

import numpy as np
import tensorflow as tf

from impala_tf import testing
from impala_tf.pbt import population as pbt_population
from impala_tf.pbt import processes as pbt_supervisor


# -- The donor's checkpoint, copied while it saves. ---------------------------

class _Filled(tf.Module):
    """Variables that a save numbered k fills with k everywhere."""

    def __init__(self):
        super().__init__()
        self.big = tf.Variable(tf.zeros([512, 512]))
        self.small = tf.Variable(tf.zeros([7]))
        self.k = tf.Variable(0.0)


def test_a_checkpoint_being_saved_is_never_copied_half_written(tmp_path):
    population = pbt_population.Population(str(tmp_path), 2)
    directory = population.checkpoint_dir(1)
    module = _Filled()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(m=module),
                                         directory, max_to_keep=1)
    stop, saved = threading.Event(), []

    def donor():  # Saves as fast as it can, deleting the older ones.
        k = 0
        while not stop.is_set() and k < 400:
            k += 1
            for v in (module.big, module.small, module.k):
                v.assign(tf.fill(v.shape, float(k)))
            manager.save(checkpoint_number=k)
            saved.append(k)

    thread = threading.Thread(target=donor)
    thread.start()
    copied = []
    try:
        while thread.is_alive() and len(copied) < 40:
            copy = population.copy_latest_checkpoint(
                1, str(tmp_path / "copy"))
            if copy is None:
                continue
            reader = tf.train.load_checkpoint(copy)
            values = {float(x) for name in reader.get_variable_to_shape_map()
                      if name.startswith("m/")
                      for x in np.unique(reader.get_tensor(name))}
            assert values == {float(copy.rsplit("-", 1)[1])}, (copy, values)
            copied.append(copy)
    finally:
        stop.set()
        thread.join()
    assert len(copied) >= 5, (len(copied), len(saved))
    assert len({c.rsplit("-", 1)[1] for c in copied}) > 1  # Mid-saving.


def test_a_killed_save_and_a_damaged_checkpoint_are_not_copied(tmp_path):
    population = pbt_population.Population(str(tmp_path), 2)
    directory = population.checkpoint_dir(1)
    module = _Filled()
    module.k.assign(3.0)
    tf.train.CheckpointManager(tf.train.Checkpoint(m=module), directory,
                               max_to_keep=5).save(checkpoint_number=3)
    # A save killed half-way: a temporary directory and an index that the
    # state file does not name.
    os.makedirs(os.path.join(directory, "ckpt-9_temp"))
    with open(os.path.join(directory, "ckpt-9.index"), "wb") as f:
        f.write(b"half")
    copy = population.copy_latest_checkpoint(1, str(tmp_path / "copy"))
    assert copy.endswith("ckpt-3")
    assert float(tf.train.load_checkpoint(copy).get_tensor(
        "m/k/.ATTRIBUTES/VARIABLE_VALUE")) == 3.0
    # The named checkpoint's data damaged: no copy rather than a bad one.
    data = [n for n in os.listdir(directory) if n.startswith("ckpt-3.data")]
    with open(os.path.join(directory, data[0]), "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    assert population.copy_latest_checkpoint(
        1, str(tmp_path / "copy"), attempts=2) is None
    assert population.copy_latest_checkpoint(0, str(tmp_path / "c")) is None


# -- pbt.jsonl with torn lines (appends from hosts over NFS). ---------------

def _event(member, frames, fitness, copied=False):
    return {"time": 1.0 + frames, "member": member, "frames": frames,
            "fitness": fitness, "picked": 1 - member,
            "picked_fitness": None, "copied": copied,
            "donor_checkpoint": None,
            "hyperparameters": {"learning_rate": 1e-3 * (1 + frames / 100),
                                "entropy_cost": 1e-2, "epsilon": 1e-3,
                                "max_grad_norm": 40.0}}


def _torn_log(logdir):
    """pbt.jsonl of two members: three torn lines among four whole
    events."""
    whole = [json.dumps(_event(m, f, f / 100)).encode()
             for m, f in ((0, 100), (1, 100), (0, 200), (1, 200), (0, 300))]
    lines = [whole[0],
             whole[1][:40] + whole[2],  # Cut short, then another's line.
             whole[3],
             b"\x00" * 17 + b"\xff\xfe",  # Zeros and bytes of no UTF-8.
             b'{"member": 1, "frames": 300}',  # JSON, not an event.
             whole[4]]
    os.makedirs(logdir, exist_ok=True)
    with open(os.path.join(logdir, pbt_population.EVENTS_FILE), "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def test_torn_lines_are_skipped_and_counted(tmp_path):
    logdir = str(tmp_path)
    _torn_log(logdir)
    events = pbt_population.read_events(logdir)
    assert [(e["member"], e["frames"]) for e in events] == [
        (0, 100), (1, 200), (0, 300)]
    assert pbt_population.read_event_log(logdir) == (events, 3)
    # A last line still being written is left out, not counted.
    path = os.path.join(logdir, pbt_population.EVENTS_FILE)
    line = json.dumps(_event(1, 300, 3.0)).encode() + b"\n"
    with open(path, "ab") as f:
        f.write(line[:25])
    assert pbt_population.read_event_log(logdir) == (events, 3)
    # The supervisor says the torn lines once and each new event.
    population = pbt_population.Population(logdir, 2)
    said = []
    printer = pbt_supervisor.EventPrinter(population, said.append)
    printer.poll()
    assert said == [pbt_population.torn_lines_sentence(logdir, 3)], said
    assert "pbt.jsonl: skipped 3 torn lines" in said[0]
    printer.poll()
    assert len(said) == 1
    with open(path, "ab") as f:
        f.write(line[25:])
    population.append_event(_event(0, 400, 2.5, copied=True))
    printer.poll()
    assert said[1:] == [
        "[pbt] member 1 at 300 frames: fitness 3",
        "[pbt] member 0 at 400 frames: fitness 2.5, copied member 1"], said
    # The plot draws the whole events and says how many lines it skipped,
    # once.
    with open(path, "ab") as f:
        f.write(b"]]\n")
    png = str(tmp_path / "pbt.png")
    result = testing.run_impala(["--plot", f"--logdir={logdir}",
                                 f"--plot_output={png}"],
                                timeout=120, module="impala_tf.cli.pbt",
                                isolate=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("torn line") == 1, result.stdout
    assert "skipped 4 torn lines" in result.stdout, result.stdout
    assert os.path.getsize(png) > 10_000
