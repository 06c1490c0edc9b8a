"""Runs over seeds: the seeds trained, their statistics, a seed against a run of its own, the CLI, Dask.

The runs are tiny (a fake CIFAR-10 of 100 images per batch, hidden [8], 10
steps) and share one process pool, so the file runs in seconds; what it
checks does not depend on the accuracies being good.
"""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from conftest import WorkStarted, record_work, write_fake_cifar
from helpers import cli
from helpers.cli import main
from helpers.core import data
from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig
from helpers.errors import ConfigError
from helpers.report.cache import without_times
from helpers.experiments import run_experiment
from helpers.pool import process_pool
from helpers.seeds import ACCURACIES, SPREAD_ROWS, run_seeds, seed_statistics

REPO = Path(__file__).resolve().parent.parent

# What the command line below trains: --hidden 8 --n-batch 10 --n-s 5 --cycles 1 --seed 3.
CONFIG = TrainConfig(hidden=(8,), n_batch=10, n_s=5, cycles=1, seed=3)
FLAGS = ["--split", "small", "--hidden", "8", "--n-batch", "10", "--n-s", "5", "--cycles", "1", "--seed", "3"]
@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    """A fake CIFAR-10 of 100 images per batch: enough for the seeds' accuracies to differ."""
    return write_fake_cifar(tmp_path_factory.mktemp("data"), n_per_batch=100)


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def reference(pool, fake_dir):
    """CONFIG over 3 seeds (3, 4, 5) on the process pool."""
    return run_seeds(CONFIG, 3, pool, data_dir=fake_dir, split="small", progress=False)


def test_n_seeds_give_n_summaries_with_seeds_base_to_base_plus_n_minus_1(reference):
    assert reference["seeds"] == [3, 4, 5]
    assert [s["config"]["seed"] for s in reference["summaries"]] == [3, 4, 5]
    assert all(s["steps"] == 10 and not s["interrupted"] for s in reference["summaries"])
    # Other seeds, other runs.
    costs = [s["history"]["train_cost"] for s in reference["summaries"]]
    assert costs[0] != costs[1] != costs[2] != costs[0]


def test_the_statistics_are_numpys_mean_sample_std_min_and_max(reference):
    for key in ACCURACIES:
        values = [s[key] for s in reference["summaries"]]
        stats = reference["statistics"][key]
        assert stats["values"] == values
        assert stats["mean"] == np.mean(values)
        assert stats["std"] == np.std(values, ddof=1)
        assert stats["min"] == min(values) and stats["max"] == max(values)


def test_one_seed_has_no_spread(reference):
    stats = seed_statistics(reference["summaries"][:1])
    assert all(stats[key]["std"] is None for key in ACCURACIES)
    assert stats["test_accuracy"]["mean"] == reference["summaries"][0]["test_accuracy"]


def test_a_seed_gives_what_a_run_of_its_own_gives(reference, fake_dir):
    # The workers have one BLAS thread; the same number here keeps the arithmetic identical.
    with threadpool_limits(1):
        alone, _ = run_experiment(replace(CONFIG, seed=4), load_cifar10(fake_dir, split="small"), progress=False)
    assert without_times(alone) == without_times(reference["summaries"][1])


