"""Packaging: the wheel pyproject.toml builds, the `impala-tf` program
installed from it (and editable) working from outside the checkout, and
the Makefile's set-up logic (dry runs with a stand-in .venv and Python).

Offline: the wheel is built with this environment's setuptools
(--no-build-isolation) from a copy of the sources, installed with --no-deps
into a folder or a new virtual environment that sees this one's packages.
"""

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from impala_tf import testing
from impala_tf.cli import console

PACKAGES = ("impala_tf", "atari57", "dmlab30")
CONFIG = os.path.join(testing.REPO, "configs", "pong_fast.cfg")


def _run(cmd, cwd, env=None, timeout=180):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _pip(*args, cwd):
    result = _run([sys.executable, "-m", "pip", *args, "--no-deps",
                   "--no-index", "--no-build-isolation", "--quiet"], cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _copy_sources(dest):
    """The files a build reads, without caches or build leftovers."""
    os.makedirs(dest)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(testing.REPO, name), dest)
    for package in PACKAGES:
        shutil.copytree(os.path.join(testing.REPO, package),
                        os.path.join(dest, package),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _python_files(root):
    found = set()
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(root, package)):
            rel = os.path.relpath(folder, root)
            found.update(os.path.join(rel, f).replace(os.sep, "/")
                         for f in files if f.endswith(".py"))
    return found


def _clean_env(**extra):
    """This environment without a standard-error filter's mark or a TF log
    level (the program starts its own), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in (console.FILTER_VAR, "TF_CPP_MIN_LOG_LEVEL",
                        "PYTHONPATH", "IMPALA_TF_SUITES")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(the wheel's path, the source copy it was built from)."""
    root = tmp_path_factory.mktemp("packaging")
    src = _copy_sources(str(root / "src"))
    _pip("wheel", "-w", str(root / "dist"), src, cwd=str(root))
    wheels = os.listdir(root / "dist")
    assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl"), (
        wheels)
    return str(root / "dist" / wheels[0]), src


def test_wheel_holds_the_packages_and_entry_points(built):
    wheel, src = built
    import impala_tf  # pylint: disable=import-outside-toplevel
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"impala_tf-{impala_tf.__version__}.dist-info"
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.read_string(z.read(f"{info}/entry_points.txt").decode())
        metadata = z.read(f"{info}/METADATA").decode()
    expected = _python_files(src)
    assert {f"{p}/__init__.py" for p in PACKAGES} <= expected
    assert "impala_tf/cli/main.py" in expected
    assert expected - names == set()
    assert {n.split("/")[0] for n in names} == set(PACKAGES) | {info}
    assert dict(entry_points["console_scripts"]) == {
        "impala-tf": "impala_tf.cli.main:main"}
    assert dict(entry_points["impala_tf.suites"]) == {
        "atari57": "atari57.suite:SUITE", "dmlab30": "dmlab30.suite:SUITE"}
    assert f"\nVersion: {impala_tf.__version__}\n" in metadata
    assert "\nRequires-Python: >=3.10\n" in metadata
    assert "\nRequires-Dist: tensorflow" in metadata


def test_installed_wheel_runs_outside_the_checkout(built, tmp_path):
    wheel, _ = built
    target = tmp_path / "site"
    _pip("install", "--target", str(target), wheel, cwd=str(tmp_path))
    program = str(target / "bin" / "impala-tf")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(PYTHONPATH=str(target))

    where = _run([sys.executable, "-c",
                  "import impala_tf, atari57, dmlab30\n"
                  "for m in (impala_tf, atari57, dmlab30): print(m.__file__)"],
                 cwd=str(elsewhere), env=env)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(target)), where.stdout

    helped = _run([program, "--help"], cwd=str(elsewhere), env=env)
    assert helped.returncode == 0, helped.stderr
    for text in ("\n  train ", "\n  learning-curve ", "\n  atari57 report ",
                 "\n  dmlab30 report "):
        assert text in helped.stdout
    version = _run([sys.executable, "-m", "impala_tf", "--version"],
                   cwd=str(elsewhere), env=env)
    assert version.stdout.startswith("impala-tf "), version.stderr

    # A configuration referenced by path; absl reads it and checks every
    # flag, then stops (--only_check_args).
    checked = _run([program, "train", f"--flagfile={CONFIG}", "--seed=2",
                    "--only_check_args"], cwd=str(elsewhere), env=env)
    assert (checked.returncode, checked.stderr) == (0, "")
    missing = _run([program, "train", "--flagfile=configs/pong_fast.cfg",
                    "--only_check_args"], cwd=str(elsewhere), env=env)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1, missing.stderr


