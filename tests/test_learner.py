"""Tests for impala_tf.algorithm.learner: the update with and without XLA, the
learning-rate and entropy-cost schedules, the non-finite skip, publication,
the XLA default and hyperparameters set between updates.
"""

import numpy as np
import pytest
import tensorflow as tf

from impala_tf import agents
from impala_tf.algorithm import learner as learner_lib
from impala_tf import testing
from impala_tf.runtime import trainer
from tests import pbt_support
from tests import reliability_support

B, T, A, SIZE = 3, 4, 3, 24  # Batch, unroll, actions, frame side.


def _config(**overrides):
    values = dict(
        batch_size=B, unroll_length=T, num_action_repeats=1,
        total_environment_frames=10 * B * T, learning_rate=0.01, decay=0.99,
        momentum=0.0, epsilon=0.01, entropy_cost=0.01, baseline_cost=0.5,
        discounting=0.99, reward_clipping="abs_one", max_grad_norm=40.0)
    values.update(overrides)
    return learner_lib.LearnerConfig(**values)


def _batch(seed=0, use_lstm=True, reward_scale=1.0):
    """A fixed random batch: `types.Trajectory`, each [B, T+1, ...]."""
    return testing.random_batch(
        B, T, A, SIZE, seed=seed, reward_scale=reward_scale,
        state_spec=(agents.make_agent("shallow", A).state_spec(B)
                    if use_lstm else None))


def _spec(batch):
    return tf.nest.map_structure(tf.TensorSpec.from_tensor, batch)


def _learner(use_lstm=True, publish=None, **overrides):
    tf.random.set_seed(0)
    agent = agents.make_agent("shallow", A, use_lstm=use_lstm)
    learner = learner_lib.Learner(agent, _config(**overrides),
                                  publish=publish)
    learner.build(_spec(_batch(use_lstm=use_lstm)))
    return learner


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_xla_step_gives_the_same_update_as_the_plain_step():
    learner = _learner()
    batch = _batch()
    start = _values(learner.variables)  # Weights and optimizer slots.
    initial = _values(learner.agent.trainable_variables)
    weights = {}
    for jit in (False, True):
        for v, x in zip(learner.variables, start):
            v.assign(x)
        out = learner.step_function(jit)(batch)
        assert int(out["num_steps"]) == 1
        assert int(out["nonfinite_skips"]) == 0
        weights[jit] = _values(learner.agent.trainable_variables)
    moved = [np.max(np.abs(a - b)) for a, b in zip(weights[False], initial)]
    assert max(moved) > 1e-4  # The step did update the weights.
    for plain, xla in zip(weights[False], weights[True]):
        np.testing.assert_allclose(xla, plain, atol=1e-5, rtol=0)


def test_step_function_publishes_the_updated_weights():
    mirror = {}  # What actors would read: a copy, as the transport keeps.

    def publish(variables, version):
        if not mirror:
            mirror["weights"] = [tf.Variable(tf.zeros_like(v))
                                 for v in variables]
            mirror["version"] = tf.Variable(-1, dtype=tf.int64)
        for m, v in zip(mirror["weights"], variables):
            m.assign(v.read_value())
        mirror["version"].assign(tf.cast(version, tf.int64))

    learner = _learner(use_lstm=False, publish=publish)
    publish(learner.agent.trainable_variables, learner.num_steps)
    batch = _batch(use_lstm=False)
    before = _values(learner.agent.trainable_variables)
    out = learner.step_function(True)(batch)
    assert int(mirror["version"].numpy()) == int(out["num_steps"]) == 1
    after = _values(learner.agent.trainable_variables)
    assert any(np.any(a != b) for a, b in zip(before, after))
    for m, a in zip(mirror["weights"], after):
        np.testing.assert_array_equal(m.numpy(), a)


def test_train_step_still_publishes():
    calls = []
    learner = _learner(use_lstm=False,
                       publish=lambda variables, version: calls.append(
                           int(version)))
    learner.train_step(_batch(use_lstm=False))  # Eager.
    assert calls == [1]


def test_step_function_needs_build():
    learner = learner_lib.Learner(agents.make_agent("shallow", A), _config())
    with pytest.raises(RuntimeError, match="build"):
        learner.step_function(False)


