"""Tests of helpers.core.data: loading, splitting, normalizing, checking and downloading CIFAR-10."""
import hashlib
import http.server
import io
import os
import pickle
import shlex
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import BATCH_FILES, CLASS_NAMES, write_fake_cifar
from helpers.core import data
from helpers.core.data import download_cifar10, find_batches_dir, load_cifar10
from helpers.errors import ConfigError, DataError


def read_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (n, 3072) and labels (n,) of one batch file, as written."""
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    return batch[b"data"], np.array(batch[b"labels"])


def assert_normalized(X: np.ndarray, pixels: np.ndarray, cifar) -> None:
    """X should be pixels normalized with cifar's statistics, computed here the plain way."""
    np.testing.assert_allclose(X, (pixels / 255 - cifar.mean) / cifar.std, rtol=1e-5, atol=1e-4)


def rewrite_batch(path: Path, **changes) -> None:
    """Rewrite the pickled batch at path with some keys replaced (bytes keys given as str)."""
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch.update({key.encode(): value for key, value in changes.items()})
    path.write_bytes(pickle.dumps(batch))


def make_archive(path: Path, folder: Path, extra: list[tarfile.TarInfo] = ()) -> str:
    """Write folder as cifar-10-batches-py/ into the tar.gz path, plus extra; return its MD5."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        for member in extra:
            tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    return hashlib.md5(path.read_bytes()).hexdigest()


def evil_file(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = len(b"evil")
    return member


def evil_link(name: str, kind: bytes, target: str = "/etc/passwd") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = target
    return member


# --- Loading fake data --------------------------------------------------------


def test_small_split_shapes_dtypes_and_layout(fake_cifar):
    cifar = load_cifar10(fake_cifar.parent, split="small")
    for part in (cifar.train, cifar.val, cifar.test):
        assert part.X.shape == (20, 3072)
        assert part.X.dtype == np.float32
        assert part.X.flags.c_contiguous
        assert part.y.shape == (20,)
        assert part.y.dtype == np.int64
    assert cifar.mean.shape == cifar.std.shape == (3072,)
    assert cifar.mean.dtype == cifar.std.dtype == np.float64
    assert cifar.class_names == CLASS_NAMES
    assert cifar.folder == fake_cifar.resolve()


def test_small_split_uses_batch_1_2_and_test(fake_cifar):
    cifar = load_cifar10(fake_cifar, split="small")
    parts = {"data_batch_1": cifar.train, "data_batch_2": cifar.val, "test_batch": cifar.test}
    for name, part in parts.items():
        pixels, labels = read_raw(fake_cifar / name)
        np.testing.assert_array_equal(part.y, labels)
        assert_normalized(part.X, pixels, cifar)


def test_training_statistics_normalize_train_and_only_train(fake_cifar):
    cifar = load_cifar10(fake_cifar, split="small")
    train_pixels, _ = read_raw(fake_cifar / "data_batch_1")
    np.testing.assert_allclose(cifar.mean, train_pixels.mean(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(cifar.std, (train_pixels / 255).std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cifar.train.X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(cifar.train.X.std(axis=0), 1, atol=1e-5)
    # Validation images are normalized with the training statistics, so theirs are off.
    assert np.abs(cifar.val.X.mean(axis=0)).max() > 0.1


def test_feature_stats_over_chunks_equal_whole_array_stats():
    pixels = np.random.default_rng(1).integers(0, 256, size=(23, 3072), dtype=np.uint8)
    mean, std = data._feature_stats(pixels, chunk_rows=5)
    np.testing.assert_allclose(mean, pixels.mean(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(std, (pixels / 255).std(axis=0), rtol=1e-12)


def test_report_split_keeps_last_5000_for_validation(tmp_path):
    folder = write_fake_cifar(tmp_path, n_per_batch=1010)  # 5050 images: 50 train, 5000 validate
    cifar = load_cifar10(folder)
    batches = [read_raw(folder / name) for name in BATCH_FILES[:5]]
    pixels = np.concatenate([X for X, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    assert len(cifar.train.y) == 50 and len(cifar.val.y) == 5000 and len(cifar.test.y) == 1010
    np.testing.assert_array_equal(cifar.train.y, labels[:50])
    np.testing.assert_array_equal(cifar.val.y, labels[50:])
    np.testing.assert_allclose(cifar.mean, pixels[:50].mean(axis=0) / 255, rtol=1e-12)
    assert_normalized(cifar.train.X, pixels[:50], cifar)
    assert_normalized(cifar.val.X[::100], pixels[50::100], cifar)  # a sample is enough, and quick


def test_report_split_needs_more_than_5000_training_images(fake_cifar):
    with pytest.raises(DataError, match="too few for the report split"):
        load_cifar10(fake_cifar)


def test_unknown_split_lists_the_valid_ones(fake_cifar):
    with pytest.raises(ConfigError, match="report, small"):
        load_cifar10(fake_cifar, split="full")


# --- Where the data is looked for --------------------------------------------


@pytest.mark.parametrize("form", ["parent", "batches folder"])
def test_data_dir_may_be_the_parent_or_the_batches_folder(fake_cifar, form):
    given = fake_cifar.parent if form == "parent" else fake_cifar
    assert find_batches_dir(given) == fake_cifar.resolve()
    assert find_batches_dir(str(given)) == fake_cifar.resolve()


def test_environment_variable_names_the_folder(fake_cifar, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(fake_cifar.parent))
    assert find_batches_dir() == fake_cifar.resolve()
    assert len(load_cifar10(split="small").train.y) == 20


def test_argument_wins_over_environment_variable(fake_cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "nowhere"))
    assert find_batches_dir(fake_cifar) == fake_cifar.resolve()


def test_default_is_data_folder_of_the_repository(fake_cifar, monkeypatch):
    assert data.DEFAULT_DATA_DIR == Path(__file__).resolve().parent.parent / "data"
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", fake_cifar.parent)
    assert find_batches_dir() == fake_cifar.resolve()


def test_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DataError) as caught:
        find_batches_dir(tmp_path / "nowhere")
    message = str(caught.value)
    assert str(tmp_path / "nowhere") in message
    assert "python -m helpers download" in message and "CIFAR10_DIR" in message


def test_load_does_not_download(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_cifar10 must not download")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match="python -m helpers download"):
        load_cifar10(tmp_path)


# --- n_train ------------------------------------------------------------------


def test_n_train_keeps_the_first_images_only(fake_cifar):
    cifar = load_cifar10(fake_cifar, split="small", n_train=7)
    pixels, labels = read_raw(fake_cifar / "data_batch_1")
    np.testing.assert_array_equal(cifar.train.y, labels[:7])
    np.testing.assert_allclose(cifar.mean, pixels[:7].mean(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(cifar.train.X.mean(axis=0), 0, atol=1e-5)
    assert len(cifar.val.y) == 20 and len(cifar.test.y) == 20


def test_n_train_of_one_gives_finite_values(fake_cifar):
    cifar = load_cifar10(fake_cifar, split="small", n_train=1)
    assert np.all(np.isfinite(cifar.train.X)) and np.all(np.isfinite(cifar.test.X))
    np.testing.assert_array_equal(cifar.train.X, 0)


@pytest.mark.parametrize("n_train", [0, -3, 21, 2.5, True])
def test_bad_n_train_is_a_config_error(fake_cifar, n_train):
    with pytest.raises(ConfigError, match="n_train"):
        load_cifar10(fake_cifar, split="small", n_train=n_train)


# --- Damaged files ------------------------------------------------------------


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "missing file": lambda path: path.unlink(),
    "truncated pickle": truncate,
    "not a pickle": lambda path: path.write_bytes(b"<html>Not Found</html>"),
    "empty file": lambda path: path.write_bytes(b""),
    "not a dict": lambda path: path.write_bytes(pickle.dumps([1, 2, 3])),
    "no labels": lambda path: path.write_bytes(pickle.dumps({b"data": np.zeros((20, 3072))})),
    "wrong shape": lambda path: rewrite_batch(path, data=np.zeros((20, 1024), np.uint8)),
    "too few labels": lambda path: rewrite_batch(path, labels=[0] * 19),
    "float data": lambda path: rewrite_batch(path, data=np.zeros((20, 3072))),
    "pixels above 255": lambda path: rewrite_batch(path, data=np.full((20, 3072), 256, np.int16)),
    "label 10": lambda path: rewrite_batch(path, labels=[10] + [0] * 19),
    "label -1": lambda path: rewrite_batch(path, labels=[-1] + [0] * 19),
    "text labels": lambda path: rewrite_batch(path, labels=["cat"] * 20),
}


@pytest.mark.parametrize("name", ["data_batch_1", "data_batch_2", "test_batch"])
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_damaged_batch_is_a_data_error_naming_the_file(fake_cifar, name, corruption):
    CORRUPTIONS[corruption](fake_cifar / name)
    with pytest.raises(DataError) as caught:
        load_cifar10(fake_cifar, split="small")
    message = str(caught.value)
    assert str(fake_cifar / name) in message
    assert "python -m helpers download" in message


@pytest.mark.parametrize("corruption", ["missing file", "truncated pickle", "not a dict"])
def test_damaged_meta_is_a_data_error_naming_the_file(fake_cifar, corruption):
    CORRUPTIONS[corruption](fake_cifar / "batches.meta")
    with pytest.raises(DataError, match="batches.meta"):
        load_cifar10(fake_cifar, split="small")


def test_meta_with_wrong_number_of_names_is_a_data_error(fake_cifar):
    (fake_cifar / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"cat", b"dog"]}))
    with pytest.raises(DataError, match="batches.meta"):
        load_cifar10(fake_cifar, split="small")


def test_integer_pixels_within_range_are_accepted(fake_cifar):
    pixels, _ = read_raw(fake_cifar / "data_batch_1")
    rewrite_batch(fake_cifar / "data_batch_1", data=pixels.astype(np.int64))
    cifar = load_cifar10(fake_cifar, split="small")
    np.testing.assert_allclose(cifar.mean, pixels.mean(axis=0) / 255, rtol=1e-12)


# --- Hostile files: a pickle may run any command --------------------------------


class RunsACommand:
    """Pickled, this is a call of os.system: a plain pickle.load of it runs the command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("name", ["data_batch_1", "batches.meta"])
