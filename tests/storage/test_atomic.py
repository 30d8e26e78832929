"""The one atomic-write helper: a reader sees the old file (or directory) or the whole new one."""

from __future__ import annotations

import os
import stat

import pytest

from mimical.atomic import (
    atomic_directory,
    atomic_file,
    atomic_write,
    rename_new,
    staging_directory,
)


def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


def test_a_file_is_replaced_whole_and_no_partial_stays(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old")
    with atomic_file(path) as out:
        out.write(b"new ")
        assert path.read_text() == "old"  # not yet: readers still see the old file
        out.write(b"content")
    assert path.read_text() == "new content"
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(path) as out:
        out.write(b"half")
        raise RuntimeError("disk went away")
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_text_is_written_as_utf8(tmp_path):
    atomic_write(tmp_path / "config", "naïve 🙂")
    assert (tmp_path / "config").read_text(encoding="utf-8") == "naïve 🙂"


def test_private_files_and_directories_are_the_owners_alone(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "shared", b"x")
        atomic_write(tmp_path / "private", b"x", private=True)
        with atomic_directory(tmp_path / "models", private=True) as staging:
            (staging / "saved_model.pb").write_bytes(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "models").stat().st_mode) == 0o700


def test_a_directory_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "base"
    target.mkdir()
    (target / "old.json").write_text("{}")
    with atomic_directory(target) as staging:
        (staging / "new.json").write_text("{}")
        assert [p.name for p in target.iterdir()] == ["old.json"]
    assert [p.name for p in target.iterdir()] == ["new.json"]
    assert leftovers(tmp_path) == []


def test_a_failed_directory_leaves_the_old_one_and_no_staging(tmp_path):
    target, staging_parent = tmp_path / "models" / "alice" / "3", tmp_path / ".staging"
    staging_parent.mkdir()
    with pytest.raises(RuntimeError), atomic_directory(target, staging_parent=staging_parent):
        raise RuntimeError("download failed")
    assert not target.exists()
    assert list(staging_parent.iterdir()) == []


def test_rename_new_never_replaces_a_taken_name(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_text("first")
    (tmp_path / "2").mkdir()  # empty: a plain rename would replace it
    with staging_directory(tmp_path / "new") as staging:
        (staging / "saved_model.pb").write_text("second")
        assert not rename_new(staging, tmp_path / "1")
        assert not rename_new(staging, tmp_path / "2")
        assert rename_new(staging, tmp_path / "3")
    assert (tmp_path / "1" / "saved_model.pb").read_text() == "first"
    assert list((tmp_path / "2").iterdir()) == []
    assert (tmp_path / "3" / "saved_model.pb").read_text() == "second"
    assert leftovers(tmp_path) == []
