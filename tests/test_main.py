"""Tests of impala_tf.cli.main, the `impala-tf` program: argument handling
in process (with stand-in subcommand modules and suites), and the program
itself in subprocesses (exit status, one-sentence errors, no TensorFlow for
--help)."""

import subprocess
import sys
import textwrap

import pytest

from impala_tf import testing
from impala_tf.cli import main
from impala_tf.envs import suites

# A stand-in subcommand module: its __main__ block records what it saw.
_MODULE = textwrap.dedent("""\
    import sys
    SEEN = {}
    if __name__ == "__main__":
        this = sys.modules["__main__"]
        SEEN.update(argv=list(sys.argv), name=this.__spec__.name,
                    is_this=this.__dict__ is globals())
        sys.modules["_seen_by_fake_cli"] = this
        sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0)

    def command(argv):
        SEEN.update(argv=list(argv), sys_argv=list(sys.argv))
        return int(argv[-1]) if argv and argv[-1].isdigit() else None
    """)


@pytest.fixture
def fake_module(tmp_path, monkeypatch):
    """The module name of a stand-in subcommand, importable meanwhile."""
    (tmp_path / "fake_cli_module.py").write_text(_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_cli_module", raising=False)
    monkeypatch.delitem(sys.modules, "_seen_by_fake_cli", raising=False)
    return "fake_cli_module"


def _run(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "impala_tf", *args],
                          cwd=testing.REPO, capture_output=True, text=True,
                          timeout=120, check=False, **kwargs)


def test_show_flag_is_taken_anywhere_before_double_dash():
    assert main.pop_show_flag(["--show_tf_logs", "train", "--x=1"]) == (
        True, ["train", "--x=1"])
    assert main.pop_show_flag(["train", "--x=1", "--show_tf_logs"]) == (
        True, ["train", "--x=1"])
    assert main.pop_show_flag(["train", "--", "--show_tf_logs"]) == (
        False, ["train", "--", "--show_tf_logs"])
    assert main.pop_show_flag(["train"]) == (False, ["train"])


def test_given_modes_reads_every_spelling_and_flagfiles(tmp_path):
    inner = tmp_path / "inner.cfg"
    inner.write_text("# a comment\n--mode=export\n")
    outer = tmp_path / "outer.cfg"
    outer.write_text(f"--batch_size=2\n--flagfile={inner}\n")
    assert main.given_modes(["--mode=test", "-mode=train", "--mode", "x",
                             "-mode", "y", "--model=z", "mode=w"]) == [
                                 "test", "train", "x", "y"]
    assert main.given_modes([f"--flagfile={outer}", "--mode=test"]) == [
        "export", "test"]
    assert main.given_modes(["--", "--mode=test"]) == []
    # An unreadable flagfile is left to the subcommand's parser.
    assert main.given_modes([f"--flagfile={tmp_path}/none.cfg"]) == []


def test_command_argv_sets_the_mode_and_refuses_another(tmp_path):
    assert main.command_argv("train", ["--batch_size=2"]) == [
        "impala-tf train", "--mode=train", "--batch_size=2"]
    assert main.command_argv("export", ["--mode=export"]) == [
        "impala-tf export", "--mode=export", "--mode=export"]
    assert main.command_argv("pbt", ["--mode=test"]) == [
        "impala-tf pbt", "--mode=test"]
    with pytest.raises(main.UsageError, match=r"--mode=test contradicts "
                       r"`impala-tf train`; use `impala-tf test`"):
        main.command_argv("train", ["--mode=test"])
    cfg = tmp_path / "c.cfg"
    cfg.write_text("--mode=train\n")
    with pytest.raises(main.UsageError, match="--mode=train contradicts"):
        main.command_argv("export", [f"--flagfile={cfg}"])
    with pytest.raises(main.UsageError, match=r"--mode=dance contradicts "
                       r"`impala-tf test`$"):
        main.command_argv("test", ["--mode=dance"])


def test_run_as_main_keeps_the_program_name(fake_module):
    saved_main, saved_argv = sys.modules["__main__"], sys.argv
    with pytest.raises(SystemExit) as exit_info:
        main.run_as_main(fake_module, ["impala-tf fake", "--a=1", "7"])
    assert exit_info.value.code == 7
    seen = sys.modules["_seen_by_fake_cli"].SEEN
    assert seen == {"argv": ["impala-tf fake", "--a=1", "7"],
                    "name": fake_module, "is_this": True}
    assert sys.modules["__main__"] is saved_main and sys.argv is saved_argv
    assert fake_module not in sys.modules  # Run as __main__ only.


def test_run_as_main_of_a_missing_module_is_a_usage_error():
    with pytest.raises(main.UsageError,
                       match="module no_such_mod_xyz is not in this"):
        main.run_as_main("no_such_mod_xyz", ["impala-tf x"])


def test_dispatch_runs_the_module_after_quieting(fake_module, monkeypatch,
                                                  capsys):
    monkeypatch.setitem(main.COMMANDS, "fake",
                        main.Command(fake_module, "a stand-in"))
    calls = []
    with pytest.raises(SystemExit) as exit_info:
        main.main(["fake", "--show_tf_logs", "--b=2", "3"],
                  quiet=calls.append)
    assert exit_info.value.code == 3
    assert calls == [True]
    assert sys.modules["_seen_by_fake_cli"].SEEN["argv"] == [
        "impala-tf fake", "--b=2", "3"]
    assert capsys.readouterr().err == ""


