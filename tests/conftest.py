"""Fixtures shared by the tests: the real CIFAR-10 folder and small fake copies of it."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from helpers.report import cache
from helpers.core.data import find_batches_dir, load_cifar10
from helpers.errors import DataError

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture(autouse=True)
def unchanged_environment():
    """Put os.environ back after every test.

    Dask's nanny leaves MALLOC_TRIM_THRESHOLD_=65536 in the environment of
    the process that starts a LocalCluster; every process pool the later
    tests start would inherit it and train more slowly (helpers/dask/worker.yaml).
    """
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The real cifar-10-batches-py folder: under CIFAR10_DIR if set, else under <repo>/data."""
    try:
        return find_batches_dir()
    except DataError as err:
        pytest.fail(
            "The tests need the real CIFAR-10 data. From the repository root, build it with "
            f"`python ../shared/cifar10/make_batches.py data/` (or set CIFAR10_DIR).\n{err}"
        )


def write_fake_cifar(root: Path, n_per_batch: int = 20, seed: int = 0) -> Path:
    """Write a random CIFAR-10 in the official layout under root; return its cifar-10-batches-py.

    Each batch holds n_per_batch images, uint8 (n_per_batch, 3072), with
    every class present as soon as n_per_batch >= 10.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in BATCH_FILES:
        labels = rng.permutation(np.arange(n_per_batch) % 10)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(label) for label in labels],
            b"data": rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [c.encode() for c in CLASS_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture
def fake_cifar(tmp_path) -> Path:
    """A fake cifar-10-batches-py folder, 20 random images per batch, under tmp_path/data."""
    return write_fake_cifar(tmp_path / "data")


@pytest.fixture
def cifar(fake_cifar):
    """The fake CIFAR-10, split "small": 20 training, 20 validation, 20 test images."""
    return load_cifar10(fake_cifar, split="small")


@pytest.fixture
def trainings(monkeypatch):
    """The configurations actually trained (not recalled from the cache) by helpers.report.cache, in order."""
    trained = []
    real = cache.run_experiment

    def counting(config, cifar, progress=True):
        trained.append(config)
        return real(config, cifar, progress=False)

    monkeypatch.setattr(cache, "run_experiment", counting)
    return trained


class WorkStarted(Exception):
    """Raised by a recorder: the command got past its checks and started its work."""


def record_work(monkeypatch, targets):
    """Replace each (owner, name) of targets by a recorder; return the names called, in order.

    A recorder raises WorkStarted instead of working, so a test sees whether a
    command reached its work, and which piece of it came first.
    """
    called = []

    def recorder(name):
        def record(*args, **kwargs):
            called.append(name)
            raise WorkStarted(name)

        return record

    for owner, name in targets:
        monkeypatch.setattr(owner, name, recorder(name))
    return called
