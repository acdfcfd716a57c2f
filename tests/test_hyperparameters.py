"""algorithm.hyperparameters: the evolvable hyperparameters as float64
variables."""

import math

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import config as config_lib
from impala_tf.algorithm import hyperparameters
from impala_tf.pbt import rule

# The official release's DMLab-30 learning rate: float32 would round it.
LEARNING_RATE = 0.00031866995608948655


def _config():
    return config_lib.LearnerConfig(
        batch_size=8, unroll_length=10, num_action_repeats=4,
        total_environment_frames=1_000_000, learning_rate=LEARNING_RATE,
        epsilon=0.01, entropy_cost=0.0033391318945337044,
        reward_clipping="abs_one", max_grad_norm=0.0)


def test_one_float64_variable_per_evolvable_name():
    assert hyperparameters.NAMES == rule.EVOLVABLE == (
        "learning_rate", "entropy_cost", "epsilon", "max_grad_norm")
    hp = hyperparameters.Hyperparameters(_config())
    assert hp.values() == {"learning_rate": LEARNING_RATE,
                           "entropy_cost": 0.0033391318945337044,
                           "epsilon": 0.01, "max_grad_norm": 0.0}
    assert float(np.float32(LEARNING_RATE)) != LEARNING_RATE
    for name in hyperparameters.NAMES:
        variable = getattr(hp, name)
        assert variable.dtype == tf.float64 and variable.shape == ()
        assert not variable.trainable
    assert len(hp.variables) == 4 and not hp.trainable_variables


def test_assign_some_of_them():
    hp = hyperparameters.Hyperparameters(_config())
    hp.assign({"entropy_cost": 0.02, "max_grad_norm": 40})
    assert hp.values() == {"learning_rate": LEARNING_RATE,
                           "entropy_cost": 0.02, "epsilon": 0.01,
                           "max_grad_norm": 40.0}


@pytest.mark.parametrize("values,message", [
    ({"entropy_cost": 0.5, "decay": 0.9}, r"unknown hyperparameter\(s\) "
                                          r"\['decay'\]"),
    ({"entropy_cost": 0.5, "epsilon": -1e-3}, "epsilon=-0.001 is not a "
                                              "finite value >= 0"),
    ({"entropy_cost": 0.5, "learning_rate": math.nan}, "learning_rate=nan"),
    ({"entropy_cost": 0.5, "max_grad_norm": math.inf}, "max_grad_norm=inf"),
])
def test_a_bad_value_assigns_nothing(values, message):
    hp = hyperparameters.Hyperparameters(_config())
    before = hp.values()
    with pytest.raises(ValueError, match=message):
        hp.assign(values)
    assert hp.values() == before


def test_a_traced_function_reads_the_new_value_without_retracing():
    hp = hyperparameters.Hyperparameters(_config())
    traces = []

    @tf.function
    def scaled(x):
        traces.append(1)
        return x * tf.cast(hp.learning_rate, tf.float32)

    assert float(scaled(tf.constant(2.0))) == pytest.approx(
        2 * LEARNING_RATE, rel=1e-6)
    hp.assign({"learning_rate": 0.5})
    assert float(scaled(tf.constant(2.0))) == 1.0
    assert len(traces) == 1


def test_checkpoint_round_trip(tmp_path):
    saved = hyperparameters.Hyperparameters(_config())
    saved.assign({"learning_rate": 1.25e-4, "epsilon": 1e-7})
    path = tf.train.Checkpoint(hp=saved).write(str(tmp_path / "ckpt"))
    restored = hyperparameters.Hyperparameters(_config())
    tf.train.Checkpoint(hp=restored).read(path).assert_consumed()
    assert restored.values() == saved.values()
