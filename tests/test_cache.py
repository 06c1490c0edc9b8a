import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from helpers import pool, seeds
from helpers.checkpoint import load_network
from helpers.report import cache
from helpers.core.data import load_cifar10
from helpers.core.network import accuracy
from helpers.core.config import TrainConfig

TINY = TrainConfig(hidden=(8,), n_batch=10, n_s=2, cycles=1, evals_per_cycle=1)


def test_a_finished_run_is_recalled_not_trained_again(cifar, tmp_path, trainings):
    first = cache.cached_experiment(TINY, cifar, tmp_path)
    again = cache.cached_experiment(TINY, cifar, tmp_path)
    assert trainings == [TINY]
    assert again == json.loads(json.dumps(first))
    assert cache.lookup(TINY, cifar, tmp_path) == again
    (entry,) = tmp_path.glob("*.json")
    assert entry == cache.entry_path(TINY, cifar, tmp_path)
    assert json.loads(entry.read_text())["summary"]["config"] == TINY.to_dict()


def test_a_lookup_alone_stores_nothing(cifar, tmp_path):
    assert cache.lookup(TINY, cifar, tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "change",
    [dict(lam=0.01), dict(norm="none"), dict(hidden=(9,)), dict(init=1e-3), dict(seed=1), dict(cycles=2),
     dict(n_s=3), dict(eta_max=0.05), dict(n_batch=5), dict(alpha=0.8), dict(evals_per_cycle=2),
     dict(curve_images=5)],
)
def test_every_setting_is_part_of_the_key(cifar, change):
    data = cache.data_identity(cifar)
    assert cache.run_key(replace(TINY, **change), data) != cache.run_key(TINY, data)
    assert cache.run_key(replace(TINY), data) == cache.run_key(TINY, data)


def test_the_data_is_part_of_the_key(fake_cifar, tmp_path):
    from conftest import write_fake_cifar

    whole = cache.data_identity(load_cifar10(fake_cifar, split="small"))
    fewer = cache.data_identity(load_cifar10(fake_cifar, split="small", n_train=10))
    # Another copy of the data set, in a folder of the same name elsewhere: other pixels, other labels.
    other = cache.data_identity(load_cifar10(write_fake_cifar(tmp_path / "other", seed=1), split="small"))
    keys = {cache.run_key(TINY, data) for data in (whole, fewer, other)}
    assert len(keys) == 3
    assert fewer["n_train"] == 10 and whole["n_train"] == 20
    assert cache.data_identity(load_cifar10(fake_cifar, split="small")) == whole


def test_the_split_is_part_of_the_key(cifar_dir):
    report = cache.data_identity(load_cifar10(cifar_dir, split="report", n_train=10000))
    small = cache.data_identity(load_cifar10(cifar_dir, split="small"))
    assert report["n_train"] == small["n_train"] == 10000
    assert report["digest"] != small["digest"]


