"""Finished training runs, kept on disk so that nothing is trained twice.

A run is determined by its TrainConfig, by the data it saw and by the code
that trained it. Its key is a hash of the three (and of CACHE_VERSION), so
re-running a notebook, moving a slider back, or restarting the kernel recalls
the run instead of training it again, while any change of a setting, of the
data or of the training code trains a new one.

An entry is one JSON file, <cache_dir>/<key>.json, holding the summary of
helpers.experiments.run_experiment. It is written to a temporary file in the
same folder and renamed into place (helpers.files), so a reader never sees
half an entry, whether training was interrupted or two kernels finished the
same run at once. An entry that cannot be read (truncated, edited by hand, from an older
format) is trained again and overwritten: a damaged cache costs time, never a
result.

A run whose trained network a notebook needs (cached_network) keeps it
beside its entry, as a checkpoint <cache_dir>/<key>.npz (helpers.checkpoint).
No call rewrites an entry that can be read: a configuration, its seed and
the data have one result, wherever it is shown.
"""

import ast
import hashlib
import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..checkpoint import load_network, save_network
from ..errors import CheckpointError
from ..experiments import run_experiment
from ..files import shown_path, write_atomically
from ..seeds import seed_configs, train_each

CACHE_VERSION = 2
"""Raise it whenever the stored summary changes shape: every old entry is then ignored."""

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "results" / "cache"
PACKAGE = Path(__file__).resolve().parents[1]
NUMERIC_SOURCES = ("core/*.py", "experiments.py")
"""The files of this package whose code decides the numbers of a run: the core and run_experiment."""


def data_identity(cifar):
    """What a run's result depends on in the data, as a small JSON-able dict.

    cifar: a helpers.core.data.Cifar10. The folder and the number of training
    images are kept as they are; the digest covers the rest: the labels of
    every part (which differ between splits) and the per-feature mean and
    standard deviation of the training images (which differ between copies
    of CIFAR-10, e.g. the official one and a JPEG re-encoded one, even in the
    same folder). Hashing these takes well under a millisecond.
    """
    content = hashlib.sha256()
    for array in (cifar.mean, cifar.std, cifar.train.y, cifar.val.y, cifar.test.y):
        content.update(np.ascontiguousarray(array).tobytes())
    return {"folder": str(cifar.folder), "n_train": len(cifar.train.y), "digest": content.hexdigest()}


def code_digest(folder, patterns=NUMERIC_SOURCES):
    """A digest of what the Python files of folder matching patterns do, not of how they are written.

    Each file is parsed and its syntax tree dumped without docstrings:
    comments, blank lines, line breaks and docstrings leave the digest as it
    is, while any change of the code (a constant, an operator, a renamed
    variable) changes it. The trees of another Python version may differ,
    and change the digest too.
    """
    content = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(Path(folder).glob(pattern)):
            tree = WithoutDocstrings().visit(ast.parse(path.read_text()))
            content.update(ast.dump(tree).encode())
    return content.hexdigest()[:32]


class WithoutDocstrings(ast.NodeTransformer):
    """Drops every statement that is a bare string: docstrings of modules, classes,
    functions and attributes, which the code never runs."""

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return node


@lru_cache(maxsize=1)
def code_identity():
    """code_digest of the NUMERIC_SOURCES of this package.

    Training is deterministic for one version of the code only: a change that
    merely reorders a floating-point sum moves every result as another seed
    would. With this in the keys, runs of older code are trained again instead
    of being recalled beside runs of the new code; an edit of a comment or a
    docstring recalls them.
    """
    return code_digest(PACKAGE)


def run_key(config, data):
    """The cache key of a run: a hex digest of its configuration, data identity and code.

    config: a TrainConfig; data: data_identity(cifar).
    """
    return digest({"version": CACHE_VERSION, "config": config.to_dict(), "data": data, "code": code_identity()})


