"""Training progress: progress.jsonl, TensorBoard summaries, console line.

`ProgressLogger.add(out)` takes the numpy results of one learner step
(`Learner.train_step`); every `interval_s` it writes one JSON object per line
to `<logdir>/progress.jsonl` (at least `env_frames`, `learner_steps`,
`wall_time`, `fps`, `episode_return_mean`; with replay on, the buffer and
the rho of fresh vs replayed trajectories: `ReplayStats`; episodes count
only from fresh trajectories), the same scalars to TensorBoard
(`<logdir>/train`), and a one-line summary to the console. Its returns
are over an `EpisodeWindows` (the last 100 episodes), which a run's
checkpoints hold so that a resumed run's records go on from it.

`read_records(logdir)` reads the file back (tests, benchmarks, tools), even
while a run appends to it; `repair(logdir)` drops the half-written last line
a killed run may leave. Reading needs no TensorFlow.
"""

import collections
import json
import os
import sys
import time

import numpy as np

FILENAME = "progress.jsonl"


# Finished episodes behind `episode_return_mean`.
RETURN_WINDOW = 100


def reached_return(record, target, window=RETURN_WINDOW):
    """Whether progress `record`'s mean return over its last `window`
    episodes is at least `target`, with that many episodes finished (a
    window not yet full never counts). False for a None record or
    target."""
    if record is None or target is None:
        return False
    mean = record.get("episode_return_mean")
    return (mean is not None and record.get("episodes", 0) >= window
            and mean >= target)


def path(logdir):
    """`<logdir>/progress.jsonl`."""
    return os.path.join(logdir, FILENAME)


def read_records(logdir, strict=False):
    """The records of `<logdir>/progress.jsonl`, oldest first (dicts).

    [] if there is no file yet. A last line without its newline is one
    being written (or cut by a kill): skipped, or with `strict` a
    ValueError. A complete line that is not JSON raises ValueError.
    """
    try:
        with open(path(logdir)) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    if lines[-1] and strict:
        raise ValueError(f"{path(logdir)} ends with a half-written line")
    out = []
    for number, line in enumerate(lines[:-1], 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path(logdir)} line {number} is not "
                                 f"JSON: {line[:80]!r}") from None
    return out