def test_the_key_ignores_the_order_of_the_settings(cifar):
    data = cache.data_identity(cifar)
    assert cache.run_key(TINY, dict(reversed(data.items()))) == cache.run_key(TINY, data)


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"version": 1, "key": "', b"\xff\xfe not utf-8", b"[1, 2, 3]", b'{"summary": {}}', b"null",
     b'{"version": 0, "key": "KEY", "summary": {}}', b'{"version": 1, "key": "another", "summary": {}}'],
)
def test_a_damaged_entry_is_trained_again_and_replaced(cifar, tmp_path, trainings, damage):
    path = cache.entry_path(TINY, cifar, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(damage.replace(b"KEY", path.stem.encode()))
    with pytest.warns(UserWarning, match="damaged cache entry"):
        summary = cache.cached_experiment(TINY, cifar, tmp_path)
    assert trainings == [TINY]
    assert json.loads(path.read_text())["summary"] == json.loads(json.dumps(summary))
    assert cache.cached_experiment(TINY, cifar, tmp_path) == json.loads(json.dumps(summary))
    assert trainings == [TINY]


def test_a_run_that_cannot_be_stored_is_returned_with_a_warning(cifar, tmp_path, trainings):
    cache.entry_path(TINY, cifar, tmp_path).mkdir(parents=True)  # a folder where the file should be
    with pytest.warns(UserWarning) as warned:
        summary = cache.cached_experiment(TINY, cifar, tmp_path)
    assert "damaged cache entry" in str(warned[0].message)
    assert "Could not store" in str(warned[-1].message)
    assert summary["config"] == TINY.to_dict()
    assert trainings == [TINY]
    assert [p.name for p in tmp_path.iterdir() if p.name != "data"] == [cache.entry_path(TINY, cifar, tmp_path).name]


def test_an_interrupted_run_is_not_stored(cifar, tmp_path, monkeypatch):
    def interrupted(config, cifar, progress=True):
        return {"interrupted": True, "test_accuracy": 0.1}, None

    monkeypatch.setattr(cache, "run_experiment", interrupted)
    assert cache.cached_experiment(TINY, cifar, tmp_path)["interrupted"]
    assert cache.lookup(TINY, cifar, tmp_path) is None


def test_folder_for_is_keyed_by_settings_and_data(cifar, fake_cifar):
    folder = cache.folder_for("search", {"coarse": 10}, cifar, "/c")
    assert folder.parent.as_posix() == "/c" and folder.name.startswith("search-")
    assert cache.folder_for("search", {"coarse": 10}, cifar, "/c") == folder
    assert cache.folder_for("search", {"coarse": 9}, cifar, "/c") != folder
    fewer = load_cifar10(fake_cifar, split="small", n_train=10)
    assert cache.folder_for("search", {"coarse": 10}, fewer, "/c") != folder


def test_the_training_code_is_part_of_the_keys(cifar, monkeypatch):
    """Any change to the code that trains gives new keys: runs of older code
    are trained again instead of being recalled beside runs of the new code."""
    data = cache.data_identity(cifar)
    key, folder = cache.run_key(TINY, data), cache.folder_for("search", {"coarse": 10}, cifar, "/c")
    monkeypatch.setattr(cache, "code_identity", lambda: "another version")
    assert cache.run_key(TINY, data) != key
    assert cache.folder_for("search", {"coarse": 10}, cifar, "/c") != folder


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the package's sources, to edit."""
    copy = tmp_path / "helpers_copy"
    shutil.copytree(cache.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def numeric_sources(folder):
    return [path for pattern in cache.NUMERIC_SOURCES for path in sorted(folder.glob(pattern))]


def test_the_code_identity_is_the_digest_of_the_package(package_copy):
    assert cache.code_digest(package_copy) == cache.code_identity()
    names = {path.name for path in numeric_sources(package_copy)}
    assert {"layers.py", "network.py", "training.py", "experiments.py"} <= names


@pytest.mark.parametrize("edit", [
    lambda source: source + "\n# a comment at the end\n",
    lambda source: source.replace("\n\n\n", "\n\n\n# a comment between definitions\n", 1),
    lambda source: source.replace('"""', '"""Edited: ', 1),  # the module's docstring
    lambda source: source.replace('    """', '    """Edited: ', 1),  # the first function's or class's
    lambda source: source.replace("\n\n\n", "\n\n\n\n", 1),  # blank lines
])
def test_comments_and_docstrings_keep_every_key(package_copy, edit):
    before = cache.code_digest(package_copy)
    for path in numeric_sources(package_copy):
        source = path.read_text()
        if not source:  # an empty __init__.py
            continue
        assert edit(source) != source
        path.write_text(edit(source))
    assert cache.code_digest(package_copy) == before


def test_a_code_edit_in_any_numeric_source_changes_the_keys(package_copy):
    """Any change to the code that trains gives new keys: runs of older code
    are trained again instead of being recalled beside runs of the new code."""
    identities = {cache.code_digest(package_copy)}
    sources = numeric_sources(package_copy)
    for path in sources:
        path.write_text(path.read_text() + "\nSTEP = 1\n")
        identities.add(cache.code_digest(package_copy))
    assert len(identities) == 1 + len(sources)


@pytest.mark.parametrize("old, new", [("BN_EPS = 1e-12", "BN_EPS = 1e-11"), ("(S - mu) ** 2", "(S + mu) ** 2")])
def test_a_changed_constant_or_operator_changes_the_keys(package_copy, old, new):
    layers = package_copy / "core" / "layers.py"
    before = cache.code_digest(package_copy)
    assert old in layers.read_text()
    layers.write_text(layers.read_text().replace(old, new, 1))
    assert cache.code_digest(package_copy) != before


# --- Runs over seeds -------------------------------------------------------------


@pytest.fixture
def seed_trainings(monkeypatch):
    """The configurations trained by helpers.seeds.train_seed, in order (on a thread pool, in this process)."""
    trained = []
    real = seeds.train_seed

    def counting(run):
        trained.append(run.config)
        return real(run)

    monkeypatch.setattr(seeds, "train_seed", counting)
    return trained


@pytest.fixture
def threads():
    with ThreadPoolExecutor(2) as executor:
        yield executor


def test_cached_seeds_trains_every_seed_once_then_recalls_them(cifar, tmp_path, threads, seed_trainings):
    configs = {"BN": TINY, "no BN": replace(TINY, norm="none")}
    runs = cache.cached_seeds(configs, cifar, 3, tmp_path, threads, progress=False)
    assert list(runs) == ["BN", "no BN"]
    for label, config in configs.items():
        assert [run["config"] for run in runs[label]] == [replace(config, seed=s).to_dict() for s in (0, 1, 2)]
    assert len(seed_trainings) == 6 and len(list(tmp_path.glob("*.json"))) == 6
    again = cache.cached_seeds(configs, cifar, 3, tmp_path, threads, progress=False)
    assert len(seed_trainings) == 6
    assert again == json.loads(json.dumps(runs))


def test_a_seed_stored_by_cached_seeds_is_the_run_cached_experiment_recalls(cifar, tmp_path, threads, trainings):
    runs = cache.cached_seeds({"run": TINY}, cifar, 2, tmp_path, threads, progress=False)
    assert cache.cached_experiment(replace(TINY, seed=1), cifar, tmp_path) == runs["run"][1]
    assert trainings == []


def test_cached_seeds_trains_only_the_seeds_missing(cifar, tmp_path, threads, seed_trainings):
    first = cache.cached_experiment(TINY, cifar, tmp_path, progress=False)
    runs = cache.cached_seeds({"a": TINY, "the same again": TINY}, cifar, 3, tmp_path, threads, progress=False)
    assert [config.seed for config in seed_trainings] in ([1, 2], [2, 1])
    assert runs["a"][0] == json.loads(json.dumps(first))
    assert runs["a"] == runs["the same again"]


def test_the_seeds_finished_before_a_failure_are_kept(cifar, tmp_path, monkeypatch):
    real = seeds.train_seed

    def fails_on_seed_2(run):
        if run.config.seed == 2:
            raise MemoryError("seed 2")
        return real(run)

    monkeypatch.setattr(seeds, "train_seed", fails_on_seed_2)
    with ThreadPoolExecutor(1) as one_at_a_time, pytest.raises(MemoryError, match="seed 2"):
        cache.cached_seeds({"run": TINY}, cifar, 3, tmp_path, one_at_a_time, progress=False)
    assert cache.lookup(TINY, cifar, tmp_path) is not None
    assert cache.lookup(replace(TINY, seed=1), cifar, tmp_path) is not None
    assert cache.lookup(replace(TINY, seed=2), cifar, tmp_path) is None


def test_a_run_on_other_data_is_never_stored(cifar, tmp_path, threads, monkeypatch):
    real = seeds.train_seed
    monkeypatch.setattr(seeds, "train_seed", lambda run: ({**real(run)[0], "n_train": 7}, None))
    with pytest.raises(RuntimeError, match="nothing stored"):
        cache.cached_seeds({"run": TINY}, cifar, 2, tmp_path, threads, progress=False)
    assert list(tmp_path.glob("*.json")) == []


def test_cached_seeds_on_its_own_pool_of_processes(fake_cifar, tmp_path):
    cifar = load_cifar10(fake_cifar, split="small", n_train=15)
    runs = cache.cached_seeds({"run": TINY}, cifar, 2, tmp_path, progress=False)
    assert [run["n_train"] for run in runs["run"]] == [15, 15]
    assert cache.lookup(replace(TINY, seed=1), cifar, tmp_path) == runs["run"][1]


def test_a_run_on_its_own_is_trained_with_one_blas_thread(cifar, tmp_path, monkeypatch):
    """Like each seed of a pool: one run alone must not get both cores' threads, which may sum in another order."""
    pools = []

    def recording_pool(workers, blas_threads=None):
        pools.append((workers, blas_threads))
        return ThreadPoolExecutor(workers)

    monkeypatch.setattr(pool, "process_pool", recording_pool)
    cache.cached_seeds({"run": TINY}, cifar, 1, tmp_path, progress=False)
    cache.cached_network(replace(TINY, seed=5), cifar, tmp_path, progress=False)
    assert pools == [(1, 1), (1, 1)]


# --- Trained networks --------------------------------------------------------------


def same_network(a, b):
    return (a.dims == b.dims and a.params.keys() == b.params.keys()
            and all(np.array_equal(a.params[n], b.params[n]) for n in a.params)
            and all(np.array_equal(a.running[n], b.running[n]) for n in a.running))


def test_the_network_is_trained_once_then_loaded_from_its_checkpoint(cifar, tmp_path, threads, seed_trainings):
    net, summary = cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)
    entry = cache.entry_path(TINY, cifar, tmp_path)
    assert entry.is_file() and entry.with_suffix(".npz").is_file()
    again, recalled = cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)
    assert seed_trainings == [TINY]
    assert same_network(again, net)
    assert recalled == summary == cache.lookup(TINY, cifar, tmp_path)
    assert accuracy(again, cifar.test.X, cifar.test.y) == summary["test_accuracy"]
    assert load_network(entry.with_suffix(".npz"))[1] == TINY.to_dict()


