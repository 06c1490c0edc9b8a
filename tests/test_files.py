"""helpers.files: whole-or-nothing writes, and output paths refused before the work rather than after."""
import json
import os
import shutil
from collections import namedtuple

import pytest

from helpers import files
from helpers.errors import ConfigError


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


def test_a_new_file_in_new_folders_is_accepted_and_nothing_is_created(tmp_path):
    files.check_writable_file(tmp_path / "a" / "b" / "run.json", "--json")
    files.check_writable_folder(tmp_path / "out" / "search", "--out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "target, words",
    [
        ("folder", "is a folder"),
        ("under a file", "is a file, not a folder"),
        ("deep under a file", "is a file, not a folder"),
        ("/proc", "cannot create files in /proc"),
        ("/dev/null", "not a regular file"),
    ],
)
def test_a_file_that_cannot_be_written_is_refused_naming_the_flag(tmp_path, target, words):
    (tmp_path / "a file").write_text("")
    path = {
        "folder": tmp_path,
        "under a file": tmp_path / "a file" / "run.json",
        "deep under a file": tmp_path / "a file" / "x" / "run.json",
        "/proc": "/proc/run.json",
        "/dev/null": "/dev/null",
    }[target]
    with pytest.raises(ConfigError, match="--json") as caught:
        files.check_writable_file(path, "--json")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "folder, words", [("a file", "is a file"), ("a file/out", "is a file"), ("/proc/out", "/proc")]
)
def test_a_folder_that_cannot_be_written_is_refused_naming_the_flag(tmp_path, folder, words):
    (tmp_path / "a file").write_text("")
    with pytest.raises(ConfigError, match="--out") as caught:
        files.check_writable_folder(tmp_path / folder, "--out")
    assert words in str(caught.value)


def test_a_file_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    files.check_writable_file(tmp_path / "net.npz", "--save", size=10**5)
    with pytest.raises(ConfigError, match=r"--save: .*net.npz needs about 2 MB, but .* has only 1 MB free"):
        files.check_writable_file(tmp_path / "net.npz", "--save", size=2 * 10**6)