def test_errors_are_one_sentence_and_status_2(capsys, monkeypatch):
    monkeypatch.setattr(main, "load_suites", lambda: ({}, None))
    calls = []
    assert main.main(["bogus"], quiet=calls.append) == 2
    err = capsys.readouterr().err
    assert err == ("impala-tf: error: unknown subcommand 'bogus'; valid: "
                   "train, test, export, launch, pbt, ablation, "
                   "learning-curve\n")
    assert main.main(["--flagfile=x.cfg", "train"], quiet=calls.append) == 2
    assert "options go after the subcommand" in capsys.readouterr().err
    assert main.main(["train", "--mode=test"], quiet=calls.append) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main.main([], quiet=calls.append) == 2
    assert capsys.readouterr().err.endswith(
        "impala-tf: error: a subcommand is needed\n")
    assert calls == []  # Nothing ran, so nothing was quieted.


def test_help_and_version(capsys, monkeypatch):
    suite = suites.Suite(name="fakesuite",
                         commands={"report": "m:f", "evaluate": "m:g"})
    monkeypatch.setattr(main, "load_suites", lambda: ({"fakesuite": suite},
                                                      None))
    assert main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in main.COMMANDS:
        assert f"\n  {name} " in out
    assert "\n  fakesuite evaluate " in out and "\n  fakesuite report " in out
    assert "--show_tf_logs" in out and "python -m impala_tf" in out
    assert main.main(["--version"]) == 0
    import impala_tf  # pylint: disable=import-outside-toplevel
    assert capsys.readouterr().out == f"impala-tf {impala_tf.__version__}\n"


def test_suite_commands(fake_module, monkeypatch, capsys):
    suite = suites.Suite(name="fakesuite",
                         commands={"hello": f"{fake_module}:command"})
    monkeypatch.setattr(main, "load_suites", lambda: ({"fakesuite": suite},
                                                      None))
    calls = []
    assert main.main(["fakesuite", "hello", "--x", "5"],
                     quiet=calls.append) == 5
    seen = sys.modules[fake_module].SEEN
    assert seen == {"argv": ["--x", "5"],
                    "sys_argv": ["impala-tf fakesuite hello", "--x", "5"]}
    assert main.main(["fakesuite", "hello"], quiet=calls.append) == 0
    assert calls == [False, False]
    assert main.main(["fakesuite", "bye"], quiet=calls.append) == 2
    assert capsys.readouterr().err == (
        "impala-tf: error: unknown command 'bye' of suite fakesuite; its "
        "commands: hello\n")
    assert main.main(["fakesuite"], quiet=calls.append) == 2
    assert main.main(["fakesuite", "--help"], quiet=calls.append) == 0
    assert "commands: hello" in capsys.readouterr().out


def test_a_broken_suite_plug_in_is_said_not_raised(monkeypatch, capsys):
    def broken():
        raise suites.SuiteError("suite plug-in 'x' failed to load")
    monkeypatch.setattr(suites, "load", broken)
    assert main.load_suites() == ({}, "suite plug-in 'x' failed to load")
    assert main.main(["x"], quiet=lambda show: None) == 2
    assert "(suite plug-ins not loaded: suite plug-in 'x' failed to load)" in (
        capsys.readouterr().err)


def test_program_help_imports_no_tensorflow():
    script = ("import sys\nfrom impala_tf.cli import main\n"
              "assert main.main(['--help']) == 0\n"
              "assert 'tensorflow' not in sys.modules, 'tensorflow loaded'\n")
    result = subprocess.run([sys.executable, "-c", script],
                            cwd=testing.REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "learning-curve" in result.stdout


def test_program_exit_statuses():
    bad = _run(["train", "--mode=export"])
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == ("impala-tf: error: --mode=export contradicts "
                          "`impala-tf train`; use `impala-tf export`\n")
    unknown = _run(["--show_tf_logs", "nosuch"])
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("impala-tf: error: unknown subcommand "
                                     "'nosuch'; valid: train, test, export")
    assert unknown.stderr.count("\n") == 1
    assert _run(["--version"]).stdout.startswith("impala-tf ")


def test_subcommand_help_names_the_program_and_its_flags():
    result = _run(["train", "--help"])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr  # Asked for: a success.
    assert "impala-tf train:" in result.stdout
    assert "--level_name" in result.stdout
    checked = _run(["train", "--batch_size=3", "--only_check_args"])
    assert checked.returncode == 0, checked.stderr
    bad = _run(["train", "--batch_size=x", "--help"])
    assert bad.returncode == 2 and "batch_size" in bad.stderr, bad.stderr


def test_help_asked_stops_at_the_end_of_options():
    assert main.help_asked(["--flagfile=a.cfg", "--helpfull"])
    assert main.help_asked(["-h"])
    assert not main.help_asked(["--", "--help"])
    assert not main.help_asked(["--helper=1"])
