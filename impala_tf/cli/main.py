r"""`impala-tf`: the one command line of impala_tf.

    impala-tf [--show_tf_logs] SUBCOMMAND [FLAGS...]
    python -m impala_tf [--show_tf_logs] SUBCOMMAND [FLAGS...]   (the same)

Subcommands:

    train           train an agent (the trainer's flags; e.g.
                    impala-tf train --flagfile=configs/pong_fast.cfg)
    test            evaluate a run's latest checkpoint
    export          write a run's policy as a SavedModel
    launch          start learner(s) and actor processes the distributed
                    way, on this machine
    pbt             population-based training
    ablation        the off-policy correction ablation (Table 2)
    learning-curve  learning curves of a configuration over seeds
    SUITE COMMAND   a command an environment suite adds: impala-tf atari57
                    report|evaluate ..., impala-tf dmlab30 report ...

`train`, `test` and `export` are `python -m impala_tf.cli.experiment` with
`--mode=train|test|export` set (a different --mode, on the command line or
in a --flagfile, is refused); the others run their module
(impala_tf.cli.launch, .pbt, .ablation, .learning_curve) as `python -m`
would, with the program name `impala-tf SUBCOMMAND`, so `--help`,
`--helpfull` and `--flagfile=PATH` work as they do there. A suite's
commands come from `impala_tf.envs.suites.load()` (installed plug-ins, or
the modules in $IMPALA_TF_SUITES); `impala-tf SUITE --help` lists them.

Options before the subcommand:

    -h, --help      this list
    --version       the version
    --show_tf_logs  show TensorFlow's C++ start-up lines (also accepted
                    anywhere after the subcommand)

TensorFlow's start-up lines ("oneDNN custom operations are on", "Could not
find cuda drivers", "All log messages before absl::InitializeLog()", ...)
are hidden in every process the program starts (`console`): before
anything imports TensorFlow it sets TF_CPP_MIN_LOG_LEVEL (unless already
set) and passes standard error, which the processes it starts inherit,
through a filter process. `--show_tf_logs` (or TF_CPP_MIN_LOG_LEVEL=0)
shows them. A process writing to a log file of its own instead (a pbt
member) gets TF_CPP_MIN_LOG_LEVEL only: the first three of those lines
still appear there.

Only the chosen subcommand's module is imported: `impala-tf --help` does
not load TensorFlow. Bad input (an unknown subcommand, a contradicting
--mode, ...) prints one sentence and exits with status 2.
"""

import builtins
import importlib.util
import sys
import types
import typing

from impala_tf import errors

PROG = "impala-tf"
SHOW_TF_LOGS = "--show_tf_logs"


class Command(typing.NamedTuple):
    """A built-in subcommand: the module run as `python -m` would, and the
    --mode it sets (train, test and export) or None."""
    module: str
    summary: str
    mode: typing.Optional[str] = None


_EXPERIMENT = "impala_tf.cli.experiment"
COMMANDS = {
    "train": Command(_EXPERIMENT, "train an agent", "train"),
    "test": Command(_EXPERIMENT, "evaluate a run's latest checkpoint",
                    "test"),
    "export": Command(_EXPERIMENT, "write a run's policy as a SavedModel",
                      "export"),
    "launch": Command("impala_tf.cli.launch",
                      "learner(s) and actor processes, the distributed way"),
    "pbt": Command("impala_tf.cli.pbt", "population-based training"),
    "ablation": Command("impala_tf.cli.ablation",
                        "the off-policy correction ablation (Table 2)"),
    "learning-curve": Command("impala_tf.cli.learning_curve",
                              "learning curves of a configuration over "
                              "seeds"),
}


UsageError = errors.UsageError


def version():
    """The version of impala_tf (`impala_tf.__version__`)."""
    import impala_tf  # pylint: disable=g-import-not-at-top
    return impala_tf.__version__


def load_suites():
    """({suite name: Suite}, None) of the suite plug-ins (less any named
    like a built-in subcommand), or ({}, the sentence saying why they did
    not load)."""
    from impala_tf.envs import suites  # pylint: disable=g-import-not-at-top
    try:
        found = suites.load()
    except suites.SuiteError as e:
        return {}, str(e)
    return {name: s for name, s in found.items() if name not in COMMANDS}, None


def usage(found_suites, suite_error=None):
    """The text of `impala-tf --help`."""
    rows = [(name, c.summary) for name, c in COMMANDS.items()]
    rows += [(f"{name} {sub}", f"the {name} suite's {sub} command")
             for name, suite in sorted(found_suites.items())
             for sub in sorted(suite.commands)]
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"usage: {PROG} [--show_tf_logs] SUBCOMMAND [FLAGS...]",
             "       python -m impala_tf [--show_tf_logs] SUBCOMMAND "
             "[FLAGS...]", "", "subcommands:"]
    lines += [f"  {name:<{width}}{summary}" for name, summary in rows]
    if suite_error:
        lines.append(f"  (suite plug-ins not loaded: {suite_error})")
    lines += ["", "options:",
              f"  {'-h, --help':<{width}}show this list",
              f"  {'--version':<{width}}show the version",
              f"  {SHOW_TF_LOGS:<{width}}show TensorFlow's C++ start-up lines",
              "", f"`{PROG} SUBCOMMAND --help` shows that subcommand's "
              "flags;", "--flagfile=PATH reads flags from a file."]
    return "\n".join(lines) + "\n"


