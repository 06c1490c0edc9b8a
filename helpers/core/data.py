"""CIFAR-10: find, check, load, split, normalize, and download.

The data is read in the official "python version" layout, a folder
``cifar-10-batches-py/`` holding ``data_batch_1`` .. ``data_batch_5``,
``test_batch`` and ``batches.meta``. Each batch is a pickle of a dict with
``b"data"``, a uint8 array (10000, 3072) whose rows are images (1024 red, then
1024 green, then 1024 blue values, each channel a row-major 32 x 32 grid), and
``b"labels"``, a list of 10000 integers in 0..9.

Images come back one per row, as float32 (n, 3072): half the memory of
float64, and precise enough for stochastic gradient descent. The per-feature
mean and standard deviation come from the training part only, so validation
and test images are normalized exactly as unseen images would be.

The batches are pickles, and a pickle may call any function while it loads:
a crafted "copy of CIFAR-10" could run any command. So they are read with an
unpickler that rebuilds only what the official files hold (dicts, lists,
bytes, integers and NumPy arrays) and refuses anything else before it runs.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import re
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..files import check_writable_folder
from ..progress import progress_bar

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"

BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
ALL_FILES = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SPLITS = ("report", "small")
VAL_SIZE = 5000  # images the "report" split keeps aside for validation
BATCH_SIZE = 10000  # images in each batch file of the official data
N_FEATURES = 3072  # 32 x 32 pixels x 3 colour channels
N_CLASSES = 10

_RECONSTRUCT = np.empty(0).__reduce__()[0]
"""The function NumPy rebuilds a pickled array with (numpy.core.multiarray._reconstruct)."""
_SAFE_GLOBALS = {
    # The official archive was pickled by Python 2 with NumPy 1; NumPy 2 moved
    # the function to numpy._core, where copies pickled since then name it.
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
"""Everything a CIFAR-10 batch may ask the unpickler to call: what makes a NumPy array."""

_GET_DATA = (
    "Run `python -m helpers download`, or set CIFAR10_DIR to a folder holding "
    f"{BATCHES_FOLDER}."
)
_REFETCH = (
    "Re-download the data with `python -m helpers download` (it replaces a "
    f"damaged copy), or rebuild {BATCHES_FOLDER} from a good copy."
)
_LOCAL_COPY = (
    "Without network access, set CIFAR10_DIR to a folder holding a local copy of "
    f"{BATCHES_FOLDER}, or download from a local archive with "
    "`python -m helpers download --from file:///path/to/cifar-10-python.tar.gz --md5 HEX`."
)


@dataclass
class Split:
    """Images and labels of one part of the data set.

    X: float32 (n, 3072), C-contiguous, one normalized image per row.
    y: int64 (n,), class indices in 0..9.
    """

    X: np.ndarray
    y: np.ndarray


@dataclass
class Cifar10:
    """The three parts of CIFAR-10 and how they were normalized.

    mean, std: float64 (3072,), per feature, of the training part on the
    [0, 1] scale; an image x in [0, 1] was mapped to (x - mean) / std.
    folder and split say where it came from: load_cifar10(folder, split,
    len(train.y)) loads it again, e.g. in another process.
    """

    train: Split
    val: Split
    test: Split
    mean: np.ndarray
    std: np.ndarray
    class_names: list[str]
    folder: Path
    split: str = "report"


def find_batches_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the cifar-10-batches-py folder to read.

    data_dir, else the environment variable CIFAR10_DIR, else data/ in the
    repository, may be the folder that holds cifar-10-batches-py or that
    folder itself.
    """
    root = _data_root(data_dir)
    if (root / BATCHES_FOLDER).is_dir():
        return root / BATCHES_FOLDER
    if any((root / name).is_file() for name in ALL_FILES):
        return root
    raise DataError(f"No CIFAR-10 data in {root} (looked for {root / BATCHES_FOLDER}). {_GET_DATA}")


def split_sizes(split: str, n_train: int | None = None) -> tuple[int, int, int]:
    """(training, validation, test) images that load_cifar10(split=split, n_train=n_train)
    returns from the official data: what a run will hold, known before reading it.
    """
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    if split == "small":
        train, val = BATCH_SIZE, BATCH_SIZE
    else:
        train, val = len(TRAIN_BATCHES) * BATCH_SIZE - VAL_SIZE, VAL_SIZE
    return (train if n_train is None else min(n_train, train)), val, BATCH_SIZE


