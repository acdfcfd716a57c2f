"""atari57.evaluate: the 57 test runs' commands, running them in turn (a
fake runner stands in for the trainer: 57 real games cannot run in a test),
gathering their test_scores.csv files and the report."""

import csv
import json
import shlex

import pytest

import atari57
from atari57 import evaluate


def _paper(game):
    return atari57.GAMES[game].deep_experts


def _flag(command, name):
    values = [a.split("=", 1)[1] for a in command
              if a.startswith(f"--{name}=")]
    return values[-1]


class FakeTrainer:
    """Stands in for `impala-tf test`: writes the CSV the command names,
    with the paper's deep-expert score of the game for every episode, or
    fails for the games in `fail`."""

    def __init__(self, fail=()):
        self.fail = set(fail)
        self.calls = []

    def __call__(self, command, prefix):
        self.calls.append(command)
        level = _flag(command, "level_name")
        games = (atari57.ALL_GAMES if level == "atari57"
                 else [level.split("/", 1)[1]])
        if games[0] in self.fail:
            return 2
        episodes = int(_flag(command, "test_num_episodes"))
        with open(_flag(command, "test_output"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["game", "score", "episode", "frames"])
            for game in games:
                for episode in range(episodes):
                    writer.writerow([game, _paper(game), episode, 400])
        return 0


def test_print_commands_one_line_per_game(tmp_path, capsys):
    code = evaluate.main([f"--logdir={tmp_path}", "--print_commands",
                          "--flagfile=configs/atari_deep_expert.cfg",
                          "--test_num_episodes=30"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 57
    for game, line in zip(atari57.ALL_GAMES, lines):
        argv = shlex.split(line)
        assert argv[:4] == ["python", "-m", "impala_tf.cli.experiment",
                            "--mode=test"]
        # The passed flags come first, so the per-game ones override a
        # flagfile's level and logdir.
        assert argv[4] == "--flagfile=configs/atari_deep_expert.cfg"
        assert _flag(argv, "level_name") == f"atari/{game}"
        assert _flag(argv, "logdir") == str(tmp_path / game)
        assert _flag(argv, "test_output") == str(
            tmp_path / game / "test_scores.csv")
        assert _flag(argv, "test_num_episodes") == "30"


def test_runs_every_game_gathers_and_reports(tmp_path, capsys):
    for game in atari57.ALL_GAMES:
        (tmp_path / game).mkdir()  # The runs' logdirs.
    trainer = FakeTrainer()
    code = evaluate.evaluate([f"--logdir={tmp_path}", "--format=json",
                              "--test_num_episodes=2"], run_command=trainer)
    assert code == 0
    assert len(trainer.calls) == 57
    result = json.loads(capsys.readouterr().out)
    assert result["num_games"] == 57
    assert round(result["summary"]["median"], 1) == 191.8  # Table 4's.
    gathered = (tmp_path / "atari57_scores.csv").read_text().splitlines()
    assert gathered[0] == "game,score,episode,frames"
    assert len(gathered) == 1 + 57 * 2  # One header, every episode.
    assert "game,score" not in "\n".join(gathered[1:])
    assert "191.8%" in (tmp_path / "atari57_scores.md").read_text()

    # Rerunning skips the games already evaluated.
    again = FakeTrainer()
    assert evaluate.evaluate([f"--logdir={tmp_path}",
                              "--test_num_episodes=2"],
                             run_command=again) == 0
    assert again.calls == []
    # More episodes than a CSV holds: that game is tested again.
    assert evaluate.evaluate([f"--logdir={tmp_path}", "--games=pong",
                              "--test_num_episodes=3", "--allow_partial"],
                             run_command=again) == 0
    assert [_flag(c, "level_name") for c in again.calls] == ["atari/pong"]


def test_a_failed_game_is_named_and_the_others_go_on(tmp_path, capsys):
    games = ["pong", "breakout", "enduro"]
    for game in games:
        (tmp_path / game).mkdir()
    trainer = FakeTrainer(fail=["breakout"])
    code = evaluate.evaluate([f"--logdir={tmp_path}", f"--games={','.join(games)}",
                              "--test_num_episodes=1", "--allow_partial"],
                             run_command=trainer)
    assert code == 1
    assert len(trainer.calls) == 3
    captured = capsys.readouterr()
    assert "error: 1 test run(s) failed: breakout" in captured.err
    assert "median (over the same 2 games)" in captured.out
    # Without --allow_partial the missing games are the report's error.
    assert evaluate.main([f"--logdir={tmp_path}", "--gather_only"]) == 2
    assert "55 of 57 games have no score" in capsys.readouterr().err


def test_gather_only_and_multitask(tmp_path, capsys):
    trainer = FakeTrainer()
    assert evaluate.evaluate([f"--logdir={tmp_path}", "--multitask",
                              "--test_num_episodes=1", "--format=json"],
                             run_command=trainer) == 0
    assert [_flag(c, "level_name") for c in trainer.calls] == ["atari57"]
    assert _flag(trainer.calls[0], "logdir") == str(tmp_path)
    first = json.loads(capsys.readouterr().out)
    # Nothing is run; the same file gives the same report.
    assert evaluate.evaluate([f"--logdir={tmp_path}", "--multitask",
                              "--gather_only", "--format=json"],
                             run_command=None) == 0
    assert json.loads(capsys.readouterr().out) == first


@pytest.mark.parametrize("args,message", [
    ([], "--logdir"),
    (["--logdir=x", "--games=pong,pongg"], "unknown Atari game 'pongg'"),
    (["--logdir=x", "--games=pong,pong"], "lists a game twice"),
    (["--logdir=x", "--level_name=atari/pong"], "--level_name is set per "
                                                "game"),
    (["--logdir=x", "stray"], "unexpected argument 'stray'"),
    (["--logdir=x", "--test_num_episodes=0"], "at least 1"),
])
def test_bad_input_is_one_sentence_and_status_2(args, message, capsys):
    assert evaluate.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_nothing_to_gather(tmp_path, capsys):
    assert evaluate.main([f"--logdir={tmp_path}", "--gather_only"]) == 2
    assert "no run under" in capsys.readouterr().err


def test_help(capsys):
    assert evaluate.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: impala-tf atari57 evaluate")
    assert "--print_commands" in out