def test_the_network_of_a_stored_run_is_that_run_and_its_entry_is_never_rewritten(cifar, tmp_path, threads,
                                                                                   seed_trainings):
    stored = cache.cached_seeds({"run": TINY}, cifar, 2, tmp_path, threads, progress=False)["run"]
    entry = cache.entry_path(TINY, cifar, tmp_path)
    written = entry.read_bytes()
    net, summary = cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)
    assert len(seed_trainings) == 3  # seeds 0 and 1, then seed 0 again for its network
    assert entry.read_bytes() == written
    assert summary == stored[0]
    assert accuracy(net, cifar.test.X, cifar.test.y) == stored[0]["test_accuracy"]
    assert same_network(load_network(entry.with_suffix(".npz"))[0], net)
    assert cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)[1] == stored[0]
    assert len(seed_trainings) == 3


def test_a_stored_run_that_training_does_not_reproduce_is_kept_without_a_network(cifar, tmp_path, threads):
    path = cache.entry_path(TINY, cifar, tmp_path)
    stored = cache.cached_experiment(TINY, cifar, tmp_path, progress=False)
    other = {**stored, "test_accuracy": stored["test_accuracy"] + 0.25}  # as if trained on other BLAS kernels
    cache.store(path, cache.data_identity(cifar), other)
    written = path.read_bytes()
    with pytest.warns(UserWarning, match="gave another result"):
        net, summary = cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)
    assert path.read_bytes() == written
    assert not path.with_suffix(".npz").exists()
    assert summary["test_accuracy"] == stored["test_accuracy"] == accuracy(net, cifar.test.X, cifar.test.y)