def load_cifar10(
    data_dir: str | os.PathLike | None = None, split: str = "report", n_train: int | None = None
) -> Cifar10:
    """Read CIFAR-10, split it, and normalize it with the training statistics.

    split "report": the first 45,000 of the 50,000 training images train, the
    last 5,000 validate. split "small": data_batch_1 trains, data_batch_2
    validates. Both test on test_batch. n_train keeps only the first n_train
    training images (a quick mode); validation and test stay whole.

    Never downloads; see download_cifar10.
    """
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    folder = find_batches_dir(data_dir)
    class_names = _read_class_names(folder / META_FILE)

    (X_train, y_train), (X_val, y_val) = _read_train_val(folder, split)
    X_train, y_train = _keep_first(X_train, y_train, n_train)
    mean, std = _feature_stats(X_train)
    train = _normalized_split(X_train, y_train, mean, std)
    val = _normalized_split(X_val, y_val, mean, std)
    # Free the raw training pixels before the test batch arrives, to lower the peak memory.
    del X_train, X_val
    test = _normalized_split(*_read_batch(folder / TEST_BATCH), mean, std)
    return Cifar10(train, val, test, mean, std, class_names, folder, split)


def download_cifar10(
    data_dir: str | os.PathLike | None = None,
    url: str = OFFICIAL_URL,
    md5: str | None = OFFICIAL_MD5,
    progress: bool = True,
) -> Path:
    """Fetch and unpack the CIFAR-10 archive, unless a readable copy is already there.

    data_dir is resolved as in find_batches_dir. url may be http(s):// or
    file://; md5=None skips the checksum. Returns the cifar-10-batches-py folder.
    A folder that cannot be written is refused before anything is fetched.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise ConfigError(
            f"Cannot download from {url!r}: give an http://, https:// or file:// URL, "
            "e.g. --from file:///path/to/cifar-10-python.tar.gz (url= in Python)."
        )
    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise ConfigError(
            f"The expected MD5 must be 32 hexadecimal digits, got {md5!r}. Pass the archive's "
            "checksum with --md5 (md5= in Python), or --md5 '' (md5=None) to skip the check."
        )
    existing = _readable_batches_dir(data_dir)
    if existing is not None:
        return existing

    root = _data_root(data_dir)
    if root.name == BATCHES_FOLDER:  # data_dir named the batches folder itself
        root = root.parent
    check_writable_folder(root, "--data-dir")
    root.mkdir(parents=True, exist_ok=True)
    target = root / BATCHES_FOLDER
    # Everything happens in a scratch folder inside root, removed whatever
    # happens, so a partial or wrong download never becomes the data folder,
    # and the final rename stays on one file system.
    with tempfile.TemporaryDirectory(prefix=".cifar10-download-", dir=root) as scratch:
        scratch = Path(scratch)
        archive = scratch / "cifar-10-python.tar.gz"
        _fetch(url, archive, progress)
        if md5 is not None:
            _check_md5(archive, url, md5)
        unpacked = _extract_safely(archive, scratch / "unpacked", url)
        _check_unpacked(unpacked, url)
        if target.exists():
            # It failed to load above; move it into the scratch folder to be deleted.
            target.rename(scratch / "damaged")
        unpacked.rename(target)
    return target


# --- Reading -----------------------------------------------------------------


def _data_root(data_dir: str | os.PathLike | None) -> Path:
    """The folder named by data_dir, else by CIFAR10_DIR, else the default."""
    chosen = data_dir or os.environ.get("CIFAR10_DIR") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


class _ForeignPickle(pickle.UnpicklingError):
    """A pickle named a function or class that no official CIFAR-10 file holds."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that calls nothing but the few NumPy functions in _SAFE_GLOBALS.

    Every function or class a pickle names goes through find_class before it
    can be called; refusing it there means a hostile file runs nothing.
    """

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[module, name]
        except KeyError:
            raise _ForeignPickle(f"{module}.{name}") from None


def _unpickle(path: Path, keys: tuple[bytes, ...]) -> dict:
    """Load one file of the official layout: a pickled dict holding keys."""
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {path} is missing. {_REFETCH}")
    # A truncated or corrupt pickle fails in many ways (EOFError,
    # UnpicklingError, ValueError, ...); to the user each means the same.
    try:
        with path.open("rb") as f:
            # encoding="bytes": the official files come from Python 2, whose
            # strings (the keys, the pixels) load as bytes.
            content = _BatchUnpickler(f, encoding="bytes").load()
    except _ForeignPickle as err:
        raise DataError(
            f"CIFAR-10 file {path} is not an official CIFAR-10 batch: it asks to call {err}, "
            "which no official file does, and loading it could run any command, so it was not "
            "read. Use the official data (`python -m helpers download` replaces this copy)."
        ) from None
    except Exception as err:
        raise DataError(
            f"CIFAR-10 file {path} is damaged and cannot be read "
            f"({type(err).__name__}: {err}). {_REFETCH}"
        ) from err
    if not isinstance(content, dict):
        raise DataError(
            f"CIFAR-10 file {path} holds a {type(content).__name__}, not the dict of "
            f"the official layout. {_REFETCH}"
        )
    missing = [key for key in keys if key not in content]
    if missing:
        raise DataError(f"CIFAR-10 file {path} lacks the keys {missing}. {_REFETCH}")
    return content


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file: pixels uint8 (N, 3072) and labels int64 (N,)."""
    batch = _unpickle(path, (b"data", b"labels"))
    pixels, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    problem = None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        problem = f"its labels are not a list of integers ({labels.dtype}, shape {labels.shape})"
    elif pixels.shape != (len(labels), N_FEATURES):
        problem = (
            f"its data has shape {pixels.shape}, expected ({len(labels)}, {N_FEATURES}) "
            f"for {len(labels)} labels"
        )
    elif not np.issubdtype(pixels.dtype, np.integer):
        problem = f"its data has dtype {pixels.dtype}, expected uint8"
    elif pixels.dtype != np.uint8 and np.any((pixels < 0) | (pixels > 255)):
        problem = "its data has values outside 0..255"
    elif np.any((labels < 0) | (labels >= N_CLASSES)):
        problem = f"its labels go from {labels.min()} to {labels.max()}, outside 0..{N_CLASSES - 1}"
    if problem:
        raise DataError(f"CIFAR-10 file {path} is damaged: {problem}. {_REFETCH}")
    return pixels.astype(np.uint8, copy=False), labels.astype(np.int64)


