"""pbt.plot: a population's pbt.jsonl and progress as one PNG."""

import json
import os
import struct

import pytest

from impala_tf.pbt import plot
from impala_tf.pbt import population as pbt_population
from impala_tf.runtime import progress


def _event(member, frames, learning_rate, copied=False):
    return {"time": 1.0 + frames, "member": member, "frames": frames,
            "fitness": frames / 100, "picked": 1 - member,
            "picked_fitness": None, "copied": copied,
            "donor_checkpoint": None,
            "hyperparameters": {"learning_rate": learning_rate,
                                "entropy_cost": 1e-2, "epsilon": 1e-3,
                                "max_grad_norm": 40.0}}


def _png_size(path):
    """(width, height) from the PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _population(logdir, learning_rates):
    population = pbt_population.Population(logdir, 2)
    for i, lr in enumerate(learning_rates):
        population.append_event(_event(i % 2, 100 * (i + 1), lr,
                                       copied=i == 3))
    for member in range(2):
        os.makedirs(population.member_dir(member))
        with open(progress.path(population.member_dir(member)), "w") as f:
            for frames in (50, 150, 250):
                f.write(json.dumps({"env_frames": frames,
                                    "episode_return_mean": frames / 10}) + "\n")
    return population


def test_one_panel_per_changing_hyperparameter(tmp_path):
    # The figure is 2.2 inches a panel at 90 dpi: 198 pixels.
    _population(str(tmp_path / "a"), [1e-3, 2e-3, 1e-3, 4e-3])
    assert plot.plot(str(tmp_path / "a"), str(tmp_path / "a.png")) == 0
    assert _png_size(tmp_path / "a.png") == (720, 3 * 198)  # + learning rate.
    _population(str(tmp_path / "b"), [1e-3] * 4)
    assert plot.plot(str(tmp_path / "b"), str(tmp_path / "b.png")) == 0
    assert _png_size(tmp_path / "b.png") == (720, 2 * 198)  # Fitness, return.


def test_torn_lines_are_counted_and_an_empty_log_refused(tmp_path):
    logdir = str(tmp_path)
    with open(os.path.join(logdir, pbt_population.EVENTS_FILE), "w") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match=r"pbt\.jsonl has no event yet "
                                         r"\(1 torn lines skipped\)"):
        plot.plot(logdir, str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()
    _population(logdir, [1e-3, 2e-3])
    assert plot.plot(logdir, str(tmp_path / "x.png")) == 1
    assert _png_size(tmp_path / "x.png")[1] == 3 * 198
