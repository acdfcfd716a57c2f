r"""Table 4 in one command: test every game's run, gather the scores, report.

    impala-tf atari57 evaluate --logdir=logs/atari57_shallow \
        [--flagfile=configs/atari_shallow_expert.cfg] [trainer flags...]

(``python -m atari57.evaluate`` takes the same flags.) The experts of the
paper's Table 4 are one run per game; this command expects game G's run in
``<logdir>/<G>`` (trained with ``impala-tf train --level_name=atari/<G>
--logdir=<logdir>/<G>``). For each game of ``--games`` (default: all 57) in
turn it runs the trainer's test mode on that run's latest checkpoint::

    python -m impala_tf.cli.experiment --mode=test [trainer flags...] \
        --level_name=atari/<G> --logdir=<logdir>/<G> \
        --test_num_episodes=<N> --test_output=<logdir>/<G>/test_scores.csv

(N = ``--test_num_episodes``, 200 as the paper), skipping a game whose
``test_scores.csv`` already holds N episodes, so rerunning resumes. Then it
gathers every game's ``test_scores.csv`` into one file, ``--out`` (default
``<logdir>/atari57_scores.csv``, the header once), and writes the report of
:mod:`atari57.report` to stdout and to ``<out without .csv>.md`` (markdown),
with ``--plot`` a PNG too.

``--multitask``: one multi-task agent (``--level_name=atari57``) in
``<logdir>`` itself, tested once on all 57 games.

On a cluster, ``--print_commands`` prints each game's test command, one per
line (game K on line K+1), and runs nothing; once they are done,
``--gather_only`` gathers and reports without running anything.

Trainer flags (a ``--flagfile``, ``--agent``, ...) are passed to every test
command unchanged; give the ones the runs were trained with. The flags this
command sets per game (``--mode``, ``--level_name``, ``--logdir``,
``--test_output``) are refused. A game whose test fails is named and the
others go on; the exit status is then 1. Bad input: one ``error:``
sentence, exit status 2.
"""

import argparse
import csv
import os
import shlex
import signal
import sys
from typing import Callable, List, Sequence, Tuple

from atari57 import evaluation
from atari57 import games as games_lib
from atari57 import report
from impala_tf import errors

TRAINER_MODULE = "impala_tf.cli.experiment"
COLUMNS = ("game", "score", "episode", "frames")  # `impala-tf test`'s CSV.
SET_PER_RUN = ("--mode", "--level_name", "--logdir", "--test_output",
               "--test_num_episodes")

# (name, command line, the CSV it writes)
Run = Tuple[str, List[str], str]


