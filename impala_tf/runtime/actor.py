"""Actors: act in environments with a copy of the policy, ship unrolls.

One actor process owns `envs_per_actor` environments and steps them in
lock-step so that the policy runs once per step on a batch of observations
(the actor-side form of the paper's dynamic batching). Each unroll:

  1. read the latest weights (and their version) from the learner;
  2. act T steps in every environment, starting from the last step of the
     previous unroll (so each trajectory has T+1 steps, `types.Trajectory`);
  3. enqueue the N trajectories into the learner's queue in one call.

An actor never waits for the learner except through the queue's
back-pressure. The environments are one `envs.batch.EnvironmentBatch` (built
by `envs.batch.make`, or the watchdog's guarded form of it): it steps them,
resets those whose episode ends (the step is recorded with `done=True`, the
reset observation and the final reward, the release's convention) and keeps
the games' returns.

Speed (benchmarks/README.md): inference is one concrete function on flat
arguments (`policy.FlatPolicy`); environments write straight into
preallocated trajectory buffers; Atari games can be stepped as one
`envs.atari_vector.AtariBatch` (`ActorConfig.vector_env`, batched resize).

`run_actor` is the one entry point of every actor, local or remote: it is
given the agent (variables created, `build_agent`) and its transport (any
`transport.ActorTransport`). `run_local_actor` (a process the learner's
supervisor spawned: gRPC or shared memory) and `run_remote_actor`
(`--job_name=actor`: a gRPC client that reconnects) only build the
transport for it.
"""


import numpy as np
import tensorflow as tf

from impala_tf import config as config_lib
from impala_tf.agents import policy as policy_lib
from impala_tf.runtime import precision as precision_lib
from impala_tf import types
from impala_tf.envs import batch as env_batch
from impala_tf.transport import grpc
from impala_tf.transport import reconnecting
from impala_tf.transport import shared_memory
from impala_tf.transport import shared_weights

ActorConfig = config_lib.ActorConfig  # Where it is written: config.py.


def build_agent(config):
    """The agent of `config` (`ActorConfig`), its variables created."""
    return policy_lib.create_variables(config.agent.build(),
                                       config.observation_spec)


def trajectory_spec(config, agent):
    """`types.trajectory_spec` of the unrolls an actor of `config` sends."""
    return types.trajectory_spec(
        config.agent.num_actions, config.observation_spec,
        config.unroll_length, agent.state_spec(None))


class Actor:
    """Acts with N environments and a local copy of the policy.

    Args:
      config: `ActorConfig`.
      task: this actor's index (seeds and level assignment derive from it).
      agent: the agent of `config.agent`, variables created (`build_agent`);
        the actor assigns the pulled weights to its `trainable_variables`.
      transport: a `transport.ActorTransport`.
      make_environments: `envs.batch.make` or a callable with its signature
        (the watchdog's `watchdog.guarded(envs.batch.make, heartbeat)`).

    `unroll()` fills preallocated numpy buffers (the trajectory nest, each
    [N, T+1, ...]) in place and returns them; they stay valid until the next
    `unroll()` (the transport copies them when it enqueues).
    """

    def __init__(self, config, task, agent, transport,
                 make_environments=env_batch.make):
        self._config = config
        self._transport = transport
        n = config.envs_per_actor
        level_set = config.level_set
        self._level_ids = np.array(
            [level_set.level_for(task * n + i) for i in range(n)], np.int32)
        seeds = [config.seed + 1000 * task + i for i in range(n)]
        self._envs = make_environments(level_set, self._level_ids, seeds,
                                       vector_env=config.vector_env)
        self._agent = agent
        self._policy = policy_lib.FlatPolicy(agent, config.observation_spec,
                                             n)
        self._buffers = types.zero_trajectories(
            trajectory_spec(config, agent), n)
        b = self._buffers
        b.level_id[:] = self._level_ids
        # The step before the first unroll: a fresh episode, no action yet,
        # kept in column T so that each unroll starts by copying T to 0.
        last = config.unroll_length
        self._envs.reset_into(last, b)
        b.env_outputs.done[:, last] = True
        self._state = agent.initial_state(n)
        self._variables = agent.trainable_variables
        self.frames = 0

    def _carry_last_step(self):
        """Column T of the previous unroll becomes column 0 of this one."""
        b, last = self._buffers, self._config.unroll_length
        for x in (tf.nest.flatten(b.env_outputs)
                  + tf.nest.flatten(b.agent_outputs)
                  + [b.game_over, b.episode_return, b.episode_step]):
            x[:, 0] = x[:, last]
        # Step 0 is a repeat: its game statistics were already counted.
        # Flags and statistics of steps 1..T are written only where set.
        b.env_outputs.done[:, 1:] = False
        b.game_over[:] = False
        b.episode_return[:] = 0.0
        b.episode_step[:] = 0

    def unroll(self):
        """Acts one unroll in every env; returns the trajectory nest [N, ...]."""
        weights, version = self._transport.pull_weights()
        for v, w in zip(self._variables, weights):
            v.assign(w)
        b = self._buffers
        b.policy_version[:] = version
        tf.nest.map_structure(
            lambda dst, src: dst.__setitem__(slice(None), np.asarray(src)),
            b.agent_state, self._state)
        self._carry_last_step()
        env_out, agent_out = b.env_outputs, b.agent_outputs
        obs = env_out.observation
        policy, state = self._policy, self._state
        for t in range(1, self._config.unroll_length + 1):
            s = t - 1
            action, logits, baseline, state = policy(
                agent_out.action[:, s], env_out.reward[:, s],
                env_out.done[:, s], {k: v[:, s] for k, v in obs.items()},
                state)
            agent_out.action[:, t] = action
            agent_out.policy_logits[:, t] = logits
            agent_out.baseline[:, t] = baseline
            self._envs.step_into(action, t, b)
        self._state = state
        self.frames += len(self._level_ids) * self._config.unroll_length
        return b

    def run(self, should_stop=lambda: False):
        """Unroll and enqueue until `should_stop()` or the learner closes."""
        try:
            while not should_stop():
                self._transport.enqueue(self.unroll())
        except (tf.errors.CancelledError, tf.errors.AbortedError,
                tf.errors.OutOfRangeError):
            pass  # The learner closed the queue: a normal end.

    def close(self):
        self._envs.close()