def pop_show_flag(args):
    """(whether --show_tf_logs was given, args without it): before a `--`
    that ends the flags, wherever it is."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != SHOW_TF_LOGS]
    return len(kept) < end, kept + list(args[end:])


def _expand_flagfiles(args):
    """args with --flagfile=PATH replaced by its flags (absl's reading, as
    the subcommand's parser will); args unchanged if a file does not read,
    which that parser then reports."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    try:
        return flags.FlagValues().read_flags_from_files(list(args))
    except (flags.Error, OSError):
        return list(args)


def given_modes(args):
    """The values of --mode in args (after expanding --flagfile), in
    order; absl's spellings: --mode=X, -mode=X, --mode X, -mode X."""
    modes = []
    expanded = _expand_flagfiles(args)
    for i, arg in enumerate(expanded):
        if arg == "--":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name != "mode":
            continue
        if eq:
            modes.append(value)
        elif i + 1 < len(expanded):
            modes.append(expanded[i + 1])
    return modes


def command_argv(name, args):
    """sys.argv for built-in subcommand `name` given args: the program name
    `impala-tf NAME`, --mode=NAME where the subcommand sets it, then args.

    Raises:
      UsageError: args set a --mode other than the subcommand's.
    """
    command = COMMANDS[name]
    if command.mode is None:
        return [f"{PROG} {name}"] + list(args)
    for mode in given_modes(args):
        if mode != command.mode:
            hint = (f"; use `{PROG} {mode}`"
                    if COMMANDS.get(mode, Command("", "")).mode == mode
                    else "")
            raise UsageError(f"--mode={mode} contradicts `{PROG} {name}`"
                             f"{hint}")
    return [f"{PROG} {name}", f"--mode={command.mode}"] + list(args)


HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull",
              "--helpxml", "-help", "-helpshort", "-helpfull")


def help_asked(args):
    """Whether args (a subcommand's) ask for its help before any `--`."""
    for arg in args:
        if arg == "--":
            return False
        if arg in HELP_FLAGS:
            return True
    return False


def run_as_main(module, argv):
    """Runs `module` as `python -m module` with sys.argv = argv would, but
    keeps argv[0] (runpy puts the module's file there), so absl's --help
    names the program and lists the module's flags.

    For the duration, sys.modules["__main__"] is the module (its __spec__
    names it, so multiprocessing's spawned children import it again as
    `python -m` ones do). Returns 0 if the module returns; its SystemExit
    (absl's app.run ends with one) propagates.

    Raises:
      UsageError: no such module in this installation.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.loader is None:
        raise UsageError(f"module {module} is not in this installation")
    code = spec.loader.get_code(module)
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(
        __file__=spec.origin, __cached__=spec.cached, __loader__=spec.loader,
        __package__=spec.parent, __spec__=spec, __builtins__=builtins)
    saved_main, saved_argv = sys.modules["__main__"], sys.argv
    sys.modules["__main__"], sys.argv = main_module, list(argv)
    try:
        exec(code, main_module.__dict__)  # pylint: disable=exec-used
    finally:
        sys.modules["__main__"], sys.argv = saved_main, saved_argv
    return 0


def run_suite_command(suite, args):
    """`impala-tf SUITE COMMAND ARGS`: the suite command's function called
    with ARGS; returns its exit status.

    Raises:
      UsageError: no command, or not one of the suite's.
    """
    from impala_tf.envs import suites  # pylint: disable=g-import-not-at-top
    listing = ", ".join(sorted(suite.commands)) or "none"
    if not args or args[0] in ("-h", "--help", "help"):
        if args:
            print(f"usage: {PROG} {suite.name} COMMAND [FLAGS...]\n"
                  f"commands: {listing}")
            return 0
        raise UsageError(f"`{PROG} {suite.name}` needs a command: {listing}")
    if args[0] not in suite.commands:
        raise UsageError(f"unknown command '{args[0]}' of suite "
                         f"{suite.name}; its commands: {listing}")
    try:
        function = suites.resolve_command(suite.commands[args[0]])
    except suites.SuiteError as e:
        raise UsageError(str(e)) from None
    saved = sys.argv
    sys.argv = [f"{PROG} {suite.name} {args[0]}"] + list(args[1:])
    try:
        status = function(list(args[1:]))
    finally:
        sys.argv = saved
    return 0 if status is None else status


def _dispatch(args, quiet):
    """Everything but the exit: returns the exit status."""
    show, args = pop_show_flag(args)
    if not args:
        sys.stderr.write(usage(*load_suites()))
        raise UsageError("a subcommand is needed")
    first, rest = args[0], args[1:]
    if first in ("-h", "--help", "help"):
        print(usage(*load_suites()), end="")
        return 0
    if first == "--version":
        print(f"{PROG} {version()}")
        return 0
    if first.startswith("-"):
        raise UsageError(f"unknown option {first}; options go after the "
                         f"subcommand (see `{PROG} --help`)")
    if first in COMMANDS:
        argv = command_argv(first, rest)
        quiet(show)
        try:
            return run_as_main(COMMANDS[first].module, argv)
        except SystemExit as e:
            # absl ends --help with status 1; help that was asked for and
            # printed is a success.
            if e.code == 1 and help_asked(rest):
                return 0
            raise
    found, suite_error = load_suites()
    if first in found:
        quiet(show)
        return run_suite_command(found[first], rest)
    valid = list(COMMANDS) + sorted(found)
    why = f" (suite plug-ins not loaded: {suite_error})" if suite_error else ""
    raise UsageError(f"unknown subcommand '{first}'; valid: "
                     f"{', '.join(valid)}{why}")


def _quiet_console(show):
    from impala_tf.cli import console  # pylint: disable=g-import-not-at-top
    console.quiet_tensorflow(show)


def main(argv=None, quiet=_quiet_console):
    """The `impala-tf` program; returns its exit status (or exits with a
    subcommand's).

    Args:
      argv: the arguments after the program name (default sys.argv[1:]).
      quiet: called with --show_tf_logs's value just before a subcommand
        runs (default: `console.quiet_tensorflow`).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(args, quiet)
    except UsageError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
