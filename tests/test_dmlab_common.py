"""envs.dmlab_common: the Table D.2 action set, the Lab's names and the
on-disk level cache."""

import os

import pytest

from impala_tf.envs import dmlab_common
from tests.dmlab_support import TABLE_D2


def test_action_set_is_table_d2():
    assert [list(a) for a in dmlab_common.DEFAULT_ACTION_SET] == TABLE_D2
    assert len(dmlab_common.ACTION_NAMES) == 9


def test_level_cache_fetch_write(tmp_path):
    cache = dmlab_common.LevelCache(tmp_path / "cache")
    target = tmp_path / "map.pk3"
    assert cache.fetch("abc", str(target)) is False
    assert not target.exists()
    source = tmp_path / "compiled.pk3"
    source.write_bytes(b"PK map")
    cache.write("abc", str(source))
    assert (tmp_path / "cache" / "abc").read_bytes() == b"PK map"
    source.write_bytes(b"PK other")
    cache.write("abc", str(source))  # Existing entries are kept.
    assert cache.fetch("abc", str(target)) is True
    assert target.read_bytes() == b"PK map"
    assert not [p for p in os.listdir(tmp_path / "cache") if p != "abc"]
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError):
            cache.fetch(bad, str(target))


def test_action_names_and_lab_dimensions():
    assert dmlab_common.ACTION_NAMES[0] == "forward"
    assert dmlab_common.ACTION_NAMES[-1] == "fire"
    assert len(dmlab_common.LAB_ACTION_NAMES) == 7
    assert all(len(a) == 7 for a in dmlab_common.DEFAULT_ACTION_SET)
    assert dmlab_common.OBSERVATION_NAMES == ("RGB_INTERLEAVED", "INSTR")


def test_level_cache_keeps_no_temporary_file_when_a_write_fails(tmp_path):
    cache = dmlab_common.LevelCache(tmp_path / "cache")
    assert cache.cache_dir == str(tmp_path / "cache")
    with pytest.raises(FileNotFoundError):
        cache.write("abc", str(tmp_path / "no_such.pk3"))
    assert os.listdir(tmp_path / "cache") == []