def digest(payload):
    """A short hex digest of a JSON-able payload; dict order does not matter."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def folder_for(name, settings, cifar, cache_dir=DEFAULT_CACHE_DIR):
    """A folder of the cache for work that keeps its own files, such as a lambda search.

    settings: a JSON-able dict of everything the work depends on besides the
    data and the code. Returns <cache_dir>/<name>-<hex digest>; the folder is not created.
    """
    key = digest(
        {"version": CACHE_VERSION, "settings": settings, "data": data_identity(cifar), "code": code_identity()}
    )
    return Path(cache_dir) / f"{name}-{key}"


def cached_result(name, settings, cifar, compute, cache_dir=DEFAULT_CACHE_DIR):
    """The JSON-able result of compute(): recalled if stored, else computed and stored.

    For work other than a training run (e.g. notebook 01's gradient checks),
    keyed like folder_for by name, settings, the data and the code, and
    stored as <cache_dir>/<name>-<hex digest>.json: a re-run recalls its
    numbers, times included, instead of measuring them again. The result is
    returned as read back from JSON, computed or recalled. A damaged file is
    computed again, with a warning; a result that cannot be stored is
    returned all the same, with a warning.
    """
    path = folder_for(name, settings, cifar, cache_dir).with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        warnings.warn(f"Ignoring the damaged cache file {path} ({err}); it is computed again.")
    result = as_stored(compute())
    try:
        write_atomically(path, json.dumps(result).encode())
    except OSError as err:
        warnings.warn(f"Could not store {path.name} in the cache ({err}); it will be computed again next time.")
    return result


def entry_path(config, cifar, cache_dir=DEFAULT_CACHE_DIR):
    """Where the run of config on cifar is (or would be) stored."""
    return Path(cache_dir) / f"{run_key(config, data_identity(cifar))}.json"


def lookup(config, cifar, cache_dir=DEFAULT_CACHE_DIR):
    """The stored summary of this run, or None if there is none or it is damaged."""
    return read_entry(entry_path(config, cifar, cache_dir))


def read_entry(path):
    """The summary stored at path, or None if there is none or it is damaged."""
    try:
        entry = json.loads(path.read_text())
        if entry["version"] != CACHE_VERSION or entry["key"] != path.stem:
            raise ValueError(f"written for another key or by cache format {entry['version']}")
        return entry["summary"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        # ValueError covers bad JSON and bad UTF-8, TypeError JSON of the wrong shape.
        warnings.warn(f"Ignoring the damaged cache entry {path} ({err}); the run is trained again.")
        return None


def cached_experiment(config, cifar, cache_dir=DEFAULT_CACHE_DIR, progress=True):
    """The summary of training config on cifar: recalled if stored, else trained and stored.

    Returns the JSON-able summary of helpers.experiments.run_experiment. An
    interrupted run (Ctrl-C) is returned but not stored, so that it is
    trained in full next time. A run that cannot be stored (a full disk, a
    read-only folder) is returned all the same, with a warning.
    """
    data = data_identity(cifar)
    path = Path(cache_dir) / f"{run_key(config, data)}.json"
    summary = read_entry(path)
    if summary is not None:
        return summary
    summary, _ = run_experiment(config, cifar, progress=progress)
    if not summary["interrupted"]:
        store(path, data, summary)
    return summary


def cached_network(config, cifar, cache_dir=DEFAULT_CACHE_DIR, executor=None, progress=True):
    """The trained network of config on cifar, and its summary: recalled if both are stored, else trained.

    Returns (Network, summary). The network is kept as a checkpoint beside
    the run's entry, <key>.npz next to <key>.json, and is the very network
    whose summary the entry holds. It is trained the way cached_seeds trains
    every run (helpers.seeds.train_each: a worker process, one BLAS
    thread, or a worker of the Dask cluster executor names), so that a run stored without its network (cached_seeds keeps
    summaries only) can be trained again to get it. Its entry is never
    rewritten: the checkpoint is written only if the new training reproduced
    the stored summary, every number but the times. If it did not (other
    BLAS kernels, say), a warning says so, nothing is written, and the new
    network comes back with its own summary. A damaged checkpoint is trained
    again, with a warning.
    """
    data = data_identity(cifar)
    path = Path(cache_dir) / f"{run_key(config, data)}.json"
    checkpoint = path.with_suffix(".npz")
    stored = read_entry(path)
    if stored is not None and checkpoint.is_file():
        try:
            return load_network(checkpoint)[0], stored
        except CheckpointError as err:
            warnings.warn(f"Ignoring the damaged checkpoint {checkpoint} ({err}); the run is trained again.")
    kept = {}

    def keep(config, summary, net):
        check_trained_on(summary, cifar)
        summary = as_stored(summary)
        if stored is not None and without_times(summary) != without_times(stored):
            warnings.warn(f"Training again the run stored in {path} gave another result (test accuracy "
                          f"{summary['test_accuracy']:.4f}, stored {stored['test_accuracy']:.4f}): the stored run "
                          "is kept without its network, and the network returned is the new one.")
            kept["run"] = net, summary
            return
        kept["run"] = net, stored or summary
        if stored is None and not store(path, data, summary):
            return
        try:
            save_network(net, checkpoint, config.to_dict())
        except OSError as err:
            warnings.warn(f"Could not store the network in the cache ({err}); it will be trained again next time.")

    train_each([config], executor, cifar.folder, cifar.split, len(cifar.train.y), progress, keep, keep_networks=True)
    return kept["run"]


TIMES = ("train_seconds", "ms_per_step")
"""The numbers of a summary that measure time: two trainings of one run differ in these only."""


def without_times(summary):
    return {key: value for key, value in summary.items() if key not in TIMES}


def as_stored(summary):
    """summary as read back from an entry (JSON has lists, not tuples)."""
    return json.loads(json.dumps(summary))


def check_trained_on(summary, cifar):
    """Refuse a summary that a worker trained on other data than cifar: it must not be stored under its key."""
    if summary["n_train"] != len(cifar.train.y) or summary["data"] != shown_path(cifar.folder):
        raise RuntimeError(f"A worker trained on {summary['data']} ({summary['n_train']} images), "
                           f"not on the data of this call ({cifar.folder}); nothing stored.")


def cached_seeds(configs, cifar, seeds, cache_dir=DEFAULT_CACHE_DIR, executor=None, progress=True):
    """Every configuration of configs for several seeds: recalled if stored, else trained in parallel and stored.

    configs: {label: TrainConfig}; seeds: how many, config.seed,
    config.seed + 1, ... (helpers.seeds.seed_configs). The runs not in the
    cache go all at once to executor (None: a pool of processes, one per
    core, each with one BLAS thread; a Dask scheduler's address,
    "tcp://HOST:PORT": that cluster; see helpers.pool.executor_for), whose
    workers load cifar again from its folder. Each run is stored as soon as
    it finishes, so Ctrl-C or a failed run loses none of those finished.

    Returns {label: [summary] * seeds}, in the order of the seeds.
    """
    data = data_identity(cifar)
    runs = {label: seed_configs(config, seeds) for label, config in configs.items()}
    paths = {run_key(config, data): config for seeded in runs.values() for config in seeded}
    found = {key: read_entry(Path(cache_dir) / f"{key}.json") for key in paths}
    todo = [config for key, config in paths.items() if found[key] is None]

    def keep(config, summary, _):
        check_trained_on(summary, cifar)
        key = run_key(config, data)
        store(Path(cache_dir) / f"{key}.json", data, summary)
        found[key] = as_stored(summary)

    train_each(todo, executor, cifar.folder, cifar.split, len(cifar.train.y), progress, on_result=keep)
    return {label: [found[run_key(config, data)] for config in seeded] for label, seeded in runs.items()}


def store(path, data, summary):
    """Write one cache entry; return whether it was written.

    A run that cannot be stored is kept by the caller, with a warning.
    """
    entry = {"version": CACHE_VERSION, "key": path.stem, "data": data, "summary": summary}
    try:
        write_atomically(path, json.dumps(entry).encode())
    except OSError as err:
        warnings.warn(f"Could not store the run in the cache ({err}); it will be trained again next time.")
        return False
    return True