UsageError = errors.UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is a UsageError (one sentence)."""

    def error(self, message):
        raise UsageError(message)


def parse_args(argv: Sequence[str]):
    """Returns (this command's namespace, trainer flags to pass on).
    `--help` (or `--helpfull`) prints the usage and exits with status 0."""
    parser = _Parser(
        prog="impala-tf atari57 evaluate", allow_abbrev=False,
        description=__doc__.split("\n\n")[0],
        epilog="Any other --flag goes to every test command (see "
               "impala-tf test --help).")
    parser.add_argument("--logdir", required=True,
                        help="directory of the runs: game G's in "
                             "<logdir>/<G> (with --multitask: the run)")
    parser.add_argument("--games", default=",".join(games_lib.ALL_GAMES),
                        help="comma-separated games (default: all 57)")
    parser.add_argument("--multitask", action="store_true",
                        help="one multi-task agent (--level_name=atari57) "
                             "in --logdir, tested on all 57 games")
    parser.add_argument("--test_num_episodes", type=int,
                        default=evaluation.EVALUATION_EPISODES,
                        help="episodes per game (default: the paper's 200)")
    parser.add_argument("--print_commands", action="store_true",
                        help="only print each game's test command, one per "
                             "line")
    parser.add_argument("--gather_only", action="store_true",
                        help="run nothing; gather the test_scores.csv files "
                             "and report")
    parser.add_argument("--out", default=None,
                        help="the gathered CSV (default: "
                             "<logdir>/atari57_scores.csv)")
    parser.add_argument("--format", choices=report.FORMATS, default="table",
                        help="report format on stdout")
    parser.add_argument("--plot", default=None,
                        help="also draw the report to this PNG")
    parser.add_argument("--allow_partial", action="store_true",
                        help="report on the games that have scores")
    argv = ["--help" if a == "--helpfull" else a for a in argv]
    args, passed = parser.parse_known_args(argv)
    for arg in passed:
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}")
        if arg.split("=", 1)[0] in SET_PER_RUN:
            raise UsageError(f"{arg.split('=', 1)[0]} is set per game by "
                             "this command; leave it out")
    if args.test_num_episodes < 1:
        raise UsageError("--test_num_episodes must be at least 1")
    return args, passed


def parse_games(value: str) -> List[str]:
    """`--games` as snake_case names in the order given; UsageError for an
    unknown or repeated game."""
    names = [g.strip() for g in value.split(",") if g.strip()]
    if not names:
        raise UsageError("--games is empty")
    for name in names:
        try:
            games_lib.check_game(name)
        except ValueError as e:
            raise UsageError(f"--games: {e}") from None
    if len(set(names)) < len(names):
        raise UsageError(f"--games lists a game twice: {value}")
    return names


def plan(games: Sequence[str], logdir: str, passed: Sequence[str],
         num_episodes: int, multitask: bool = False,
         python: str = sys.executable) -> List[Run]:
    """The test runs: one per game, or one for the multi-task agent."""
    def command(level_name, run_dir):
        output = os.path.join(run_dir, report.SCORES_FILE_NAME)
        return [python, "-m", TRAINER_MODULE, "--mode=test", *passed,
                f"--level_name={level_name}", f"--logdir={run_dir}",
                f"--test_num_episodes={num_episodes}",
                f"--test_output={output}"], output

    if multitask:
        cmd, output = command("atari57", logdir)
        return [("atari57", cmd, output)]
    runs = []
    for game in games:
        cmd, output = command(f"atari/{game}", os.path.join(logdir, game))
        runs.append((game, cmd, output))
    return runs


def episodes_done(csv_path: str) -> int:
    """Episodes a run's test CSV holds (0 if it does not exist or is not a
    readable scores file)."""
    if not os.path.exists(csv_path):
        return 0
    try:
        return sum(len(v) for v in report.load_scores_csv(csv_path).values())
    except report.ReportError:
        return 0


def run_all(runs: Sequence[Run], num_episodes: int,
            run_command: Callable[[List[str], str], int],
            log: Callable[..., None] = print) -> List[str]:
    """Runs each test in turn (`run_command(argv, prefix)` returns its exit
    status), skipping runs whose CSV is complete; returns the names of the
    runs that failed."""
    failed = []
    for i, (name, command, output) in enumerate(runs):
        prefix = f"[atari57] {i + 1}/{len(runs)} {name}:"
        expected = num_episodes * (len(games_lib.ALL_GAMES)
                                   if name == "atari57" else 1)
        if episodes_done(output) >= expected:
            log(f"{prefix} already evaluated ({output})", flush=True)
            continue
        code = run_command(command, prefix)
        if code != 0:
            log(f"error: {name}'s test exited with status {code}; going on",
                file=sys.stderr, flush=True)
            failed.append(name)
    return failed


def gather(csv_paths: Sequence[str], out_path: str) -> int:
    """Writes the rows of every existing file of `csv_paths` into
    `out_path` under one `game,score,episode,frames` header; returns the
    number of files read. Each file is checked as the report reads it."""
    present = [p for p in csv_paths if os.path.exists(p)]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for path in present:
            report.load_scores_csv(path)  # ReportError for a bad file.
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                header = [c.strip() for c in next(reader)]
                for row in reader:
                    cells = [c.strip() for c in row]
                    if not any(cells) or cells == header:
                        continue
                    values = dict(zip(header, cells))
                    writer.writerow([values.get(c, "") for c in COLUMNS])
    return len(present)


def _run_child(command: List[str], prefix: str) -> int:
    """A test command as a child process in this directory (the trainer's
    stop and cleanup rules: `impala_tf.runtime.sweep.train`)."""
    from impala_tf.runtime import sweep  # pylint: disable=import-outside-toplevel
    return sweep.train(command, prefix, cwd=os.getcwd())


def evaluate(argv: Sequence[str],
             run_command: Callable[[List[str], str], int] = _run_child) -> int:
    """The command's work on `argv`; returns the exit status."""
    args, passed = parse_args(argv)
    games = parse_games(args.games)
    logdir = args.logdir
    runs = plan(games, logdir, passed, args.test_num_episodes,
                multitask=args.multitask)
    if args.print_commands:
        for _, command, _ in runs:
            print(shlex.join(["python"] + command[1:]))
        return 0
    failed = []
    if not args.gather_only:
        failed = run_all(runs, args.test_num_episodes, run_command)
    out = args.out or os.path.join(logdir, "atari57_scores.csv")
    read = gather([output for _, _, output in runs], out)
    if not read:
        raise UsageError(f"no run under {logdir} has a "
                         f"{report.SCORES_FILE_NAME}; train and test first, "
                         "or check --logdir")
    print(f"[atari57] gathered {read} of {len(runs)} runs' scores into {out}",
          file=sys.stderr)
    result = report.compute_report(report.load_scores([out]),
                                   allow_partial=args.allow_partial)
    print(report.format_report(result, args.format))
    markdown = os.path.splitext(out)[0] + ".md"
    with open(markdown, "w") as f:
        f.write(report.format_report(result, "markdown") + "\n")
    print(f"[atari57] wrote {markdown}", file=sys.stderr)
    if args.plot:
        report.plot_report(result, args.plot)
        print(f"[atari57] wrote {args.plot}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} test run(s) failed: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    """The suite command: `argv` are the arguments after its name; returns
    the exit status (2 with one `error:` line for bad input)."""
    # SIGTERM stops the test being run (sweep.train's cleanup) and this.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return evaluate(argv)
    except SystemExit as e:  # --help, or SIGTERM.
        return e.code if isinstance(e.code, int) else 0
    except (UsageError, report.ReportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
