"""The configuration of a run: the one place where a default is written.

`TrainConfig` (the learner process) holds an `ActorConfig` and a
`LearnerConfig`. A field with a default here gives the command-line flag of
the same name its default (`experiment.py` reads it with `field_default`);
a field without one is filled from the level's suite (`envs.registry`) or
from other flags. Plain Python, no TensorFlow: the flags are defined and
checked before TensorFlow loads.
"""

import dataclasses
import typing


def field_default(cls, name):
    """The default of dataclass `cls`'s field `name` (KeyError if it has
    none): what a flag of that name takes as its default."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """The update: batch, schedule, RMSProp, loss (paper Table G.1)."""
    batch_size: int
    unroll_length: int
    num_action_repeats: int
    total_environment_frames: int
    learning_rate: float
    epsilon: float
    entropy_cost: float
    reward_clipping: str
    max_grad_norm: float  # Global gradient-norm clip; 0: none.
    decay: float = 0.99
    momentum: float = 0.0
    baseline_cost: float = 0.5
    discounting: float = 0.99
    off_policy_correction: str = "vtrace"
    clip_rho_threshold: float = 1.0
    clip_pg_rho_threshold: float = 1.0
    clip_c_threshold: float = 1.0
    vtrace_lambda: float = 1.0
    # Frames over which the learning rate decays linearly to 0; None: over
    # `total_environment_frames`, as the release does. A run shorter than its
    # schedule (a 20M-frame run of the paper's 200M schedule) sets this.
    learning_rate_decay_frames: typing.Optional[int] = None
    # RMSProp's mean square at the start. 1 is TF1's `RMSPropOptimizer` (the
    # release's); 0 is Sonnet 2's and PyTorch's, whose first ~1,000 updates
    # are not shrunk by a mean square decaying from 1 (decay 0.99: 0.99^n).
    rmsprop_initial_mean_square: float = 1.0
    # Entropy-cost schedule (the paper and the release keep it constant):
    # from `entropy_cost_decay_start_frames` to
    # `entropy_cost_decay_end_frames` the entropy cost moves linearly from
    # `entropy_cost` to `final_entropy_cost`, then stays there. None: no
    # schedule. It starts from the (evolvable) entropy-cost variable and
    # ends at `final_entropy_cost` itself (`learner.current_entropy_cost`).
    final_entropy_cost: typing.Optional[float] = None
    entropy_cost_decay_start_frames: int = 0
    entropy_cost_decay_end_frames: typing.Optional[int] = None
    # Learner-side experience replay (paper Section 5.2.2, `replay.py`): the
    # share of each batch drawn from a FIFO buffer of `replay_capacity`
    # trajectories; 0 turns it off (the release has none; 0.5 and 10,000
    # are Table 2's).
    replay_proportion: float = 0.0
    replay_capacity: int = 10_000

    def __post_init__(self):
        check_entropy_schedule(self)

    @property
    def frames_per_trajectory(self):
        """Environment frames one fresh trajectory adds (T x repeats)."""
        return self.unroll_length * self.num_action_repeats


def check_entropy_schedule(c):
    """Raises ValueError (one sentence, in flag names) if the entropy-cost
    schedule of LearnerConfig `c` is incomplete or inconsistent."""
    start = c.entropy_cost_decay_start_frames
    end = c.entropy_cost_decay_end_frames
    if c.final_entropy_cost is None:
        if end is not None or start:
            raise ValueError("--entropy_cost_decay_start_frames and "
                             "--entropy_cost_decay_end_frames need "
                             "--final_entropy_cost")
        return
    if end is None:
        raise ValueError("--final_entropy_cost needs "
                         "--entropy_cost_decay_end_frames (the frame where "
                         "the entropy cost reaches it)")
    if start < 0 or end <= start:
        raise ValueError(f"--entropy_cost_decay_end_frames={end} must be "
                         "greater than --entropy_cost_decay_start_frames="
                         f"{start} (and that at least 0)")
    if c.final_entropy_cost < 0:
        raise ValueError(f"--final_entropy_cost={c.final_entropy_cost} must "
                         "be at least 0")


@dataclasses.dataclass(frozen=True)
class ActorConfig:
    """What an actor process needs to act (local or remote)."""
    level_set: typing.Any  # envs.registry.LevelSet
    agent: typing.Any  # agents.AgentConfig
    observation_spec: typing.Dict[str, typing.Any]  # name -> tf.TensorSpec
    unroll_length: int
    envs_per_actor: int
    queue_capacity: int
    seed: int = 1
    # Atari only: step the actor's games as one `atari_vector.AtariBatch`
    # (batched preprocessing, same semantics); other suites ignore it.
    vector_env: bool = True
    # A remote actor (--job_name=actor): seconds to keep retrying to reach
    # the learner.
    connect_timeout_s: float = 300.0
    # Numeric precision of every process of the run, the learner's step and
    # the actors' inference (`precision`): "float32", "bfloat16" (mixed) or
    # "auto" (bfloat16 where the CPU has it). float32 by default until
    # bfloat16 is shown to learn as float32 does (docs/LEARNING.md).
    precision: str = "float32"
    # How acting and learning are organised (`runtime.architectures`, the
    # paper's Table 1): "impala" (asynchronous actors, V-trace),
    # "a2c_sync_traj" (actors wait for the update after each unroll),
    # "a2c_sync_step" (one batched policy call per step for every
    # environment, each group of environments in its own process) or "a3c"
    # (each worker sends the gradient of its own unroll).
    architecture: str = "impala"


ARCHITECTURES = ("impala", "a2c_sync_traj", "a2c_sync_step", "a3c")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The learner process of a run (`trainer.train`)."""
    logdir: str
    actor: ActorConfig
    learner: LearnerConfig
    num_actors: int = 2
    learner_address: str = "localhost:0"  # "host:port"; port 0: a free one.
    spawn_actors: bool = True
    checkpoint_interval_s: float = 300.0
    log_interval_s: float = 10.0
    # Stop at the first progress record whose mean return over the last 100
    # episodes is at least this (`progress.reached_return`); None: train to
    # `total_environment_frames`.
    stop_at_return: typing.Optional[float] = None
    # XLA-compile the learner step; None: `learner.resolve_jit_compile`'s
    # default (on where a GPU is visible).
    jit_compile: typing.Optional[bool] = None
    prefetch: int = 1
    env_timeout_s: float = 120.0  # 0: no environment watchdog.
    # Synchronous learners: every learner's "host:port" (empty or one: a
    # single learner at learner_address) and this learner's index.
    learner_hosts: tuple = ()
    task: int = 0
    actor_timeout_s: float = 60.0  # Remote actor silent this long: gone.
    # How local actors and their learner talk: "shared_memory"
    # (`transport.shared_memory`: trajectories, weights and the end; the
    # learner then opens no network port) or "grpc" (the learner's queue
    # and weights, as remote actors use them).
    local_transport: str = "shared_memory"
    # A resumed run's evolvable hyperparameters (learning rate, entropy
    # cost, epsilon, gradient clip): "flags" sets them from the flags,
    # "checkpoint" keeps the checkpoint's (PBT members; `resume`).
    resume_hyperparameters: str = "flags"
    # Consent to start TensorFlow's gRPC server where a run needs one
    # (remote actors, synchronous learners, --local_transport=grpc): it has
    # no authentication and listens on every network interface.
    listen_on_all_interfaces: bool = False

    def __post_init__(self):
        check_architecture(self)

    @property
    def needs_server(self):
        """True unless every actor is a process this learner starts, on
        shared memory: then it starts no TF server and opens no port."""
        return not (self.spawn_actors and len(self.learner_hosts) <= 1
                    and self.local_transport == "shared_memory")