@pytest.mark.parametrize("decay_frames,frames,expected", [
    (None, 0, 0.01), (None, 60, 0.005), (None, 120, 0.0), (None, 240, 0.0),
    (240, 60, 0.0075), (240, 120, 0.005), (240, 240, 0.0), (30, 60, 0.0)])
def test_learning_rate_schedule(decay_frames, frames, expected):
    # total_environment_frames is 10 * B * T = 120.
    learner = learner_lib.Learner(
        agents.make_agent("shallow", A),
        _config(learning_rate_decay_frames=decay_frames))
    got = float(learner.current_learning_rate(tf.constant(frames, tf.int64)))
    assert got == pytest.approx(expected, abs=1e-9)


def test_steps_count_frames_and_decay_the_learning_rate():
    learner = _learner(use_lstm=False, learning_rate_decay_frames=4 * B * T)
    step = learner.step_function(False)
    rates = [float(step(_batch(seed=s, use_lstm=False))["learning_rate"])
             for s in range(3)]
    # The rate of a step is the one at the frames before it.
    np.testing.assert_allclose(rates, [0.01, 0.0075, 0.005], rtol=1e-6)
    assert int(learner.num_frames.numpy()) == 3 * B * T
    assert float(learner.learning_rate.numpy()) == pytest.approx(0.005)


@pytest.mark.parametrize("jit", [False, True])
def test_replayed_trajectories_add_no_frames(jit):
    # num_action_repeats 4: each fresh trajectory adds T * 4 frames.
    learner = _learner(use_lstm=False, num_action_repeats=4)
    step = learner.step_function(jit)
    batch = _batch(use_lstm=False)
    counted = []
    for replayed in ([False, False, False], [False, True, True],
                     [True, True, True], [True, False, True]):
        out = step(batch._replace(replayed=tf.constant(replayed)))
        counted.append(int(out["num_frames"]))
        np.testing.assert_array_equal(out["replayed"], replayed)
    fresh = np.cumsum([3, 1, 0, 1])
    assert counted == (fresh * T * 4).tolist()
    assert int(learner.num_steps.numpy()) == 4


# The entropy cost falls 0.01 -> 0.002 linearly from frame 100 to frame 300.
LATE = dict(final_entropy_cost=0.002, entropy_cost_decay_start_frames=100,
            entropy_cost_decay_end_frames=300)


@pytest.mark.parametrize("schedule,frames,expected", [
    ({}, 0, 0.01), ({}, 10**9, 0.01),
    (LATE, 0, 0.01), (LATE, 100, 0.01), (LATE, 150, 0.008),
    (LATE, 300, 0.002), (LATE, 10**9, 0.002),
    # Upwards, and from frame 0 (the default start).
    (dict(final_entropy_cost=0.03, entropy_cost_decay_end_frames=40), 10,
     0.015)])
def test_entropy_cost_schedule(schedule, frames, expected):
    learner = learner_lib.Learner(agents.make_agent("shallow", A),
                                  _config(**schedule))
    got = float(learner.current_entropy_cost(tf.constant(frames, tf.int64)))
    assert got == pytest.approx(expected, rel=1e-6)


def test_entropy_cost_schedule_ends_at_the_final_value_whatever_the_base():
    # An evolved (PBT) or resumed base moves the start, never the end: the
    # schedule goes linearly from the base to --final_entropy_cost itself.
    learner = learner_lib.Learner(
        agents.make_agent("shallow", A),
        _config(final_entropy_cost=0.002, entropy_cost_decay_end_frames=100))
    learner.set_hyperparameters({"entropy_cost": 0.02})  # As PBT does.
    at = lambda f: float(learner.current_entropy_cost(tf.constant(
        f, tf.int64)))
    assert at(0) == pytest.approx(0.02)
    assert at(50) == pytest.approx(0.011)  # 0.02 + (0.002 - 0.02) / 2.
    assert at(100) == pytest.approx(0.002)
    assert at(10**9) == pytest.approx(0.002)
    learner.set_hyperparameters({"entropy_cost": 0.001})  # Below the end.
    assert at(100) == pytest.approx(0.002)


