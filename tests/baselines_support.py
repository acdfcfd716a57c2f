"""A helper shared by the tests of the Table 1 architectures
(test_mode.py, test_a3c.py): the tiny training config with an
architecture. A support module, not a test file."""

import dataclasses

from impala_tf import testing


def architecture_config(tmp_path, architecture, **changes):
    """`testing.tiny_train_config(tmp_path)` (1 actor x 1 environment,
    batch 2) with `--architecture=architecture` and `changes` to the
    config's other fields; the config's checks run."""
    config = testing.tiny_train_config(tmp_path)
    return dataclasses.replace(
        config, actor=dataclasses.replace(config.actor,
                                          architecture=architecture),
        **changes)