def test_a_pickle_that_would_run_a_command_is_refused_and_runs_nothing(fake_cifar, tmp_path, name):
    marker = tmp_path / "the command ran"
    path = fake_cifar / name
    content = pickle.loads(path.read_bytes())
    content[b"label_names" if name == "batches.meta" else b"labels"] = RunsACommand(f"touch {shlex.quote(str(marker))}")
    hostile = pickle.dumps(content)
    # The threat is real: the ordinary way of reading CIFAR-10 runs the command.
    pickle.loads(hostile)
    assert marker.exists()
    marker.unlink()

    path.write_bytes(hostile)
    with pytest.raises(DataError) as caught:
        load_cifar10(fake_cifar, split="small")
    assert not marker.exists()
    message = str(caught.value)
    assert str(path) in message and "is not an official CIFAR-10 batch" in message
    assert "system" in message and "python -m helpers download" in message


@pytest.mark.parametrize("name", [b"builtins\neval", b"subprocess\nPopen", b"numpy\nload", b"copyreg\n_reconstructor"])
def test_only_what_builds_a_numpy_array_may_be_called(fake_cifar, name):
    # GLOBAL, an argument tuple ("x",), REDUCE: a call of name("x").
    (fake_cifar / "data_batch_1").write_bytes(b"\x80\x02c" + name + b"\nX\x01\x00\x00\x00x\x85R.")
    with pytest.raises(DataError, match="not an official CIFAR-10 batch"):
        load_cifar10(fake_cifar, split="small")


