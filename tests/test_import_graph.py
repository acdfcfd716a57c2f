"""Dependencies point one way: the suites import impala_tf, never back.

impala_tf finds the suites as plug-ins (impala_tf.envs.suites); no module
under impala_tf/ imports atari57 or dmlab30, by an import statement or by
name (`importlib.import_module("atari57...")`, `__import__`). The two
suites do not import each other either.
"""

import ast
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE_PACKAGES = ("atari57", "dmlab30")
# Calls whose first argument, a string, is a module that gets imported.
IMPORTING_CALLS = ("import_module", "__import__")


def _top(module_name):
    return module_name.split(".", 1)[0]


def _call_name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def imported_modules(source, filename="<string>"):
    """[(line, module name)] of the absolute imports in `source`: import
    statements and calls of `IMPORTING_CALLS` with a string constant."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call)
              and _call_name(node.func) in IMPORTING_CALLS and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def violations(package, forbidden):
    """["path:line imports module"] for every module of `package` (a
    directory under the repository root) importing a `forbidden` package."""
    out = []
    for root, dirs, files in os.walk(os.path.join(REPO_ROOT, package)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                source = f.read()
            for line, module in imported_modules(source, path):
                if _top(module) in forbidden:
                    out.append(f"{os.path.relpath(path, REPO_ROOT)}:{line} "
                               f"imports {module}")
    return out


def test_detector_finds_every_form():
    source = "\n".join([
        "import atari57",
        "import os, dmlab30.levels as lv",
        "from atari57 import games",
        "from . import atari57",  # Relative: a sibling module, not the suite.
        "import importlib",
        "importlib.import_module('dmlab30.report')",
        "__import__('atari57.suite')",
        "importlib.import_module(name)",  # Not a constant: not resolvable.
        "import atari57x",
    ])
    hits = [(line, m) for line, m in imported_modules(source)
            if _top(m) in SUITE_PACKAGES]
    assert hits == [(1, "atari57"), (2, "dmlab30.levels"), (3, "atari57"),
                    (6, "dmlab30.report"), (7, "atari57.suite")]


def test_impala_tf_imports_no_suite():
    found = violations("impala_tf", SUITE_PACKAGES)
    assert not found, ("impala_tf must reach suites through "
                       "impala_tf.envs.suites, not import them:\n"
                       + "\n".join(found))


@pytest.mark.parametrize("suite,other", [("atari57", "dmlab30"),
                                         ("dmlab30", "atari57")])
def test_suites_do_not_import_each_other(suite, other):
    found = violations(suite, (other,))
    assert not found, "\n".join(found)
