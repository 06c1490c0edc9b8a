"""helpers.files: whole-or-nothing writes."""
import json
import os

import pytest

from helpers import files


def test_write_atomically_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "entry.json"
    files.write_atomically(path, b"old")
    files.write_atomically(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert os.listdir(path.parent) == ["entry.json"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, failing):
    path = tmp_path / "entry.json"
    files.write_atomically(path, b"old")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, full_disk)
    with pytest.raises(OSError, match="No space"):
        files.write_atomically(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["entry.json"]


def test_a_written_file_has_the_permissions_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_atomically(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644


def test_write_json_round_trips(tmp_path):
    obj = {"accuracy": 0.5347, "history": {"step": [0, 100]}, "config": None}
    files.write_json(tmp_path / "run.json", obj)
    assert json.loads((tmp_path / "run.json").read_text()) == obj