def python2_pickle(obj) -> bytes:
    """obj pickled as the official batches were: by Python 2's cPickle, protocol 2, with NumPy 1.

    Python 2 strings are bytes here, and an array is rebuilt by
    numpy.core.multiarray._reconstruct(ndarray, (0,), b"b") and then given its
    state (version 1, shape, dtype, Fortran order, raw bytes); a dtype by
    numpy.dtype(b"u1", 0, 1) and its state (3, b"|", None, None, None, -1, -1, 0).
    """
    out = bytearray(b"\x80\x02")

    def put(x):
        nonlocal out
        if isinstance(x, dict):
            out += b"}("
            for key, value in x.items():
                put(key)
                put(value)
            out += b"u"
        elif isinstance(x, list):
            out += b"]("
            for value in x:
                put(value)
            out += b"e"
        elif isinstance(x, tuple):
            out += b"("
            for value in x:
                put(value)
            out += b"t"
        elif isinstance(x, bool):
            out += b"\x88" if x else b"\x89"
        elif isinstance(x, int):
            out += b"J" + struct.pack("<i", x)
        elif isinstance(x, bytes):
            out += b"T" + struct.pack("<I", len(x)) + x
        elif x is None:
            out += b"N"
        elif isinstance(x, np.dtype):
            out += b"cnumpy\ndtype\n"
            put((x.str[1:].encode(), 0, 1))
            out += b"R"
            put((3, x.str[:1].encode(), None, None, None, -1, -1, 0))
            out += b"b"
        elif isinstance(x, np.ndarray):
            out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
            put((0,))
            put(b"b")
            out += b"\x87R"  # TUPLE3, REDUCE
            put((1, x.shape, x.dtype, False, np.ascontiguousarray(x).tobytes()))
            out += b"b"
        else:
            raise TypeError(type(x))

    put(obj)
    return bytes(out + b".")