def check_listening(config):
    """Raises ValueError (one sentence, in flag names) if TrainConfig
    `config` needs TensorFlow's gRPC server and was not allowed to start
    it (`listen_on_all_interfaces`)."""
    if not config.needs_server or config.listen_on_all_interfaces:
        return
    why = ("--learner_hosts (synchronous learners)"
           if len(config.learner_hosts) > 1
           else "--job_name=learner (remote actors)"
           if not config.spawn_actors else "--local_transport=grpc")
    raise ValueError(
        f"{why} needs TensorFlow's gRPC server, which has no "
        "authentication and listens on every network interface whatever "
        "--learner_address says, so anyone who reaches its port can run "
        "code as this user; pass --listen_on_all_interfaces to start it "
        "anyway, on a private network only")


def check_architecture(config):
    """Raises ValueError (one sentence, in flag names) if TrainConfig
    `config`'s --architecture cannot run with its other settings: every
    architecture but impala runs its workers as local processes on shared
    memory, without replay; the synchronous ones train on every worker's
    unrolls at once (--batch_size = --num_actors x --envs_per_actor)."""
    arch = config.actor.architecture
    if arch not in ARCHITECTURES:
        raise ValueError(f"--architecture={arch} is not one of "
                         + ", ".join(ARCHITECTURES))
    if arch == "impala":
        return
    if config.needs_server:
        raise ValueError(f"--architecture={arch} runs local workers on "
                         "shared memory only (no --job_name, "
                         "--learner_hosts or --local_transport=grpc)")
    if config.learner.replay_proportion > 0:
        raise ValueError(f"--architecture={arch} trains on fresh unrolls "
                         "only; set --replay_proportion=0 (after any "
                         "flagfile that turns replay on)")
    envs = config.num_actors * config.actor.envs_per_actor
    if arch.startswith("a2c") and envs != config.learner.batch_size:
        raise ValueError(
            f"--architecture={arch} trains on every environment's unroll at "
            f"once, so --batch_size={config.learner.batch_size} must equal "
            f"--num_actors x --envs_per_actor = {config.num_actors} x "
            f"{config.actor.envs_per_actor} = {envs}")
