"""pytest's side of `impala_tf.testing`: the mark for tests that start a TF
server, which must run in a private network namespace.

Tests that start no server carry no such mark: they run everywhere. The
helpers (isolated commands, process groups, /proc) are in
`impala_tf.testing`.
"""

import pytest

from impala_tf import testing

requires_netns = pytest.mark.skipif(
    not testing.can_isolate(),
    reason="needs `unshare -n` (root or user namespaces) to keep TF servers "
           "off the network")