def test_batches_pickled_as_the_official_ones_load(fake_cifar):
    expected = load_cifar10(fake_cifar, split="small")
    for name in (*BATCH_FILES, "batches.meta"):
        path = fake_cifar / name
        content = pickle.loads(path.read_bytes())
        official = python2_pickle(content)
        assert pickle.loads(official, encoding="bytes").keys() == content.keys()
        path.write_bytes(official)
    cifar = load_cifar10(fake_cifar, split="small")
    np.testing.assert_array_equal(cifar.train.X, expected.train.X)
    np.testing.assert_array_equal(cifar.test.y, expected.test.y)
    assert cifar.class_names == CLASS_NAMES


# --- Downloading ----------------------------------------------------------------


@pytest.fixture
def archive(tmp_path) -> tuple[Path, str]:
    """A tar.gz of a fake cifar-10-batches-py, laid out like the official archive, and its MD5."""
    source = write_fake_cifar(tmp_path / "source")
    path = tmp_path / "cifar-10-python.tar.gz"
    return path, make_archive(path, source)


def test_download_unpacks_a_verified_archive(archive, tmp_path):
    path, md5 = archive
    root = tmp_path / "data"
    folder = download_cifar10(root, url=path.as_uri(), md5=md5, progress=False)
    assert folder == (root / "cifar-10-batches-py").resolve()
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]  # no temporary leftovers
    assert len(load_cifar10(root, split="small").train.y) == 20


def test_download_accepts_upper_case_md5_and_shows_progress(archive, tmp_path, capsys):
    path, md5 = archive
    download_cifar10(tmp_path / "data", url=path.as_uri(), md5=md5.upper(), progress=True)
    assert "CIFAR-10" in capsys.readouterr().err


def test_download_without_md5_skips_the_check(archive, tmp_path):
    path, _ = archive
    folder = download_cifar10(tmp_path / "data", url=path.as_uri(), md5=None, progress=False)
    assert (folder / "data_batch_5").is_file()


def test_download_does_nothing_when_the_data_loads(fake_cifar, tmp_path):
    # The URL does not exist: reaching for it would raise.
    url = (tmp_path / "absent.tar.gz").as_uri()
    assert download_cifar10(fake_cifar.parent, url=url, progress=False) == fake_cifar.resolve()


def test_download_replaces_a_damaged_copy(archive, tmp_path):
    path, md5 = archive
    folder = write_fake_cifar(tmp_path / "data", seed=5)
    truncate(folder / "data_batch_3")
    download_cifar10(tmp_path / "data", url=path.as_uri(), md5=md5, progress=False)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["cifar-10-batches-py"]
    fresh, _ = read_raw(folder / "data_batch_3")
    original, _ = read_raw(tmp_path / "source" / "cifar-10-batches-py" / "data_batch_3")
    np.testing.assert_array_equal(fresh, original)


def test_download_into_the_batches_folder_itself(archive, tmp_path):
    path, md5 = archive
    target = tmp_path / "data" / "cifar-10-batches-py"
    assert download_cifar10(target, url=path.as_uri(), md5=md5, progress=False) == target.resolve()
    assert (target / "test_batch").is_file()