@pytest.mark.parametrize("jit", [False, True])
def test_steps_use_the_scheduled_entropy_cost(jit):
    # Start 0.01, end 0.002 at the third step's frames: the weighted entropy
    # loss of the same batch scales with the cost each step reports.
    learner = _learner(use_lstm=False, final_entropy_cost=0.002,
                       entropy_cost_decay_end_frames=2 * B * T,
                       learning_rate=0.0)  # Same weights at every step.
    step = learner.step_function(jit)
    batch = _batch(use_lstm=False)
    outs = [step(batch) for _ in range(4)]
    costs = [float(o["entropy_cost"]) for o in outs]
    np.testing.assert_allclose(costs, [0.01, 0.006, 0.002, 0.002], rtol=1e-6)
    losses = [float(o["entropy_loss"]) for o in outs]
    np.testing.assert_allclose(np.array(losses) / np.array(costs),
                               losses[0] / costs[0], rtol=1e-5)


@pytest.mark.parametrize("overrides,match", [
    (dict(final_entropy_cost=0.001), "needs --entropy_cost_decay_end_frames"),
    (dict(entropy_cost_decay_end_frames=10), "need --final_entropy_cost"),
    (dict(entropy_cost_decay_start_frames=10), "need --final_entropy_cost"),
    (dict(final_entropy_cost=0.001, entropy_cost_decay_start_frames=10,
          entropy_cost_decay_end_frames=10), "must be greater than"),
    (dict(final_entropy_cost=-1.0, entropy_cost_decay_end_frames=10),
     "at least 0")])
def test_entropy_cost_schedule_rejects_inconsistent_settings(overrides,
                                                             match):
    with pytest.raises(ValueError, match=match):
        _config(**overrides)


@pytest.mark.parametrize("jit", [False, True])
def test_nonfinite_batch_is_skipped_and_counted(jit):
    learner = _learner(use_lstm=False)
    before = _values(learner.agent.trainable_variables)
    step = learner.step_function(jit)
    bad = _batch(use_lstm=False)
    reward = bad.env_outputs.reward.numpy()
    reward[0, 2] = np.nan
    bad = bad._replace(env_outputs=bad.env_outputs._replace(
        reward=tf.constant(reward)))
    out = step(bad)
    assert int(out["nonfinite_skips"]) == 1
    assert int(out["num_steps"]) == 1  # Counted, weights unchanged.
    for a, b in zip(before, _values(learner.agent.trainable_variables)):
        np.testing.assert_array_equal(a, b)
    out = step(_batch(seed=1, use_lstm=False))
    assert int(out["nonfinite_skips"]) == 1
    assert any(np.any(a != b) for a, b in zip(
        before, _values(learner.agent.trainable_variables)))


@pytest.mark.parametrize("requested,gpu,text,expected", [
    (None, True, False, True), (None, False, False, False),
    (None, True, True, False), (True, False, False, True),
    (False, True, False, False), (False, True, True, False)])
def test_resolve_jit_compile(requested, gpu, text, expected):
    assert learner_lib.resolve_jit_compile(requested, gpu, text) is expected


def test_resolve_jit_compile_refuses_text():
    with pytest.raises(ValueError, match="text"):
        learner_lib.resolve_jit_compile(True, True, text_observations=True)


@pytest.mark.parametrize("jit,requested,expected", [
    (True, True, "learner step: XLA-compiled (--jit_compile)"),
    (False, False, "learner step: not compiled (--nojit_compile)"),
    (True, None, "learner step: XLA-compiled (default: a GPU is visible)"),
    (False, None, "learner step: not compiled (default: no GPU visible)")])
def test_jit_compile_line(jit, requested, expected):
    line = learner_lib.jit_compile_line(jit, requested)
    assert line.startswith("[impala] ") and expected in line


def test_jit_compile_line_gives_the_reason_it_is_told():
    line = learner_lib.jit_compile_line(False, None, why="text observations")
    assert line == "[impala] learner step: not compiled (text observations)"


