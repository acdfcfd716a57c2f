"""Numeric precision of the learner's step and the actors' inference.

`--precision=float32|bfloat16|auto`. bfloat16 is mixed precision, not a
bfloat16 model: TensorFlow's oneDNN graph rewrite
(`auto_mixed_precision_onednn_bfloat16`) runs convolutions, matrix
products and the element-wise work between them in bfloat16, while the
variables (weights, RMSProp's mean squares), the optimizer update, and the
ops on its deny list (exp, log, softmax, sums and means: the V-trace and
loss reductions) stay float32. The rewrite happens when a `tf.function` is
first run, so checkpoints and exported SavedModels hold float32 graphs and
weights whatever the precision.

`auto` would pick bfloat16 where the CPU has native bfloat16 arithmetic
(`amx_bf16` or `avx512_bf16` in /proc/cpuinfo) once bfloat16 is shown to
learn as float32 does (BFLOAT16_LEARNS); until then it picks float32
everywhere and says why: on Pong with configs/pong_fast.cfg, one of
bfloat16's two seeds did not reach +18 by 20M frames, where all six
float32 seeds did (docs/LEARNING.md). It picks float32 where a GPU is
visible (the rewrite is a CPU one). Each process resolves `auto` for its
own CPU: remote actors may run on other machines.

How close the update stays to float32 is measured by
tests/test_precision.py (one fixed batch, the weights' change against
float32's); how much faster, by `benchmarks.learner_speed --precision`.
"""

PRECISIONS = ("auto", "float32", "bfloat16")
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# Whether `auto` picks bfloat16 on CPUs that have it: not until bfloat16
# reaches float32's Pong milestones within their seed-to-seed spread
# (docs/LEARNING.md).
BFLOAT16_LEARNS = False


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The set of CPU feature flags of the first processor in `cpuinfo`
    (empty where it cannot be read)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve(requested, flags=None, gpu_visible=False,
            bfloat16_learns=BFLOAT16_LEARNS):
    """(precision, reason): what `requested` means on this machine.

    requested: one of PRECISIONS. flags: the CPU's feature flags (default
    `cpu_flags()`). gpu_visible: whether TensorFlow sees a GPU.
    bfloat16_learns: whether `auto` may pick bfloat16. precision
    is "float32" or "bfloat16"; reason is a few words for the start-up
    line. Raises ValueError for an unknown name.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"--precision must be one of "
                         f"{', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested, f"--precision={requested}"
    if gpu_visible:
        return "float32", ("auto: a GPU is visible, and the bfloat16 "
                           "rewrite is a CPU one")
    flags = cpu_flags() if flags is None else set(flags)
    native = [f for f in BFLOAT16_CPU_FLAGS if f in flags]
    if native and bfloat16_learns:
        return "bfloat16", f"auto: the CPU has {' and '.join(native)}"
    if native:
        return "float32", (f"auto: the CPU has {' and '.join(native)}, but "
                           "bfloat16 has not yet learned Pong as float32 "
                           "does (docs/LEARNING.md); --precision=bfloat16 "
                           "uses it")
    return "float32", ("auto: the CPU has no native bfloat16 "
                       f"({' or '.join(BFLOAT16_CPU_FLAGS)})")


def apply(precision):
    """Makes this process's `tf.function`s run in `precision` ("float32"
    or "bfloat16"). Call it before the first `tf.function` runs: the
    rewrite is decided when a function is instantiated."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from impala_tf.agents import torsos  # pylint: disable=import-outside-toplevel
    tf.config.optimizer.set_experimental_options(
        {torsos.ONEDNN_BFLOAT16_REWRITE: precision == "bfloat16"})


def line(precision, reason):
    """The start-up line saying which precision and why."""
    what = ("bfloat16 mixed precision (weights, optimizer and loss sums "
            "float32)" if precision == "bfloat16" else "float32")
    return f"[impala] precision: {what} ({reason})"
