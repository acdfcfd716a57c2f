"""Helper process for tests/test_distributed.py: synchronous learners vs one.

  python -m tests.distributed_equivalence single OUT.npz
      one learner, batch 2B: the union of the two learners' batches;
  python -m tests.distributed_equivalence multi OUT.npz HOSTS TASK
      learner TASK of len(HOSTS) (MultiWorkerMirroredStrategy over gRPC),
      batch B, initialised with seed TASK: the broadcast must replace
      learner 1's weights with learner 0's;
  python -m tests.distributed_equivalence mirrored OUT.npz
      both learners in this process as the two replicas of a
      MirroredStrategy over two logical CPUs (no server).

Every mode starts from the weights of seed 0 (after the broadcast), runs
STEPS updates on fixed random batches (LSTM agent, tight gradient clipping
so that clipping after the sum is tested) and writes the initial and final
trainable weights and the counters to OUT.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

B, T, STEPS, K = 3, 5, 3, 2


def _batch(step, part):
    """Learner `part`'s batch at `step`: Trajectory nest of numpy [B, T+1]."""
    import sonnet as snt
    from impala_tf import types
    rng = np.random.RandomState(1000 * step + part)
    n = T + 1
    return types.Trajectory(
        level_id=np.zeros([B], np.int32),
        policy_version=np.zeros([B], np.int64),
        agent_state=snt.LSTMState(
            hidden=rng.randn(B, 256).astype(np.float32) * 0.1,
            cell=rng.randn(B, 256).astype(np.float32) * 0.1),
        env_outputs=types.EnvOutput(
            reward=rng.randn(B, n).astype(np.float32),
            done=rng.rand(B, n) < 0.2,
            observation={"frame": rng.randint(
                0, 256, [B, n, 24, 24, 3]).astype(np.uint8)}),
        agent_outputs=types.AgentOutput(
            action=rng.randint(0, 3, [B, n]).astype(np.int32),
            policy_logits=rng.randn(B, n, 3).astype(np.float32),
            baseline=rng.randn(B, n).astype(np.float32)),
        game_over=np.zeros([B, n], bool),
        episode_return=np.zeros([B, n], np.float32),
        episode_step=np.zeros([B, n], np.int32),
        # Some rows marked replayed: the frame counter sums the fresh ones
        # over learners (the update itself does not look at the mark).
        replayed=np.arange(B) < (step + part) % 3)


def _union(step):
    return tf.nest.map_structure(lambda a, b: np.concatenate([a, b]),
                                 _batch(step, 0), _batch(step, 1))


def _learner(batch_size, seed=0):
    """A built learner; its initial weights depend only on `seed`."""
    from impala_tf import agents
    from impala_tf.algorithm import learner as learner_lib
    from impala_tf import types
    tf.random.set_seed(seed)
    agent_config = agents.AgentConfig("shallow", 3, use_lstm=True,
                                      use_instruction=False)
    agent = agent_config.build()
    config = learner_lib.LearnerConfig(
        batch_size=batch_size, unroll_length=T, num_action_repeats=1,
        total_environment_frames=10_000, learning_rate=0.01, decay=0.99,
        momentum=0.0, epsilon=0.01, entropy_cost=0.01, baseline_cost=0.5,
        discounting=0.99, reward_clipping="abs_one", max_grad_norm=1.0)
    spec = types.trajectory_spec(
        3, {"frame": tf.TensorSpec([24, 24, 3], tf.uint8)}, T,
        agent.state_spec(None))
    learner = learner_lib.Learner(agent, config)
    learner.build(tf.nest.map_structure(
        lambda s: tf.TensorSpec([batch_size] + s.shape.as_list(), s.dtype),
        spec))
    return learner


def _weights(learner):
    return {f"w{i}": v.numpy()
            for i, v in enumerate(learner.agent.trainable_variables)}


def _save(path, learner, extra=None):
    arrays = _weights(learner)
    arrays["num_frames"] = learner.num_frames.numpy()
    arrays["num_steps"] = learner.num_steps.numpy()
    arrays.update(extra or {})
    np.savez(path, **arrays)


def main(argv):
    mode, out = argv[1], argv[2]
    from impala_tf.runtime import distributed
    if mode == "single":
        learner = _learner(K * B)
        init = {"init_" + k: v for k, v in _weights(learner).items()}
        step = tf.function(learner.train_step)
        for s in range(STEPS):
            step(tf.nest.map_structure(tf.constant, _union(s)))
        _save(out, learner, init)
        return
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * K)
        strategy = tf.distribute.MirroredStrategy(
            [f"/device:CPU:{i}" for i in range(K)],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
        cluster = distributed.LearnerCluster(
            ["a:1", "b:2"], 0, strategy=strategy)
    else:
        cluster = distributed.LearnerCluster(argv[3].split(","),
                                             int(argv[4]))
    learner = _learner(B, seed=cluster.task)
    cluster.broadcast(learner.variables)
    init = {"init_" + k: v for k, v in _weights(learner).items()}

    @tf.function
    def step(batch):
        return cluster.step(learner, batch)

    for s in range(STEPS):
        if mode == "mirrored":
            parts = [_batch(s, r) for r in range(K)]
            batch = strategy.experimental_distribute_values_from_function(
                lambda ctx, parts=parts: tf.nest.map_structure(
                    tf.constant, parts[ctx.replica_id_in_sync_group]))
        else:
            batch = tf.nest.map_structure(tf.constant,
                                          _batch(s, cluster.task))
        result = step(batch)
    init["stop_votes"] = result["stop_votes"].numpy()
    _save(out, learner, init)


if __name__ == "__main__":
    main(sys.argv)
