"""The trainer's command-line flags, defined by a function.

`define_train_flags(flag_values)` defines every flag of `python -m
impala_tf.cli.experiment` (`impala-tf train|test|export`) in an absl
`FlagValues`; importing this module defines none. Each entry point calls it
for the flags it needs: the trainer, population-based training (whose
members are trainers), the sweeps that pass trainer flags on (ablation,
learning curve). `train_config.build(flag_values)` turns the parsed values
into the run's `config.TrainConfig`.

A flag named like a config field takes its default from the field
(`config.field_default`, the one place a default is written); None where
the level's suite sets it (`envs.registry`). Flags keep the official
release's names.
"""

import functools

from absl import flags

from impala_tf import config as config_lib

_TRAIN = functools.partial(config_lib.field_default, config_lib.TrainConfig)
_ACTOR = functools.partial(config_lib.field_default, config_lib.ActorConfig)
_LEARNER = functools.partial(config_lib.field_default,
                             config_lib.LearnerConfig)


def define_train_flags(flag_values=flags.FLAGS):
    """Defines the trainer's flags in `flag_values` (absl `FlagValues`;
    default: absl's global FLAGS) and returns it. Defining them twice in
    the same `FlagValues` is an error (absl's DuplicateFlagError)."""
    enum = functools.partial(flags.DEFINE_enum, flag_values=flag_values)
    string = functools.partial(flags.DEFINE_string, flag_values=flag_values)
    integer = functools.partial(flags.DEFINE_integer,
                                flag_values=flag_values)
    boolean = functools.partial(flags.DEFINE_bool, flag_values=flag_values)
    real = functools.partial(flags.DEFINE_float, flag_values=flag_values)

    # What and where.
    enum("mode", "train", ["train", "test", "export"],
         "Train, evaluate the latest checkpoint, or export a "
         "SavedModel.")
    string("level_name", "atari/pong",
           "atari/<game>, atari57, dmlab/<level>, a DMLab-30 level, "
           "dmlab30, or MODULE:FUNCTION returning a dm_env.")
    string("logdir", None,
           "Run directory (default: logs/<level_name>).")
    integer("seed", _ACTOR("seed"),
            "Random seed of environments and actors.")
    # Agent.
    enum("agent", None, ["shallow", "deep"],
         "Network torso (default: shallow for Atari, deep for "
         "DMLab).")
    boolean("use_lstm", None,
            "LSTM core (default: off for Atari, on otherwise).")
    # Actors.
    integer("num_actors", _TRAIN("num_actors"), "Actor processes.",
            lower_bound=0)
    integer("envs_per_actor", None,
            "Environments stepped together by each actor, one "
            "batched inference per step (default: the suite's, "
            "envs/registry.py: Atari 64, MODULE:FUNCTION 32, "
            "DMLab 1).",
            lower_bound=1)
    boolean("vector_env", _ACTOR("vector_env"),
            "Atari: an actor steps its games as one batch with batched "
            "preprocessing (envs/atari_vector.py, same semantics).")
    integer("unroll_length", None, "Unroll length T.",
            lower_bound=1)
    integer("num_action_repeats", None, "Frames per agent step.",
            lower_bound=1)
    integer("queue_capacity", None,
            "Trajectory queue capacity (default: batch_size; the "
            "release used 1).", lower_bound=1)
    string("learner_address", _TRAIN("learner_address"),
           "host:port the learner serves on (port 0: pick one).")
    # Roles on a cluster (docs/DISTRIBUTED.md).
    enum("job_name", "", ["", "learner", "actor"],
         "Empty: one learner process that spawns --num_actors local "
         "actors. learner: serve on --learner_address (or the "
         "--task-th of --learner_hosts) and wait for remote actors. "
         "actor: act for the learner at --learner_address (or the "
         "(--task % K)-th of --learner_hosts) until it is done.")
    integer("task", _TRAIN("task"),
            "Index of this learner (in --learner_hosts) or actor "
            "(seeds, levels).", lower_bound=0)
    string("learner_hosts", "",
           "Synchronous learners: host:port,host:port,... (the same "
           "list for every learner and actor).")
    boolean("listen_on_all_interfaces",
            _TRAIN("listen_on_all_interfaces"),
            "Allow a learner that serves gRPC (--job_name=learner, "
            "--learner_hosts, --local_transport=grpc) to start "
            "TensorFlow's server: it has no authentication and listens "
            "on every network interface, so use it on a private "
            "network only. A learner whose actors are all local opens "
            "no port and needs no such flag.")
    real("connect_timeout_s", _ACTOR("connect_timeout_s"),
         "Actor: seconds to keep retrying to reach the learner.",
         lower_bound=1.0)
    real("actor_timeout_s", _TRAIN("actor_timeout_s"),
         "Learner: a remote actor silent this long counts as gone.",
         lower_bound=1.0)
    # Learner.
    integer("batch_size", None, "Unrolls per learner batch.",
            lower_bound=1)
    integer("total_environment_frames", None,
            "Frames to train for (learning rate reaches 0 there).",
            lower_bound=1)
    integer("learning_rate_decay_frames",
            _LEARNER("learning_rate_decay_frames"),
            "Frames over which the learning rate decays linearly to "
            "0 (default: --total_environment_frames, as the "
            "release). Lets a short run keep a long schedule.",
            lower_bound=1)
    real("learning_rate", None, "RMSProp learning rate.",
         lower_bound=0.0)
    real("decay", _LEARNER("decay"), "RMSProp decay.",
         lower_bound=0.0, upper_bound=1.0)
    real("momentum", _LEARNER("momentum"), "RMSProp momentum.",
         lower_bound=0.0, upper_bound=1.0)
    real("epsilon", None, "RMSProp epsilon (inside the root).",
         lower_bound=0.0)
    real("rmsprop_initial_mean_square",
         _LEARNER("rmsprop_initial_mean_square"),
         "RMSProp's mean square at the start: 1 as TF1 (the "
         "release), 0 as Sonnet 2 and PyTorch.", lower_bound=0.0)
    real("replay_proportion", _LEARNER("replay_proportion"),
         "Share of each batch replayed from the learner's buffer "
         "(0: off; 0.5 in the paper's Table 2).", lower_bound=0.0,
         upper_bound=0.99)
    integer("replay_capacity", _LEARNER("replay_capacity"),
            "Trajectories the replay buffer holds (FIFO).",
            lower_bound=1)
    real("entropy_cost", None, "Entropy cost.", lower_bound=0.0)
    real("final_entropy_cost", _LEARNER("final_entropy_cost"),
         "Entropy cost reached at --entropy_cost_decay_end_frames, "
         "linearly from --entropy_cost (default: no schedule).",
         lower_bound=0.0)
    integer("entropy_cost_decay_start_frames",
            _LEARNER("entropy_cost_decay_start_frames"),
            "Frame where the entropy-cost schedule starts.",
            lower_bound=0)
    integer("entropy_cost_decay_end_frames",
            _LEARNER("entropy_cost_decay_end_frames"),
            "Frame where it reaches --final_entropy_cost.",
            lower_bound=1)
    real("baseline_cost", _LEARNER("baseline_cost"),
         "Baseline cost.", lower_bound=0.0)
    real("discounting", _LEARNER("discounting"), "Discount factor.",
         lower_bound=0.0, upper_bound=1.0)
    enum("reward_clipping", None,
         ["abs_one", "soft_asymmetric", "none"],
         "Reward clipping (default: abs_one; soft_asymmetric for "
         "dmlab30).")
    real("max_grad_norm", None,
         "Global gradient-norm clip, 0: none (default: 40 as Table G.1; 0 "
         "on DeepMind Lab, as the release).", lower_bound=0.0)
    enum("off_policy_correction",
         _LEARNER("off_policy_correction"),
         ["vtrace", "1step_is", "epsilon", "none"],
         "Off-policy correction (paper Table 2).")
    real("clip_rho_threshold", _LEARNER("clip_rho_threshold"),
         "V-trace rho-bar.")
    real("clip_pg_rho_threshold",
         _LEARNER("clip_pg_rho_threshold"),
         "V-trace policy-gradient rho-bar.")
    real("clip_c_threshold", _LEARNER("clip_c_threshold"),
         "V-trace c-bar.")
    real("vtrace_lambda", _LEARNER("vtrace_lambda"),
         "V-trace lambda.", lower_bound=0.0, upper_bound=1.0)
    boolean("jit_compile", _TRAIN("jit_compile"),
            "XLA-compile the learner step (default: on where the "
            "learner sees a GPU, off on CPU, where it is 2.25x slower; "
            "off for text observations, which XLA cannot compile).")
    integer("learner_threads", None,
            "TensorFlow intra- and inter-op threads of the learner "
            "process. Default: the CPUs the local actor processes "
            "leave free, at least 1 (a learner with only remote "
            "actors: every CPU).", lower_bound=1)
    enum("local_transport", _TRAIN("local_transport"),
         ["shared_memory", "grpc"],
         "How actor processes started by the learner exchange "
         "trajectories and weights with it: shared memory (one copy "
         "each side, no network port) or the learner's gRPC queue "
         "and weights, as remote actors do (needs "
         "--listen_on_all_interfaces).")
    enum("resume_hyperparameters",
         _TRAIN("resume_hyperparameters"), ["flags", "checkpoint"],
         "A resumed run's learning rate, entropy cost, epsilon and "
         "gradient clip: the flags' (one line names each that "
         "differs from the checkpoint's) or the checkpoint's "
         "(population-based training's members).")
    enum("precision", _ACTOR("precision"),
         ["float32", "bfloat16", "auto"],
         "Numeric precision of the learner's step and the actors' "
         "inference: bfloat16 is mixed precision (weights, "
         "optimizer and loss sums stay float32); auto picks it "
         "where the CPU has amx_bf16 or avx512_bf16.")
    real("checkpoint_interval_s",
         _TRAIN("checkpoint_interval_s"),
         "Seconds between checkpoints.", lower_bound=1.0)
    real("log_interval_s", _TRAIN("log_interval_s"),
         "Seconds between progress lines.", lower_bound=0.1)
    real("stop_at_return", _TRAIN("stop_at_return"),
         "Stop (checkpoint, exit 0) at the first progress line whose mean "
         "return over the last 100 episodes is at least this, e.g. 18 on "
         "Pong; default: train to --total_environment_frames.")
    real("env_timeout_s", _TRAIN("env_timeout_s"),
         "Restart an actor whose environment step or reset takes "
         "longer (its first reset may take 10x; 0: never).",
         lower_bound=0.0)
    enum("architecture", _ACTOR("architecture"),
         list(config_lib.ARCHITECTURES),
         "How acting and learning are organised (paper Table 1, "
         "docs/TABLE1.md): impala; a2c_sync_traj (actors wait for "
         "the update after each unroll; --batch_size = "
         "--num_actors x --envs_per_actor); a2c_sync_step (one "
         "policy call per step for all environments, each actor's "
         "environments in their own process); a3c (each actor "
         "sends the gradient of its own unroll).")
    # Environments.
    real("sticky_action_prob", 0.0,
         "Atari sticky-action probability (0 in the paper).",
         lower_bound=0.0, upper_bound=1.0)
    string("level_cache_dir", None, "DMLab level cache directory.")
    string("dataset_path", None, "DMLab datasetPath.")
    # Test and export.
    integer("test_num_episodes", 10, "Episodes per level in test.",
            lower_bound=1)
    string("test_output", None,
           "CSV of test scores (default: <logdir>/test_scores.csv)."
           )
    string("export_dir", None,
           "SavedModel directory (default: <logdir>/saved_model).")
    return flag_values


def names():
    """The names of the trainer's flags, in definition order."""
    return list(define_train_flags(flags.FlagValues()))