def repair(logdir):
    """Drops a half-written last line of progress.jsonl (a killed run)."""
    try:
        with open(path(logdir), "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass

_LOSS_KEYS = ("total_loss", "policy_gradient_loss", "baseline_loss",
              "entropy_loss", "mean_rho", "mean_clipped_rho", "mean_vs",
              "grad_norm", "learning_rate", "entropy_cost")


def _fmt_duration(seconds):
    if not np.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def fresh_mask(out):
    """bool [B]: the trajectories of a learner step's batch (`out`, its
    numpy results) that came from the actors, not from replay."""
    if "replayed" not in out:
        return np.ones(np.shape(out["level_id"]), bool)
    return ~np.asarray(out["replayed"], bool)


def finished_episodes(out):
    """[(level id, return, agent steps)] of the games that ended in a
    learner step's batch (`out`: 'game_over', 'episode_return',
    'episode_step' [T, B], 'level_id' [B], optional 'replayed' [B]).
    Episodes count once: when their trajectory arrives fresh."""
    t_idx, b_idx = np.nonzero(np.asarray(out["game_over"], bool)
                              & fresh_mask(out)[None, :])
    return [(int(out["level_id"][b]), float(out["episode_return"][t, b]),
             int(out["episode_step"][t, b])) for t, b in zip(t_idx, b_idx)]


class EpisodeWindows:
    """The returns of the last `window` finished episodes, over all levels
    and per level, and how many episodes finished: what a progress record's
    means and `episodes` are over.

    A run's checkpoints hold it (`state`, `load`; `checkpoints.Checkpoints`),
    so a resumed run's means go on from the games before the stop instead
    of restarting from its first, shortest, games.

    Args:
      level_names: the level set's names (per-level windows).
      window: episodes per window (`RETURN_WINDOW`).
    """

    def __init__(self, level_names, window=RETURN_WINDOW):
        self._window = window
        self._all = collections.deque(maxlen=window)
        self._per_level = {n: collections.deque(maxlen=window)
                           for n in level_names}
        self.episodes = 0

    def add(self, level, episode_return):
        """One finished episode of `level` (a name of the level set)."""
        self._all.append(float(episode_return))
        self._per_level[level].append(float(episode_return))
        self.episodes += 1

    def size(self):
        """How many returns the overall window holds (at most `window`)."""
        return len(self._all)

    def mean(self):
        """The mean return of the window, or None before any episode."""
        return float(np.mean(self._all)) if self._all else None

    def level_means(self):
        """{level: mean return of its window}, levels with an episode."""
        return {n: float(np.mean(d)) for n, d in self._per_level.items()
                if d}

    def state(self):
        """A JSON-serialisable dict of everything (`load` takes it)."""
        return {"episodes": self.episodes, "returns": list(self._all),
                "per_level": {n: list(d) for n, d in
                              self._per_level.items()}}

    def load(self, state):
        """Replaces the contents with `state` (from `state`); a level that
        is not in this level set is ignored, and each window keeps its
        last `window` returns."""
        self.episodes = int(state["episodes"])
        self._all = collections.deque(state["returns"], maxlen=self._window)
        for name, returns in state["per_level"].items():
            if name in self._per_level:
                self._per_level[name] = collections.deque(
                    returns, maxlen=self._window)


class ReplayStats:
    """The replay fields of a record, over the steps since the last one.

    replay_size and replay_bytes: the buffer at the last step;
    replayed_fraction: replayed trajectories / all trained on;
    mean_rho_{fresh,replayed} and mean_clipped_rho_{fresh,replayed}: the
    mean of pi/mu (and of min(rho-bar, pi/mu)) over the fresh and over the
    replayed trajectories (None without any). Fresh data is nearly
    on-policy (rho = 1 but for the policy lag); replayed data was acted by
    older weights, so its clipped rho falls below 1: V-trace at work.
    """

    def __init__(self):
        self._last = None
        self._fields = {}
        self._sums = collections.defaultdict(float)

    def add(self, out, fresh):
        """One step's outputs (with 'replayed', 'replay_size',
        'replay_bytes') and its fresh mask (bool [B])."""
        self._last = (int(out["replay_size"]), int(out["replay_bytes"]))
        self._sums["items"] += fresh.size
        self._sums["replayed"] += int((~fresh).sum())
        for kind, mask in (("fresh", fresh), ("replayed", ~fresh)):
            self._sums[f"n_{kind}"] += int(mask.sum())
            for key in ("rho", "clipped_rho"):
                values = out.get(f"{key}_per_trajectory")
                if values is not None:
                    self._sums[f"{key}_{kind}"] += float(
                        np.sum(np.asarray(values)[mask]))

    def record(self):
        """The fields for a record ({} if no replay step came); resets."""
        if self._last is None:
            return {}
        s = self._sums
        if not s["items"]:  # No step since the last record: repeat it.
            return dict(self._fields)
        fields = {"replay_size": self._last[0],
                  "replay_bytes": self._last[1],
                  "replayed_fraction": (s["replayed"] / s["items"]
                                        if s["items"] else None)}
        for kind in ("fresh", "replayed"):
            n = s[f"n_{kind}"]
            for key in ("rho", "clipped_rho"):
                fields[f"mean_{key}_{kind}"] = (s[f"{key}_{kind}"] / n
                                                if n else None)
        self._sums.clear()
        self._fields = fields
        return fields


class ProgressLogger:
    """Aggregates learner steps and writes them out every `interval_s`.

    Args:
      logdir: run directory.
      level_names: names of the level set (per-level statistics).
      num_action_repeats: frames per agent step (episode lengths in frames).
      total_frames: the frame target (for the ETA).
      interval_s: seconds between log lines.
      console: stream for the live line (None: no console output).
      extra: callable returning a dict merged into each record (e.g. actor
        counts from the supervisor).
      window: episodes behind each mean (a new `EpisodeWindows`).
      suite_scores: callable({level: mean return}) -> dict merged into each
        record (e.g. the running DMLab-30 score, `LevelSet.suite_scores`).
      episodes: the `EpisodeWindows` to add to (a resumed run's, restored
        from its checkpoint) instead of a new one.
    """

    def __init__(self, logdir, level_names, num_action_repeats,
                 total_frames, interval_s=10.0, console=sys.stdout,
                 extra=None, window=RETURN_WINDOW, suite_scores=None,
                 episodes=None):
        self._suite_scores = suite_scores or (lambda means: {})
        # Imported here, not above: reading needs no TensorFlow.
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        self._path = path(logdir)
        self._writer = tf.summary.create_file_writer(
            os.path.join(logdir, "train"))
        self._levels = list(level_names)
        self._repeats = num_action_repeats
        self._total = total_frames
        self._interval = interval_s
        self._console = console
        self._extra = extra or (lambda: {})
        self._start = time.time()
        self._last_time = None
        self._last_frames = None
        self._first = None  # (time, frames) at the first step added.
        self._last_losses = {}
        self._episodes = (episodes if episodes is not None
                          else EpisodeWindows(self._levels, window))
        self._episodes_since = []
        self._losses = collections.defaultdict(list)
        self._lags = []
        self._replay = ReplayStats()
        self._frames = 0
        self._steps = 0
        self.last_record = None

    @property
    def episodes(self):
        """Episodes finished in the run (before a resume too)."""
        return self._episodes.episodes

    def add(self, out):
        """Adds one step's numpy outputs (dict from `Learner.train_step`)."""
        self._frames = int(out["num_frames"])
        self._steps = int(out["num_steps"])
        if self._last_time is None:
            self._last_time, self._last_frames = time.time(), self._frames
            self._first = (self._last_time, self._frames)
        for k in _LOSS_KEYS:
            if k in out:
                self._losses[k].append(float(out[k]))
        fresh = fresh_mask(out)
        if fresh.any():
            self._lags.append(float(np.mean(out["policy_lag"][fresh])))
        if "replay_size" in out:
            self._replay.add(out, fresh)
        self._nonfinite = int(out["nonfinite_skips"])
        for level_id, ret, steps in finished_episodes(out):
            level = self._levels[level_id]
            length = steps * self._repeats
            self._episodes.add(level, ret)
            self._episodes_since.append((level, ret, length))

    def due(self):
        return (self._last_time is not None
                and time.time() - self._last_time >= self._interval)

    def log(self, final=False):
        """Writes one record now; returns it (dict).

        final: the run's last record (at a clean stop), whose console line
        gives the run's figures: frames/s since the first step and the
        latest losses, even if no step came since the last record. If no
        frames came since the last record, its fps is that record's (the
        rate over the last interval that had one), not 0.
        """
        now = time.time()
        if self._last_time is None:
            self._last_time, self._last_frames = now, self._frames
        dt = max(now - self._last_time, 1e-6)
        fps = (self._frames - self._last_frames) / dt
        if (final and self._frames == self._last_frames
                and self.last_record is not None):
            fps = self.last_record["fps"]
        record = {
            "env_frames": self._frames,
            "learner_steps": self._steps,
            "wall_time": now,
            "elapsed_s": now - self._start,
            "fps": fps,
            "episodes": self.episodes,
            "episode_return_mean": self._episodes.mean(),
            "episodes_in_interval": len(self._episodes_since),
            "policy_lag_mean": (float(np.mean(self._lags))
                                if self._lags else None),
            "nonfinite_skips": getattr(self, "_nonfinite", 0),
        }
        if self._losses:
            self._last_losses = {k: float(np.mean(v))
                                 for k, v in self._losses.items()}
            record.update(self._last_losses)
        elif final:
            record.update(self._last_losses)
        record.update(self._replay.record())
        if len(self._levels) > 1:
            means = self._episodes.level_means()
            record["episode_return_per_level"] = means
            record.update(self._suite_scores(means))
        record.update(self._extra())
        with open(self._path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self._summaries(record)
        if self._console is not None:
            line = record
            if final and self._first is not None:
                run_s = max(now - self._first[0], 1e-6)
                line = dict(record,
                            fps=(self._frames - self._first[1]) / run_s)
            self._console.write(self._line(line, final) + "\n")
            self._console.flush()
        self._last_time, self._last_frames = now, self._frames
        self._losses.clear()
        self._lags.clear()
        self._episodes_since.clear()
        self.last_record = record
        return record

    def _summaries(self, record):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        step = record["env_frames"]
        with self._writer.as_default():
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "wall_time":
                    tf.summary.scalar(k, v, step=step)
            for level, ret, length in self._episodes_since:
                tf.summary.scalar(f"episode_return/{level}", ret, step=step)
                tf.summary.scalar(f"episode_frames/{level}", length,
                                  step=step)
        self._writer.flush()

    def _line(self, r, final=False):
        ret = r["episode_return_mean"]
        eta = (max(0, self._total - r["env_frames"]) / r["fps"]
               if r["fps"] > 0 else float("inf"))
        pct = 100.0 * r["env_frames"] / max(self._total, 1)
        rate = "frames/s over the run" if final else "frames/s"
        return (f"[impala] frames {r['env_frames']:,} ({pct:.1f}%) | "
                f"{r['fps']:,.0f} {rate} | steps {r['learner_steps']:,} | "
                f"return {('%.2f' % ret) if ret is not None else '-'} "
                f"({r['episodes']} episodes) | "
                f"loss {r.get('total_loss', float('nan')):.3g} | "
                f"ETA {_fmt_duration(eta)}")

    def close(self):
        self._writer.close()