def _read_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read batch files and stack them in order: uint8 (n, 3072), int64 (n,)."""
    batches = [_read_batch(folder / name) for name in names]
    return np.concatenate([X for X, _ in batches]), np.concatenate([y for _, y in batches])


def _read_class_names(path: Path) -> list[str]:
    """The ten class names from batches.meta, in label order."""
    names = _unpickle(path, (b"label_names",))[b"label_names"]
    if not isinstance(names, list) or len(names) != N_CLASSES:
        raise DataError(
            f"CIFAR-10 file {path} is damaged: label_names should be a list of "
            f"{N_CLASSES} names. {_REFETCH}"
        )
    return [name.decode() if isinstance(name, bytes) else str(name) for name in names]


def _read_train_val(
    folder: Path, split: str
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Raw (pixels, labels) of the training and of the validation part of split."""
    if split == "small":
        return _read_batch(folder / "data_batch_1"), _read_batch(folder / "data_batch_2")
    X, y = _read_batches(folder, TRAIN_BATCHES)
    if len(y) <= VAL_SIZE:
        raise DataError(
            f"The training batches in {folder} hold only {len(y)} images, too few for the "
            f"report split, which keeps {VAL_SIZE} for validation. {_REFETCH}"
        )
    return (X[:-VAL_SIZE], y[:-VAL_SIZE]), (X[-VAL_SIZE:], y[-VAL_SIZE:])


def _readable_batches_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The cifar-10-batches-py folder if it is present and every file loads, else None."""
    try:
        folder = find_batches_dir(data_dir)
        _check_folder(folder)
    except DataError:
        return None
    return folder


def _check_folder(folder: Path) -> None:
    """Read every file of the official layout, raising DataError at the first bad one."""
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        _read_batch(folder / name)
    _read_class_names(folder / META_FILE)


# --- Preprocessing -----------------------------------------------------------


def _keep_first(X: np.ndarray, y: np.ndarray, n_train: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first n_train rows of X and y, or all of them when n_train is None."""
    if n_train is None:
        return X, y
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)):
        raise ConfigError(f"n_train must be a whole number, got {n_train!r}.")
    if not 1 <= n_train <= len(y):
        raise ConfigError(
            f"n_train must be between 1 and {len(y)}, the training images available; got {n_train}."
        )
    return X[:n_train], y[:n_train]


