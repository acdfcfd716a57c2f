"""Tests for impala_tf.runtime.precision: what `--precision` resolves to, and one
learner update in bfloat16 mixed precision against float32.

The update is computed in a fresh process per precision (the rewrite is a
process-wide TensorFlow option): `python -m tests.test_precision PRECISION
OUT.npy` writes the change of every weight after one step on a fixed
batch.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from impala_tf.runtime import precision

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = bool(precision.cpu_flags() & set(precision.BFLOAT16_CPU_FLAGS))


@pytest.mark.parametrize("requested,flags,gpu,expected", [
    ("auto", {"avx2", "avx512_bf16"}, False, "bfloat16"),
    ("auto", {"amx_bf16", "amx_tile"}, False, "bfloat16"),
    ("auto", {"avx2", "fma"}, False, "float32"),
    ("auto", {"avx512_bf16"}, True, "float32"),
    ("float32", {"amx_bf16"}, False, "float32"),
    ("bfloat16", set(), False, "bfloat16")])
def test_resolve_once_bfloat16_learns(requested, flags, gpu, expected):
    got, reason = precision.resolve(requested, flags, gpu,
                                    bfloat16_learns=True)
    assert got == expected and reason


def test_auto_is_float32_until_bfloat16_learns_as_float32_does():
    assert not precision.BFLOAT16_LEARNS  # docs/LEARNING.md's Pong seeds.
    got, reason = precision.resolve("auto", {"avx512_bf16", "amx_bf16"})
    assert got == "float32"
    assert reason.startswith("auto: the CPU has amx_bf16 and avx512_bf16, "
                             "but bfloat16 has not yet learned Pong")
    assert precision.resolve("bfloat16", set())[0] == "bfloat16"


def test_resolve_says_why():
    assert precision.resolve("auto", {"avx512_bf16"},
                             bfloat16_learns=True)[1] == (
        "auto: the CPU has avx512_bf16")
    assert "no native bfloat16" in precision.resolve("auto", {"avx2"})[1]
    assert precision.resolve("float32", set())[1] == "--precision=float32"
    assert precision.line("bfloat16", "x").startswith(
        "[impala] precision: bfloat16 mixed precision")


def test_unknown_precision_is_one_sentence():
    with pytest.raises(ValueError, match="--precision must be one of"):
        precision.resolve("float16")


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(str(info)) == {"fpu", "avx2", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


def _update(which, out):
    """One step of the shallow agent on a fixed batch in `which`
    precision; saves the weights' change (float32, flat)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    precision.apply(which)
    from impala_tf import agents  # pylint: disable=import-outside-toplevel
    from impala_tf.algorithm import learner as learner_lib  # pylint: disable=import-outside-toplevel
    from impala_tf import testing  # pylint: disable=import-outside-toplevel
    b, t, a = 8, 20, 6
    tf.random.set_seed(0)
    agent = agents.make_agent("shallow", a, use_lstm=True)
    batch = testing.random_batch(b, t, a, 84, seed=0,
                                 state_spec=agent.state_spec(b))
    config = learner_lib.LearnerConfig(
        batch_size=b, unroll_length=t, num_action_repeats=4,
        total_environment_frames=10 ** 9, learning_rate=6e-4, epsilon=1e-5,
        entropy_cost=0.01, reward_clipping="abs_one",
        max_grad_norm=40.0)
    learner = learner_lib.Learner(agent, config)
    learner.build(tf.nest.map_structure(tf.TensorSpec.from_tensor, batch))
    before = [v.numpy().copy() for v in agent.trainable_variables]
    learner.step_function(False)(batch)
    after = agent.trainable_variables
    assert all(v.dtype == tf.float32 for v in after)  # Weights stay float32.
    np.save(out, np.concatenate([(v.numpy() - w).ravel()
                                 for v, w in zip(after, before)]))


@pytest.mark.slow
@pytest.mark.skipif(not NATIVE, reason="the CPU has no native bfloat16 "
                    "(amx_bf16 or avx512_bf16): TensorFlow does not rewrite")
def test_a_bfloat16_update_stays_close_to_float32(tmp_path):
    deltas = {}
    for which in ("float32", "bfloat16"):
        out = str(tmp_path / f"{which}.npy")
        subprocess.run([sys.executable, "-m", "tests.test_precision", which,
                        out], cwd=REPO, check=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        deltas[which] = np.load(out)
    f32, bf16 = deltas["float32"], deltas["bfloat16"]
    relative = np.linalg.norm(bf16 - f32) / np.linalg.norm(f32)
    cosine = np.dot(bf16, f32) / np.linalg.norm(bf16) / np.linalg.norm(f32)
    # Measured on an AMD EPYC (avx512_bf16): relative 0.019, cosine 0.9998.
    assert relative < 0.1 and cosine > 0.995, (relative, cosine)
    assert relative > 1e-4, "bfloat16 gave float32's update: no rewrite"


@pytest.mark.slow
@pytest.mark.skipif(not NATIVE, reason="the CPU has no native bfloat16")
def test_a_bfloat16_run_says_so_and_learns_the_toy_level(tmp_path):
    from impala_tf.runtime import progress  # pylint: disable=import-outside-toplevel
    from impala_tf import testing  # pylint: disable=import-outside-toplevel
    logdir = str(tmp_path / "run")
    result = testing.run_impala(testing.TINY_FLAGS + [
        "--logdir=" + logdir, "--total_environment_frames=16000",
        "--precision=bfloat16"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("[impala] precision: bfloat16 mixed precision (weights, "
            "optimizer and loss sums float32) (--precision=bfloat16)") in (
                result.stdout)
    # Random play scores 5 of 10 (tests/test_trainer.py's bar).
    last = progress.read_records(logdir, strict=True)[-1]
    assert last["episode_return_mean"] > 7.5, last


if __name__ == "__main__":
    _update(sys.argv[1], sys.argv[2])
