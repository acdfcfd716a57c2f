r"""Learning curve on Atari Pong: train for N frames, write CSV and PNG.

  python -m benchmarks.learning_pong --frames=20000000 \
      --logdir=logs/learning_pong --out=docs/learning_pong

Runs `python -m impala_tf.experiment` (paper defaults: shallow feed-forward
agent, batch 32, unroll 20, Table G.1 hyperparameters) inside a private
network namespace, so the learner's gRPC server is not exposed. Rerunning
with the same --logdir resumes. Then it reads `<logdir>/progress.jsonl` and
writes `<out>.csv` (env_frames, elapsed_s, fps, episode_return_mean) and
`<out>.png` (return against frames, with the frame rate on a second axis).
`--plot_only` skips training and redraws from the logdir. Extra trainer
flags go after `--`.
"""

import csv
import os
import subprocess
import sys

from absl import app
from absl import flags

from impala_tf import progress
from impala_tf import testing

flags.DEFINE_integer("frames", 10_000_000, "Frames to train for.")
flags.DEFINE_string("logdir", "logs/learning_pong", "Run directory.")
flags.DEFINE_string("out", "docs/learning_pong", "Output prefix (.csv/.png).")
flags.DEFINE_bool("plot_only", False, "Only redraw from --logdir.")
flags.DEFINE_integer("timeout_s", 0, "Stop training after this many seconds "
                     "(SIGTERM: clean stop with a checkpoint); 0: none.")
FLAGS = flags.FLAGS

REPO = testing.REPO


def train(extra):
    inner = [sys.executable, "-m", "impala_tf.experiment",
             "--level_name=atari/pong", f"--logdir={FLAGS.logdir}",
             f"--total_environment_frames={FLAGS.frames}"] + extra
    proc = subprocess.Popen(testing.isolated_command(inner), cwd=REPO)
    try:
        proc.wait(timeout=FLAGS.timeout_s or None)
    except subprocess.TimeoutExpired:
        proc.terminate()  # The trainer checkpoints and exits cleanly.
        proc.wait()
    return proc.returncode


def read_progress(logdir):
    return [(r["env_frames"], r.get("elapsed_s", 0.0), r["fps"],
             r.get("episode_return_mean"))
            for r in progress.read_records(logdir)]


def write_outputs(rows, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_frames", "elapsed_s", "fps", "episode_return_mean"])
        w.writerows(rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [(fr, ret) for fr, _, _, ret in rows if ret is not None]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if pts:
        ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], color="C0",
                label="mean return (last 100 episodes)")
    ax.set_xlabel("environment frames (millions)")
    ax.set_ylabel("episode return")
    ax.set_ylim(-21.5, 21.5)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot([r[0] / 1e6 for r in rows], [r[2] for r in rows], color="C1",
             alpha=0.35, label="frames/s")
    ax2.set_ylabel("frames/s")
    fig.legend(loc="upper left")
    ax.set_title("impala_tf on Pong: shallow feed-forward agent, paper "
                 "hyperparameters")
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=100)


def main(argv):
    extra = argv[1:]
    if not FLAGS.plot_only:
        code = train(extra)
        if code not in (0, -15):
            sys.exit(code)
    rows = read_progress(FLAGS.logdir)
    write_outputs(rows, FLAGS.out)
    last = [r for r in rows if r[3] is not None]
    print(f"{len(rows)} records; last: frames={rows[-1][0]:,} "
          f"return={last[-1][3] if last else None} "
          f"mean fps={sum(r[2] for r in rows) / len(rows):,.0f}")
    print(f"wrote {FLAGS.out}.csv and {FLAGS.out}.png")


if __name__ == "__main__":
    app.run(main)
