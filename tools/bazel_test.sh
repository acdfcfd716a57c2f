#!/usr/bin/env bash
# Builds everything and runs the unit tests with Bazel, offline:
#
#   tools/bazel_test.sh [extra bazel test arguments]
#
# * Uses `bazel` from PATH (or $BAZEL). If there is none and apt-get can be
#   used (root, or password-less sudo), installs Debian's bazel-bootstrap
#   (4.2.3) first. If Bazel cannot be had, prints a "SKIPPED" line and exits
#   0; if installing it fails, exits 1.
# * Needs the virtual environment (.venv, as `make test` creates it) or
#   IMPALA_TF_PYTHON=/abs/path/bin/python.
# * Runs `bazel build //...`, then `bazel test //tests:unit_tests` (the unit
#   tests of every fast test file, as `bazel test //...` runs them one target
#   per file) with bounded resources (--config=ci in .bazelrc:
#   2 jobs, two tests at a time), inside a private network namespace when
#   `unshare -n` works (root), so nothing can be downloaded; then shuts the
#   Bazel server down.
# Exit status: 0 if everything built and passed (or Bazel was skipped),
# non-zero otherwise (Bazel's: 1 build failed, 3 tests failed, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "tools/bazel_test.sh: $*"; }

BAZEL="${BAZEL:-bazel}"

if ! command -v "$BAZEL" >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" != 0 ] && [ -z "$sudo" ]; }; then
    log "SKIPPED: bazel is not installed and cannot be installed here" \
        "(needs apt-get as root); the Bazel build was not tested."
    exit 0
  fi
  log "installing Debian's bazel-bootstrap with apt-get ..."
  start=$SECONDS
  install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends bazel-bootstrap >/tmp/bazel_test_apt.log 2>&1
  }
  if ! install; then
    # No or stale package lists: refresh them once and retry.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q \
      >>/tmp/bazel_test_apt.log 2>&1 || true
    if ! install; then
      tail -n 20 /tmp/bazel_test_apt.log
      log "FAILED: could not install bazel-bootstrap (log: /tmp/bazel_test_apt.log)."
      exit 1
    fi
  fi
  log "installed bazel-bootstrap in $((SECONDS - start)) s."
  BAZEL=bazel
fi

if [ -z "${IMPALA_TF_PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then
  log "FAILED: no .venv/bin/python; create the virtual environment first" \
      "(make test) or set IMPALA_TF_PYTHON."
  exit 1
fi

BAZEL_ARGS=(--config=ci --test_output=errors "$@")
if [ -n "${IMPALA_TF_PYTHON:-}" ]; then
  BAZEL_ARGS+=("--repo_env=IMPALA_TF_PYTHON=${IMPALA_TF_PYTHON}")
fi

# The script body run by bash, possibly inside `unshare -n`. The Bazel client
# talks to its server over the loopback interface, so a new network namespace
# needs `lo` up; the server is shut down inside the same namespace (a server
# left in a namespace that has gone is unreachable).
run_bazel() {
  local bazel="$1"
  shift
  if [ -n "${IMPALA_TF_NETNS:-}" ]; then
    ip link set lo up
  fi
  local status=0
  # --max_idle_secs: a server that is somehow left behind exits by itself.
  # Every target is built; the unit tests run once, in one target
  # (//tests:unit_tests: every fast test file in one pytest process over
  # every CPU, instead of one process importing TensorFlow per file).
  # --test_tag_filters: of the tests built, only that one runs.
  "$bazel" --max_idle_secs=300 test "$@" --test_tag_filters=unit_tests \
    -- //... //tests:unit_tests || status=$?
  "$bazel" --max_idle_secs=300 shutdown || true
  return "$status"
}

start=$SECONDS
status=0
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 &&
    command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
  log "running 'bazel build //...' and 'bazel test //tests:unit_tests' offline (private network namespace) ..."
  IMPALA_TF_NETNS=1 unshare -n bash -c "$(declare -f run_bazel); run_bazel \"\$@\"" \
    bash "$BAZEL" "${BAZEL_ARGS[@]}" || status=$?
else
  log "running 'bazel build //...' and 'bazel test //tests:unit_tests' (no private network namespace here;" \
      "the build downloads nothing either way) ..."
  run_bazel "$BAZEL" "${BAZEL_ARGS[@]}" || status=$?
fi

if [ "$status" = 0 ]; then
  log "PASSED in $((SECONDS - start)) s."
else
  log "FAILED (bazel exit status $status) after $((SECONDS - start)) s."
fi
exit "$status"