def run_actor(config, task, agent, transport, should_stop=lambda: False,
              make_environments=env_batch.make):
    """Every actor's entry point: act and send until the learner is done.

    Args:
      config: `ActorConfig`.
      task: this actor's index.
      agent: `build_agent(config)` (its variables' specs made `transport`).
      transport: a `transport.ActorTransport`; closed on return.
      should_stop: callable() -> bool, checked before each unroll.
      make_environments: `envs.batch.make` or a callable with its signature
        (the supervisor passes `watchdog.guarded(envs.batch.make, heartbeat)`).

    Returns the agent steps acted (int) once the learner closed its queue or
    `should_stop()`; raises what the environments or transport raise
    otherwise.
    """
    actor = None
    try:
        actor = Actor(config, task, agent, transport, make_environments)
        actor.run(should_stop)
        return actor.frames
    finally:
        if actor is not None:
            actor.close()
        transport.close()


def _set_up_process(config):
    """An actor process's TensorFlow settings, before its first op: one
    thread each (one actor process per CPU) and `config.precision` for
    its inference (`precision`, resolved for this machine's CPU)."""
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    precision_lib.apply(precision_lib.resolve(config.precision)[0])


def run_local_actor(config, task, learner_address, stop_event=None,
                    connect_timeout_s=120.0, slots=None, weights=None,
                    make_environments=env_batch.make):
    """An actor process spawned by the learner's supervisor.

    With `slots` (this actor's `shared_memory.SharedSlots`, or the
    trainer's `baselines.mode.ActorLinks` around them: then
    `baselines.mode.run_actor` acts as --architecture says) and `weights`
    (the learner's `shared_weights.SharedWeights`), everything goes through
    shared memory: no network at all. Otherwise trajectories go into the
    learner's gRPC queue and weights come from it, at `learner_address`.
    Returns when the learner closes its queue (is done) or `stop_event` is
    set; raises `tf.errors.UnavailableError` if a gRPC learner cannot be
    reached within `connect_timeout_s`.
    """
    _set_up_process(config)
    agent = build_agent(config)
    if (slots is None) != (weights is None):
        raise ValueError("shared-memory actors need both slots and weights")
    from impala_tf.runtime.baselines import mode  # pylint: disable=g-import-not-at-top
    if isinstance(slots, mode.ActorLinks):  # The trainer's: --architecture.
        mode.run_actor(config, task, agent, slots, weights,
                       (stop_event.is_set if stop_event is not None
                        else lambda: False), make_environments)
        return
    if slots is not None:
        transport = shared_memory.SlotSender(
            slots, shared_weights.WeightReader(weights))
    else:
        transport = grpc.ActorClient(
            learner_address, trajectory_spec(config, agent),
            policy_lib.variable_specs(agent), config.queue_capacity,
            connect_timeout_s=connect_timeout_s)
    run_actor(config, task, agent, transport,
              should_stop=(stop_event.is_set if stop_event is not None
                           else lambda: False),
              make_environments=make_environments)


def run_remote_actor(config, task, address, learner_task=0,
                     job=grpc.LEARNER_JOB, connect_timeout_s=300.0,
                     log=print):
    """An actor on any machine (`--job_name=actor`) until the learner is done.

    Connects (retrying for `connect_timeout_s` while the learner is not up),
    acts and enqueues, and returns once the learner closed its queue. If the
    learner vanishes without closing it (killed, restarted), reconnects for
    up to `connect_timeout_s` more and returns if it does not come back
    (`reconnecting.ReconnectingClient`). Raises `tf.errors.UnavailableError`
    if the first connection fails, and `tf.errors.InvalidArgumentError` if
    this actor's flags (agent, level, unroll length, queue capacity) do not
    match the learner's.
    """
    _set_up_process(config)
    agent = build_agent(config)
    spec = trajectory_spec(config, agent)
    variable_specs = policy_lib.variable_specs(agent)

    def connect():
        return grpc.ActorClient(
            address, spec, variable_specs, config.queue_capacity,
            connect_timeout_s=connect_timeout_s, task=learner_task, job=job,
            actor_id=task)

    transport = reconnecting.ReconnectingClient(
        connect, f"{address} (/job:{job}/task:{learner_task})",
        f"actor {task}", log=log)
    frames = run_actor(config, task, agent, transport)
    log(f"[impala] actor {task}: {frames:,} agent steps sent")