def _feature_stats(pixels: np.ndarray, chunk_rows: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature of pixels / 255, each float64 (3072,).

    pixels: uint8 (n, 3072). Works on chunk_rows rows at a time, so that no
    float64 copy of the whole set is ever held, and in two passes (mean, then
    squared deviations from it), which is numerically safer than E[x^2] - E[x]^2.
    """
    chunks = [pixels[start:start + chunk_rows] for start in range(0, len(pixels), chunk_rows)]
    mean = sum(chunk.sum(axis=0, dtype=np.float64) for chunk in chunks) / (255 * len(pixels))
    squares = sum(np.square(chunk / 255 - mean).sum(axis=0) for chunk in chunks)
    std = np.sqrt(squares / len(pixels))
    # A feature constant over the training part (possible with a tiny n_train)
    # would divide by zero; leaving it unscaled maps it to 0 instead.
    std[std == 0] = 1
    return mean, std


def _normalized_split(
    pixels: np.ndarray, labels: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> Split:
    """Scale pixels uint8 (n, 3072) to [0, 1], then standardize with mean and std (3072,)."""
    X = pixels.astype(np.float32)  # a fresh C-contiguous array, normalized in place below
    X /= 255
    X -= mean.astype(np.float32)
    X /= std.astype(np.float32)
    return Split(X, labels)


# --- Downloading -------------------------------------------------------------


def _fetch(url: str, dest: Path, progress: bool) -> None:
    """Copy url into the file dest, showing a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
            expected = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(
                expected, progress, unit="B", unit_scale=True, unit_divisor=1024, desc="CIFAR-10"
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            received = out.tell()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DataError(f"Downloading CIFAR-10 from {url} failed: {err}. {_LOCAL_COPY}") from err
    # A server that closes the connection early ends the stream without an error.
    if expected is not None and received < expected:
        raise DataError(
            f"Downloading CIFAR-10 from {url} failed: the connection closed after "
            f"{received} of {expected} bytes. Try again. {_LOCAL_COPY}"
        )


def _check_md5(archive: Path, url: str, md5: str) -> None:
    """Raise DataError unless the file archive has the MD5 checksum md5."""
    with archive.open("rb") as f:
        actual = hashlib.file_digest(f, "md5").hexdigest()
    if actual != md5.lower():
        raise DataError(
            f"The file downloaded from {url} has MD5 {actual}, expected {md5}: it is damaged "
            "or not the CIFAR-10 archive, so it was not unpacked. If it is a trusted local "
            "copy, pass its checksum with --md5 (md5= in Python)."
        )


def _extract_safely(archive: Path, dest: Path, url: str) -> Path:
    """Unpack the tar.gz archive into dest; return where cifar-10-batches-py should be.

    Only plain files and folders that land inside dest are unpacked: an archive
    could otherwise write anywhere through ../ or absolute names, or links.
    """
    root = dest.resolve()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, root, url)
            # The "data" filter is a second guard, and also drops set-uid bits and the like.
            tar.extractall(root, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"The archive from {url} could not be unpacked ({type(err).__name__}: {err}); it is "
            "damaged or incomplete (or the disk is full). Nothing was kept; download it again."
        ) from err
    return root / BATCHES_FOLDER


def _check_unpacked(folder: Path, url: str) -> None:
    """Raise DataError unless the freshly unpacked folder reads as CIFAR-10."""
    try:
        _check_folder(folder)
    except DataError as err:
        raise DataError(
            f"The archive from {url} does not hold a usable {BATCHES_FOLDER}/ folder, so it "
            f"was not kept. Is it the CIFAR-10 python archive? ({err})"
        ) from err


def _check_member(member: tarfile.TarInfo, root: Path, url: str) -> None:
    """Raise DataError unless member is a plain file or folder landing inside root."""
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"The archive from {url} holds {member.name!r}, which is a link or a device, "
            "not a plain file; refusing to unpack it. Use the official CIFAR-10 archive."
        )
    if not (root / member.name).resolve().is_relative_to(root):
        raise DataError(
            f"The archive from {url} holds {member.name!r}, which would be written outside the "
            "folder it is unpacked into; refusing to unpack it. Use the official CIFAR-10 archive."
        )