def test_editable_install_in_a_new_virtual_environment(tmp_path):
    src = _copy_sources(str(tmp_path / "src"))
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                cwd=str(tmp_path))
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    site = _run([python, "-c", "import sysconfig; "
                 "print(sysconfig.get_paths()['purelib'])"],
                cwd=str(tmp_path)).stdout.strip()
    # This environment's packages (TensorFlow, setuptools, ...), not its
    # own installation of impala_tf (its .pth files are not read from here).
    with open(os.path.join(site, "this_env.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    _pip("--python", python, "install", "--editable", src, cwd=str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env()
    where = _run([python, "-c", "import impala_tf.cli.main as m, atari57, "
                  "dmlab30; print(m.__file__, atari57.__file__, "
                  "dmlab30.__file__)"], cwd=str(elsewhere), env=env)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert path.startswith(src), where.stdout
    helped = _run([str(venv / "bin" / "impala-tf"), "--help"],
                  cwd=str(elsewhere), env=env)
    assert helped.returncode == 0, helped.stderr
    assert "\n  atari57 report " in helped.stdout


# -- The Makefile (dry runs: make -n / -q; nothing is installed). ----------

def _make(*args):
    return _run(["make", "--no-print-directory", "-C", testing.REPO, *args],
                cwd=testing.REPO, env=_clean_env(), timeout=60)


@pytest.fixture
def ready_venv(tmp_path):
    """A stand-in .venv whose install stamp is newer than its inputs."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    stamp = venv / ".installed"
    stamp.write_text("")
    newest = max(os.path.getmtime(os.path.join(testing.REPO, f))
                 for f in ("requirements.txt", "pyproject.toml"))
    os.utime(stamp, (newest + 60, newest + 60))
    return str(venv)


def _old_python(tmp_path):
    """An executable that is Python 3.8 to a version check."""
    fake = tmp_path / "python3.8"
    fake.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c 'import sys; code = sys.argv.pop(1); "
        "sys.version_info = (3, 8, 10, \"final\", 0); exec(code)' \"$2\"\n")
    fake.chmod(0o755)
    return str(fake)


needs_make = pytest.mark.skipif(shutil.which("make") is None,
                                     reason="no make")


@needs_make
def test_make_train_runs_the_installed_program(ready_venv):
    result = _make("-n", f"VENV={ready_venv}", "train",
                   "CONFIG=configs/atari_deep_expert.cfg", "ARGS=--seed=2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"{ready_venv}/bin/impala-tf train --flagfile="
                             "configs/atari_deep_expert.cfg --seed=2\n")
    bench = _make("-n", f"VENV={ready_venv}", "bench")
    assert bench.stdout == (f"{ready_venv}/bin/python -m "
                            "benchmarks.throughput --quick\n"), bench.stderr


@needs_make
def test_make_reinstalls_after_requirements_or_pyproject_change(ready_venv):
    stamp = f"{ready_venv}/.installed"
    assert _make("-q", f"VENV={ready_venv}", stamp).returncode == 0
    for changed in ("requirements.txt", "pyproject.toml"):
        result = _make("-n", f"-W{changed}", f"VENV={ready_venv}", stamp)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("installing TensorFlow") == 1
        assert f"{ready_venv}/bin/python -m pip install -q --no-deps -e ." in (
            result.stdout)
    assert _make("-q", "-WREADME.md", f"VENV={ready_venv}",
                 stamp).returncode == 0


@needs_make
def test_make_needs_python_3_10(tmp_path):
    old = _old_python(tmp_path)
    venv = tmp_path / "new_venv"
    result = _make("-n", f"VENV={venv}", f"PYTHON={old}", "train")
    assert result.returncode == 2
    assert "installing" not in result.stdout
    assert result.stderr.endswith(
        f"*** {old} is Python 3.8, and impala_tf needs 3.10 or newer (make "
        "PYTHON=/path/to/python3.11).  Stop.\n")
    assert result.stderr.count("\n") == 1
    assert not venv.exists()
    missing = _make("check-python", f"PYTHON={tmp_path}/none")
    assert missing.returncode == 2
    assert "does not run" in missing.stderr
    assert _make("check-python", f"PYTHON={sys.executable}").returncode == 0
