"""Every shell command that README.md and docs/*.md show runs as written.

The commands are read from the documents' fenced code blocks (sh, bash,
yaml or unmarked): every `impala-tf ...`, `python -m ...` and `make ...`
in them, with `\\` continuations joined and `NAME="..."` variables of the
block substituted. Each is checked in a form that trains nothing:

* its tool (an `impala-tf` subcommand, a `python -m` module) answers
  `--help` with its usage or flags and status 0 (1 for absl's tools, as
  absl ends a help request) (once per tool);
* every `--flag` it names is a flag of that tool, as its `--helpfull`
  (absl) or `--help` (argparse) lists them; tools that pass the trainer's
  flags on (launch, pbt, ablation, learning-curve, atari57 evaluate) accept
  the trainer's too;
* every `--flagfile=PATH` exists and each flag in it is the tool's;
* a tool with a dry run is run with it, as written: `ablation
  --print_commands`, `learning-curve --dry_run`, `launch --dry_run`,
  `atari57 evaluate --print_commands`, `make -n TARGET` (whose trainer
  command is then checked the same way); it must exit with status 0.

Commands for other machines (in a block with sbatch, srun, kubectl or ssh,
in YAML, in a comment, or with placeholders such as HOST:PORT, `...`,
`<...>` or an unset `$VAR`) are checked for their flags and flagfiles only.
`impala-tf` is run as `python -m impala_tf`, the same program, so the test
needs no installation; the suites come from $IMPALA_TF_SUITES.
"""

import dataclasses
import functools
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import typing

import pytest

from impala_tf import testing

REPO = testing.REPO
DOCUMENTS = ["README.md"] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs",
                                                             "*.md")))
SUITES = "atari57.suite,dmlab30.suite"
TIMEOUT_S = 180

# Tools by the name the documents use. `run`: the argv prefix that runs it
# here; `trainer_flags`: it passes the trainer's flags on; `dry_run`: the
# flag that makes it only print what it would run.
TRAIN = "impala-tf train"


@dataclasses.dataclass(frozen=True)
class Tool:
    run: typing.Tuple[str, ...]
    trainer_flags: bool = False
    dry_run: typing.Optional[str] = None
    argparse: bool = False


def _impala(*words):
    return (sys.executable, "-m", "impala_tf") + words


def _module(name):
    return (sys.executable, "-m", name)


TOOLS = {
    "impala-tf": Tool(_impala(), argparse=True),
    "impala-tf train": Tool(_impala("train")),
    "impala-tf test": Tool(_impala("test")),
    "impala-tf export": Tool(_impala("export")),
    "impala-tf launch": Tool(_impala("launch"), trainer_flags=True,
                             dry_run="--dry_run", argparse=True),
    "impala-tf pbt": Tool(_impala("pbt"), trainer_flags=True),
    "impala-tf ablation": Tool(_impala("ablation"), trainer_flags=True,
                               dry_run="--print_commands"),
    "impala-tf learning-curve": Tool(_impala("learning-curve"),
                                     trainer_flags=True, dry_run="--dry_run"),
    "impala-tf atari57 report": Tool(_impala("atari57", "report")),
    "impala-tf atari57 evaluate": Tool(
        _impala("atari57", "evaluate"), trainer_flags=True,
        dry_run="--print_commands", argparse=True),
    "impala-tf dmlab30 report": Tool(_impala("dmlab30", "report")),
}
# `python -m MODULE` names of the same tools.
MODULE_TOOLS = {
    "impala_tf.cli.experiment": TRAIN,
    "impala_tf.cli.launch": "impala-tf launch",
    "impala_tf.cli.pbt": "impala-tf pbt",
    "impala_tf.cli.ablation": "impala-tf ablation",
    "impala_tf.cli.learning_curve": "impala-tf learning-curve",
    "atari57.report": "impala-tf atari57 report",
    "atari57.evaluate": "impala-tf atari57 evaluate",
    "dmlab30.report": "impala-tf dmlab30 report",
}
REMOTE_WORDS = ("sbatch", "srun", "kubectl", "ssh ")
PLACEHOLDER = re.compile(r"\.\.\.|HOST:PORT|<[^>]*>|\[|\]|\$|YOUR_")
COMMAND_START = re.compile(
    r"(?:(?<=^)|(?<=[\s\"'(;]))(impala-tf\s|python -m \S+|make\s+\w)")


@dataclasses.dataclass
class Command:
    """One command as a document shows it."""
    doc: str
    line: int
    text: str
    remote: bool

    @property
    def name(self):
        return f"{self.doc}:{self.line}"