@pytest.mark.parametrize("initial", [1.0, 0.0])
def test_rmsprop_mean_square_starts_where_configured(initial):
    # TF1's RMSProp (the release's) starts the mean square at 1; 0 is
    # Sonnet 2's and PyTorch's. The first update is then, per parameter,
    # lr * g / sqrt(decay * ms0 + (1 - decay) * g^2 + eps) (momentum 0).
    learner = _learner(use_lstm=False, rmsprop_initial_mean_square=initial,
                       max_grad_norm=0.0)
    variables = learner.agent.trainable_variables
    before = _values(variables)
    batch = _batch(use_lstm=False)
    with tf.GradientTape() as tape:
        loss, _ = learner.loss(batch)
    grads = tape.gradient(loss, variables)
    learner.step_function(False)(batch)
    c = learner.config
    for b, a, g in zip(before, _values(variables), grads):
        g = g.numpy()
        ms = c.decay * initial + (1 - c.decay) * g * g
        expected = b - c.learning_rate * g / np.sqrt(ms + c.epsilon)
        np.testing.assert_allclose(a, expected, rtol=2e-3, atol=1e-6)


def test_nonfinite_batch_from_the_trainers_learner_skips_every_update(
        tmp_path):
    """NaN rewards, and actions out of range (what NaN logits make actors
    sample), leave weights and optimizer slots unchanged; the skip count
    stays after a finite batch trains again."""
    config = reliability_support.make_config(tmp_path, reward_clipping="none")
    _, learner, spec, _ = trainer.build(config)
    batch = reliability_support.random_batch(spec, 2, 2, seed=0)
    nan_batch = batch._replace(env_outputs=batch.env_outputs._replace(
        reward=tf.fill(batch.env_outputs.reward.shape, np.nan)))
    values = reliability_support.values
    before = values(learner)
    out = learner.train_step(nan_batch)
    assert not np.isfinite(out["total_loss"].numpy())
    assert int(out["nonfinite_skips"]) == 1 and int(out["num_steps"]) == 1
    after = values(learner)
    for name, value in before.items():  # Weights and optimizer slots.
        if "learning_rate" not in name and "num_" not in name and (
                "nonfinite" not in name):
            np.testing.assert_array_equal(value, after[name], err_msg=name)
    # NaN logits make actors sample an action out of range: skipped too.
    bad_action = batch._replace(agent_outputs=batch.agent_outputs._replace(
        action=tf.fill(batch.agent_outputs.action.shape, 2)))
    out = learner.train_step(bad_action)
    assert int(out["nonfinite_skips"]) == 2
    assert not np.isfinite(out["total_loss"].numpy())
    # A finite batch trains again; the skip count stays.
    out = learner.train_step(batch)
    assert int(out["nonfinite_skips"]) == 2
    assert any(not np.array_equal(before[n], v)
               for n, v in values(learner).items() if "agent" in n)


def test_changed_hyperparameters_change_the_next_update():
    """Hyperparameters are learner variables: setting them changes the
    next update as a learner built with them would, without a retrace."""
    new, batch, weights = pbt_support.NEW, pbt_support.batch, \
        pbt_support.weights
    changed, fresh, unchanged = (pbt_support.new_learner(),
                                 pbt_support.new_learner(**new),
                                 pbt_support.new_learner())
    for a, b in zip(weights(changed), weights(fresh)):
        np.testing.assert_array_equal(a, b)  # The same start.
    step = changed.step_function(jit_compile=False)
    changed.set_hyperparameters(new)
    assert changed.hyperparameters() == new
    step(batch(1))
    fresh.step_function(jit_compile=False)(batch(1))
    unchanged.step_function(jit_compile=False)(batch(1))
    for a, b in zip(weights(changed), weights(fresh)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b, rtol=1e-3) for a, b in
               zip(weights(changed), weights(unchanged)))
    # Setting them again changes the next update without a retrace.
    traces = step.experimental_get_tracing_count()
    changed.set_hyperparameters({"learning_rate": 0.0})
    before = weights(changed)
    step(batch(2))
    for a, b in zip(before, weights(changed)):
        np.testing.assert_array_equal(a, b)  # Learning rate 0.
    assert step.experimental_get_tracing_count() == traces
    with pytest.raises(ValueError, match="unknown"):
        changed.set_hyperparameters({"decay": 0.5})