def test_the_command_line_prints_the_spread_and_writes_every_seed(reference, fake_dir, tmp_path, capsys):
    out = tmp_path / "seeds.json"
    assert main(["train", "--data-dir", str(fake_dir), *FLAGS, "--seeds", "3", "--workers", "2",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    stats = reference["statistics"]
    assert "training seeds 3 to 5 on 2 worker processes" in printed
    assert "over 3 seeds (std: the sample standard deviation, ddof=1)" in printed
    for key, label in SPREAD_ROWS:
        s = stats[key]
        row = f"{label:24}{100 * s['mean']:6.2f} ± {100 * s['std']:5.2f} %  {100 * s['min']:7.2f} %"
        assert row in printed
    for seed, summary in zip(reference["seeds"], reference["summaries"]):
        assert f"seed {seed}: test {100 * summary['test_accuracy']:.2f} %," in printed
    written = json.loads(out.read_text())
    assert written["seeds"] == [3, 4, 5] and written["statistics"] == stats
    assert [without_times(s) for s in written["summaries"]] == [without_times(s) for s in reference["summaries"]]
    assert f"wrote {out}" in printed


def test_one_seed_is_the_single_run_of_before(fake_dir, monkeypatch, capsys):
    monkeypatch.setattr(cli, "run_seeds", lambda *args, **kwargs: pytest.fail("one seed went to run_seeds"))
    assert main(["train", "--data-dir", str(fake_dir), *FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy        " in printed and "mean ± std" not in printed


def test_a_dask_cluster_gives_the_same_seeds_as_the_process_pool(reference, fake_dir, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "seeds.json"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["train", "--data-dir", str(fake_dir), *FLAGS, "--seeds", "3",
                     "--scheduler", cluster.scheduler_address, "--json", str(out)])
    assert code == 0
    written = json.loads(out.read_text())
    # Dask gives its workers one BLAS thread too, which keeps the arithmetic identical.
    assert written["statistics"] == reference["statistics"]
    assert [without_times(s) for s in written["summaries"]] == [without_times(s) for s in reference["summaries"]]


def worker_environment(monkeypatch, config=None):
    """MALLOC_TRIM_THRESHOLD_ and OPENBLAS_NUM_THREADS in the workers of a LocalCluster, under a Dask config."""
    import dask
    from distributed import Client, LocalCluster

    def read():
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OPENBLAS_NUM_THREADS")

    # A nanny sets its pre-spawn variables in this process too, where later workers would inherit them:
    # monkeypatch restores the environment after the test.
    for name in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with dask.config.set(dask.config.merge(dask.config.config, config or {})), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        return list(client.run(read).values())


def test_the_worker_config_of_the_readme_keeps_malloc_trim_unset_and_one_blas_thread(monkeypatch):
    import dask.config

    (config,) = dask.config.collect_yaml([str(REPO / "helpers" / "dask")])
    assert worker_environment(monkeypatch) == [("65536", "1")]  # Dask's default, which slows every step
    assert worker_environment(monkeypatch, config) == [(None, "1")]


def test_ctrl_c_stops_every_seed_and_writes_nothing(fake_dir, tmp_path):
    out = tmp_path / "seeds.json"
    # 4,000,000 steps a seed (2 cycles of 2 x n_s), about 4 minutes here: far more than the seconds before Ctrl-C.
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers", "train", "--data-dir", str(fake_dir), "--split", "small", "--hidden", "8",
         "--n-batch", "10", "--n-s", "1000000", "--seeds", "2", "--workers", "2", "--json", str(out)],
        cwd=REPO, env={**os.environ, "TQDM_DISABLE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
        # As Ctrl-C in a terminal: to the whole process group, workers included, with SIGINT
        # not ignored (as it is for a child of a shell that runs these tests in the background).
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().startswith("training seeds 0 to 1 on 2 worker processes")
    time.sleep(5)  # the workers start, load the data and train
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()


# --- Bad settings ---------------------------------------------------------------------


@pytest.fixture
def work(monkeypatch):
    """The work functions called, in order; each raises WorkStarted instead of working."""
    return record_work(monkeypatch, [(data, "load_cifar10"), (data, "find_batches_dir"), (cli, "run_experiment"),
                                     (cli, "run_seeds"), (cli, "executor_for")])


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--seeds", "0"], "--seeds: seeds (how many seeds to train) must be a whole number >= 1, got 0."),
        (["--seeds", "-2"], "--seeds"),
        (["--seeds", "two"], "--seeds"),
        (["--seeds", "2", "--save", "{tmp}/net.npz"], "--save: saves one network, and --seeds 2 trains 2"),
        (["--workers", "2"], "--workers: spreads the seeds over processes"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler: spreads the seeds over processes"),
        (["--seeds", "2", "--workers", "0"], "--workers: workers must be >= 1"),
        (["--seeds", "2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
        (["--seeds", "2", "--json", "{tmp}"], "--json"),
        (["--seeds", "2", "--lam", "-1"], "--lam"),
    ],
)
def test_bad_seeds_flags_are_refused_before_any_work(argv, words, work, tmp_path, capsys):
    code = main(["train", *(arg.format(tmp=tmp_path) for arg in argv)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert words in err
    assert work == []


def test_good_seeds_flags_reach_the_seeds(work, tmp_path):
    with pytest.raises(WorkStarted):
        main(["train", "--seeds", "5", "--workers", "1", "--json", str(tmp_path / "a" / "seeds.json")])
    assert work == ["find_batches_dir"]


@pytest.mark.parametrize("seeds", [0, -1, 1.5, True])
def test_run_seeds_refuses_a_bad_number_of_seeds_before_any_work(seeds):
    with pytest.raises(ConfigError, match="seeds"):
        run_seeds(CONFIG, seeds, executor=object(), progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_worker_of_a_pool_gets_its_share_of_the_cores_as_blas_threads(workers):
    from helpers.pool import cores

    with process_pool(workers) as pool:
        threads = set(pool.map(blas_threads_of_worker, range(4)))
    assert threads == {max(1, cores() // workers)}


def blas_threads_of_worker(_):
    from helpers.pool import blas_threads

    return blas_threads()