# -- Reading the documents. ------------------------------------------------


def code_blocks(text):
    """(language, [(line number, line)]) of each fenced code block."""
    blocks, current, language = [], None, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if current is None:
                language, current = stripped[3:].strip().lower(), []
            else:
                blocks.append((language, current))
                current = None
        elif current is not None:
            current.append((number, line))
    return blocks


def _logical_lines(lines):
    """Lines with `\\` continuations joined: (first line number, text)."""
    out, pending, start = [], "", None
    for number, line in lines:
        if start is None:
            start = number
        part = line.lstrip() if pending else line
        if part.rstrip().endswith("\\"):
            pending += part.rstrip()[:-1].rstrip() + " "
            continue
        out.append((start, pending + part))
        pending, start = "", None
    if pending:
        out.append((start, pending))
    return out


def _cut(text, opening_quote):
    """`text` up to the end of its shell command: an unquoted `;`, `|` or
    `&&`, or the quote that opened the string it is embedded in."""
    quote = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if quote:
            if char == quote:
                quote = None
        elif opening_quote and char == opening_quote:
            return text[:i]
        elif char in "\"'":
            quote = char
        elif char in ";|" or text.startswith("&&", i):
            return text[:i]
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
        i += 1
    return text


def extract_commands(text, doc):
    """The commands of a document's shell and YAML code blocks."""
    commands = []
    for language, lines in code_blocks(text):
        if language not in ("", "sh", "bash", "shell", "console", "yaml"):
            continue
        block = "\n".join(line for _, line in lines)
        remote_block = language == "yaml" or any(
            w in block for w in REMOTE_WORDS)
        variables = {}
        for number, line in _logical_lines(lines):
            stripped = line.strip()
            comment = stripped.startswith("#")
            if comment:
                stripped = stripped.lstrip("#").strip()
            assignment = re.match(r"^([A-Z_][A-Z0-9_]*)=(\"[^\"]*\"|'[^']*')$",
                                  stripped)
            if assignment and not comment:
                variables[assignment.group(1)] = assignment.group(2)[1:-1]
                continue
            for match in COMMAND_START.finditer(stripped):
                start = match.start()
                if stripped[start:].startswith("make") and start > 0:
                    continue  # `make` only as the line's command.
                before = stripped[start - 1] if start else ""
                command = _cut(stripped[start:],
                               before if before in "\"'" else None).strip()
                for name, value in variables.items():
                    command = command.replace("$" + name, value).replace(
                        "${" + name + "}", value)
                commands.append(Command(doc, number, command,
                                        remote_block or comment))
    return commands


def documented_commands():
    commands = []
    for doc in DOCUMENTS:
        with open(os.path.join(REPO, doc), encoding="utf-8") as f:
            commands += extract_commands(f.read(), doc)
    return commands


# -- Tools and their flags. --------------------------------------------------


def split(command):
    """The command's argv (shell quoting; `\\$` kept as `$`)."""
    try:
        return shlex.split(command.replace("\\$", "$"))
    except ValueError:
        return command.split()


def tool_of(argv):
    """(tool name, the arguments after it) of an argv, or (None, argv)."""
    if argv[:1] == ["impala-tf"] or argv[:3] == ["python", "-m", "impala_tf"]:
        rest = argv[1:] if argv[0] == "impala-tf" else argv[3:]
        for words in (2, 1):
            name = " ".join(["impala-tf"] + rest[:words])
            if name in TOOLS:
                return name, rest[words:]
        if not rest or rest[0].startswith("-"):
            return "impala-tf", rest
        return None, argv
    if argv[:2] == ["python", "-m"] and len(argv) > 2:
        module = argv[2]
        if module in MODULE_TOOLS:
            return MODULE_TOOLS[module], argv[3:]
        return "python -m " + module, argv[3:]
    if argv[:1] == ["make"]:
        return "make", argv[1:]
    return None, argv


def _tool(name):
    if name in TOOLS:
        return TOOLS[name]
    if name.startswith("python -m "):
        return Tool(_module(name.split()[-1]), argparse=True)
    raise KeyError(name)