def test_a_damaged_checkpoint_is_trained_again_with_a_warning(cifar, tmp_path, threads, seed_trainings):
    cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)
    checkpoint = cache.entry_path(TINY, cifar, tmp_path).with_suffix(".npz")
    checkpoint.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        net, _ = cache.cached_network(TINY, cifar, tmp_path, threads, progress=False)
    assert seed_trainings == [TINY, TINY]
    assert same_network(load_network(checkpoint)[0], net)


# --- Other results ------------------------------------------------------------------


def test_a_result_is_computed_once_then_recalled(cifar, fake_cifar, tmp_path):
    computed = []

    def compute():
        computed.append(1)
        return {"seconds": 0.1 * len(computed), "sizes": (1, 2)}

    first = cache.cached_result("check", {"n": 3}, cifar, compute, tmp_path)
    assert first == {"seconds": 0.1, "sizes": [1, 2]}  # as JSON gives it back, recalled or not
    assert cache.cached_result("check", {"n": 3}, cifar, compute, tmp_path) == first
    assert len(computed) == 1
    cache.cached_result("check", {"n": 4}, cifar, compute, tmp_path)
    cache.cached_result("check", {"n": 3}, load_cifar10(fake_cifar, split="small", n_train=10), compute, tmp_path)
    assert len(computed) == 3


def test_a_damaged_result_is_computed_again_with_a_warning(cifar, tmp_path):
    path = cache.folder_for("check", {}, cifar, tmp_path).with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"seconds": ')
    with pytest.warns(UserWarning, match="damaged cache file"):
        assert cache.cached_result("check", {}, cifar, lambda: {"seconds": 2.0}, tmp_path) == {"seconds": 2.0}
    assert json.loads(path.read_text()) == {"seconds": 2.0}