def test_wrong_md5_keeps_nothing(archive, tmp_path):
    path, md5 = archive
    root = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        download_cifar10(root, url=path.as_uri(), progress=False)  # the official MD5
    message = str(caught.value)
    assert data.OFFICIAL_MD5 in message and md5 in message and "--md5" in message
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    "member",
    [
        evil_file("../evil"),
        evil_file("cifar-10-batches-py/../../evil"),
        evil_file("/tmp/evil-cifar-test"),
        evil_link("cifar-10-batches-py/evil", tarfile.SYMTYPE),
        evil_link("cifar-10-batches-py/evil", tarfile.SYMTYPE, target="data_batch_1"),
        evil_link("cifar-10-batches-py/evil", tarfile.LNKTYPE),
        evil_link("cifar-10-batches-py/evil", tarfile.CHRTYPE),
    ],
    ids=lambda member: f"{member.name} type {member.type!r} to {member.linkname!r}",
)
def test_malicious_member_is_refused_and_nothing_written(tmp_path, member):
    source = write_fake_cifar(tmp_path / "source")
    path = tmp_path / "evil.tar.gz"
    md5 = make_archive(path, source, extra=[member])
    root = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        download_cifar10(root, url=path.as_uri(), md5=md5, progress=False)
    assert repr(member.name) in str(caught.value)
    assert list(root.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil-cifar-test").exists()


@pytest.mark.parametrize("checked", [False, True], ids=["md5 skipped", "md5 of the cut archive"])
def test_truncated_archive_keeps_nothing(archive, tmp_path, checked):
    path, _ = archive
    truncate(path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest() if checked else None
    root = tmp_path / "data"
    with pytest.raises(DataError, match="could not be unpacked"):
        download_cifar10(root, url=path.as_uri(), md5=md5, progress=False)
    assert list(root.iterdir()) == []


def test_archive_without_the_batches_folder_keeps_nothing(tmp_path):
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(write_fake_cifar(tmp_path / "source"), arcname="some-other-folder")
    root = tmp_path / "data"
    with pytest.raises(DataError, match="does not hold a usable cifar-10-batches-py"):
        download_cifar10(root, url=path.as_uri(), md5=None, progress=False)
    assert list(root.iterdir()) == []


def test_unreachable_url_says_how_to_use_a_local_copy(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        download_cifar10(root, url=(tmp_path / "absent.tar.gz").as_uri(), progress=False)
    message = str(caught.value)
    assert "failed" in message and "CIFAR10_DIR" in message
    assert "--from file:///path/to/cifar-10-python.tar.gz --md5 HEX" in message
    assert list(root.iterdir()) == []


class CutOffHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1000 bytes, sends 100, and closes the connection."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 100)

    def log_message(self, *args):
        pass


def test_download_cut_short_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")  # the server is local; never go through a proxy
    server = http.server.HTTPServer(("127.0.0.1", 0), CutOffHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    root = tmp_path / "data"
    url = f"http://127.0.0.1:{server.server_port}/cifar-10-python.tar.gz"
    try:
        with pytest.raises(DataError, match="100 of 1000 bytes"):
            download_cifar10(root, url=url, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("url", ["/path/to/cifar-10-python.tar.gz", "ftp://example.org/c.tar.gz"])
def test_url_must_be_http_or_file(tmp_path, url):
    with pytest.raises(ConfigError, match="file://"):
        download_cifar10(tmp_path, url=url, progress=False)


# --- The real data ------------------------------------------------------------


def test_real_data_report_split(cifar_dir):
    cifar = load_cifar10(cifar_dir)
    assert (len(cifar.train.y), len(cifar.val.y), len(cifar.test.y)) == (45000, 5000, 10000)
    for part in (cifar.train, cifar.val, cifar.test):
        assert part.X.shape == (len(part.y), 3072)
        assert part.X.dtype == np.float32 and part.X.flags.c_contiguous
        assert part.y.dtype == np.int64
        assert set(np.unique(part.y)) == set(range(10))
    assert cifar.class_names == CLASS_NAMES
    assert np.all((cifar.mean > 0) & (cifar.mean < 1)) and np.all(cifar.std > 0)
    # A sample of features, since the float64 statistics of all of them cost a lot of memory.
    sample = cifar.train.X[:, ::97].astype(np.float64)
    np.testing.assert_allclose(sample.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(sample.std(axis=0), 1, atol=1e-4)