def _env():
    env = dict(os.environ, IMPALA_TF_SUITES=SUITES, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def run(argv, timeout=TIMEOUT_S):
    return subprocess.run(list(argv), cwd=REPO, env=_env(), text=True,
                          capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@functools.lru_cache(maxsize=None)
def help_of(name):
    """(exit status, output) of the tool's `--help`."""
    result = run(_tool(name).run + ("--help",))
    return result.returncode, result.stdout + result.stderr


_ABSL_FLAG = re.compile(r"^\s*--(\[no\])?([A-Za-z]\w*):", re.M)
_ARGPARSE_FLAG = re.compile(r"(?:^\s+|\[|, )--([A-Za-z]\w*)", re.M)


def parse_flags(help_text):
    """The flag names a help text defines (absl's `--[no]name:` lines and
    argparse's option lists); a boolean's `noname` too."""
    names = set()
    for negatable, name in _ABSL_FLAG.findall(help_text):
        names.add(name)
        if negatable:
            names.add("no" + name)
    names.update(_ARGPARSE_FLAG.findall(help_text))
    return names


@functools.lru_cache(maxsize=None)
def flags_of(name):
    """The flags tool `name` accepts (its `--helpfull`, or `--help` for
    argparse tools), with the trainer's where it passes them on."""
    tool = _tool(name)
    result = run(tool.run + ("--help" if tool.argparse else "--helpfull",))
    names = parse_flags(result.stdout + result.stderr)
    names.update(("help", "helpfull", "flagfile"))
    if tool.trainer_flags:
        names |= flags_of(TRAIN)
    return frozenset(names)


def flag_names(args):
    """The `--name` of each flag in args (not their values)."""
    return [a[2:].split("=", 1)[0] for a in args
            if a.startswith("--") and len(a) > 2]


def flagfile_problems(path, tool_name, seen=()):
    """Problems of a `--flagfile=PATH` for tool `tool_name`."""
    if PLACEHOLDER.search(path):
        return []
    full = os.path.join(REPO, path)
    if not os.path.isfile(full):
        return [f"--flagfile={path} does not exist"]
    if full in seen:
        return []
    problems = []
    known = flags_of(tool_name)
    with open(full, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    for line in lines:
        if not line.startswith("--"):
            continue
        name = line[2:].split("=", 1)[0]
        if name == "flagfile":
            problems += flagfile_problems(line.split("=", 1)[1], tool_name,
                                          seen + (full,))
        elif name not in known:
            problems.append(f"{path} sets --{name}, not a flag of "
                            f"{tool_name}")
    return problems


def argument_problems(tool_name, args):
    """Unknown flags and bad flagfiles among a tool's arguments."""
    problems = []
    known = flags_of(tool_name)
    for arg in args:
        if not arg.startswith("--") or len(arg) == 2:
            continue
        name, _, value = arg[2:].partition("=")
        if name == "flagfile":
            problems += flagfile_problems(value, tool_name)
        elif name not in known:
            problems.append(f"--{name} is not a flag of {tool_name}")
    return problems


def _make_problems(command, args):
    """`make -n TARGET VAR=...`: it must parse, and the trainer command it
    would run must be a valid one."""
    problems = []
    for arg in args:
        if arg.startswith("CONFIG=") and not PLACEHOLDER.search(arg):
            if not os.path.isfile(os.path.join(REPO, arg[len("CONFIG="):])):
                problems.append(f"{arg}: no such file")
    if command.remote or shutil.which("make") is None:
        return problems
    result = run(["make", "-n"] + args, timeout=60)
    if result.returncode != 0:
        return problems + [f"make -n {' '.join(args)} exited with status "
                           f"{result.returncode}: {result.stderr[-500:]}"]
    trainers = 0
    for line in result.stdout.splitlines():
        argv = split(line)
        for i, word in enumerate(argv):
            if os.path.basename(word) == "impala-tf":
                name, rest = tool_of(["impala-tf"] + argv[i + 1:])
            elif word == "-m" and argv[i + 1:i + 2] == [
                    "impala_tf.cli.experiment"]:
                name, rest = TRAIN, argv[i + 2:]
            else:
                continue
            trainers += 1
            problems += argument_problems(name, rest)
    if args[:1] == ["train"] and not trainers:
        problems.append("make -n train shows no trainer command")
    return problems


def problems_of(command):
    """What is wrong with a documented command ([] if nothing)."""
    argv = split(command.text)
    name, args = tool_of(argv)
    if name is None:
        return [f"not a known tool: {command.text!r}"]
    if name == "make":
        return _make_problems(command, args)
    try:
        tool = _tool(name)
    except KeyError:
        return [f"unknown tool {name!r}"]
    problems = argument_problems(name, args)
    if problems or not tool.dry_run or command.remote or PLACEHOLDER.search(
            command.text):
        return problems
    dry = list(args) + ([] if tool.dry_run in args else [tool.dry_run])
    result = run(tool.run + tuple(dry))
    if result.returncode != 0:
        problems.append(f"`{name} ... {tool.dry_run}` exited with status "
                        f"{result.returncode}: {result.stderr[-600:]}")
    return problems


# -- Tests. --------------------------------------------------------------------

COMMANDS = documented_commands()


def test_the_documents_show_the_agreed_commands():
    readme = {tool_of(split(c.text))[0] for c in COMMANDS
              if c.doc == "README.md"}
    for name in ("make", TRAIN, "impala-tf test", "impala-tf export",
                 "impala-tf pbt", "impala-tf ablation",
                 "impala-tf learning-curve", "impala-tf atari57 evaluate",
                 "impala-tf dmlab30 report"):
        assert name in readme, f"README.md shows no `{name}` command"
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("name", sorted(
    {tool_of(split(c.text))[0] for c in COMMANDS} - {"make", None}))
def test_every_documented_tool_answers_help(name):
    code, text = help_of(name)
    # absl's app ends a help request with status 1 after printing the flags
    # and its "Try --helpfull" line (tests/test_flags.py expects that of the
    # absl tools); any other tool must exit 0.
    absl_help = code == 1 and "Try --helpfull" in text
    assert code == 0 or absl_help, (
        f"`{name} --help` exited with status {code}: {text[-500:]}")
    assert "usage" in text.lower() or "flags:" in text, text[-500:]


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_documented_command(command):
    assert problems_of(command) == [], command.text


def test_a_wrong_flag_or_config_is_caught():
    """The checker itself: a made-up flag, a missing flagfile, a flag in a
    flagfile that the tool lacks and a failing dry run are all reported."""
    doc = "\n".join([
        "```sh",
        "impala-tf train --flagfile=configs/pong_fast.cfg --no_such_flag=1",
        "impala-tf train --flagfile=configs/no_such_config.cfg",
        "impala-tf ablation --frames=0 --seeds=1",
        "ARGS=\"--seeds=1,1\"",
        "impala-tf ablation --frames=10 $ARGS",
        "make train CONFIG=configs/no_such_config.cfg ARGS=\"--no_such_flag=1\"",
        "```",
        "```python",
        "impala-tf train --not_shell=1",
        "```",
    ])
    commands = extract_commands(doc, "fake.md")
    assert [c.line for c in commands] == [2, 3, 4, 6, 7]
    problems = [problems_of(c) for c in commands]
    if shutil.which("make"):
        assert problems[4][0] == (
            "CONFIG=configs/no_such_config.cfg: no such file")
        assert "--no_such_flag is not a flag of impala-tf train" in problems[4]
    assert problems[0] == ["--no_such_flag is not a flag of impala-tf train"]
    assert problems[1] == [
        "--flagfile=configs/no_such_config.cfg does not exist"]
    assert "exited with status 2" in " ".join(problems[2])  # --frames=0.
    assert "exited with status 2" in " ".join(problems[3])  # Seed twice.
    assert flagfile_problems("configs/pong_fast.cfg", "impala-tf atari57 "
                             "report")  # Trainer flags: not the report's.


def test_extraction_follows_the_shell():
    doc = "\n".join([
        "```sh",
        "make train ARGS=\"--num_actors=4\"   # a comment",
        "impala-tf learning-curve --flagfile=configs/pong_fast.cfg \\",
        "    --seeds=1,2; echo done",
        "# impala-tf pbt --plot --logdir=x",
        "for g in $(python -c \"print(1)\"); do impala-tf train --seed=$g; done",
        "```",
        "```sh",
        "sbatch --wrap \"impala-tf ablation --cell=\\$SLURM_ARRAY_TASK_ID\"",
        "```",
    ])
    commands = extract_commands(doc, "fake.md")
    assert [(c.text, c.remote) for c in commands] == [
        ("make train ARGS=\"--num_actors=4\"", False),
        ("impala-tf learning-curve --flagfile=configs/pong_fast.cfg "
         "--seeds=1,2", False),
        ("impala-tf pbt --plot --logdir=x", True),
        ("impala-tf train --seed=$g", False),
        ("impala-tf ablation --cell=\\$SLURM_ARRAY_TASK_ID", True),
    ]
    assert tool_of(split(commands[-1].text)) == (
        "impala-tf ablation", ["--cell=$SLURM_ARRAY_TASK_ID"])
