"""Where runs train: the choice of executor, and the main job's runs on a real Dask cluster.

The cluster is a `dask scheduler` and a `dask worker` of 2 single-threaded
processes, started as the docs say (docs/search.md). The runs are tiny (a
fake CIFAR-10 of 100 images per batch, hidden [8], a few steps), so the file
runs in seconds; what it checks does not depend on the accuracies being good.
"""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import write_fake_cifar
from helpers import pool
from helpers.cli import main
from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig
from helpers.errors import ConfigError
from helpers.report import cache, job
from helpers.report.cache import without_times
from helpers.report.settings import notebook_settings

REPO = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).parent / "dask"
TINY = TrainConfig(hidden=(8,), n_batch=10, n_s=5, cycles=1, evals_per_cycle=1)
@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return write_fake_cifar(tmp_path_factory.mktemp("data"), n_per_batch=100)


@pytest.fixture(scope="module")
def cluster_client(tmp_path_factory):
    """A Dask scheduler and 2 worker processes of one thread each, as separate processes; yields its address
    and the one client of it that the tests share.

    One client for the module: a second Client in the same process starts an IO-loop thread of its own, and
    on a busy 2-core machine that start once missed distributed's 10-second limit (an AssertionError in
    LoopRunner, at a test's setup)."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("cluster")
    address_file = folder / "scheduler.json"
    env = {**os.environ, "DASK_CONFIG": str(REPO / "helpers" / "dask")}
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", address_file], cwd=folder, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = subprocess.Popen([DASK, "worker", "--scheduler-file", address_file, "--nworkers", "2",
                                "--nthreads", "1", "--no-dashboard"], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(scheduler_file=str(address_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            yield client.scheduler.address, client
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster(cluster_client):
    """The address of the module's Dask cluster, "tcp://127.0.0.1:PORT"."""
    return cluster_client[0]


@pytest.fixture
def client(cluster_client):
    """The client of the cluster, to ask what its workers did; the scheduler records every task from now on."""
    client = cluster_client[1]
    client.get_task_stream()  # starts the scheduler's record of tasks
    return client


def trained_on(client, since):
    """How many runs the cluster's workers trained since the time `since` (seconds since the epoch)."""
    return sum(task["key"].startswith("train_seed") for task in client.get_task_stream(start=since))


# --- The choice of executor -----------------------------------------------------------


def test_an_executor_given_is_used_and_left_running_for_its_owner():
    with ThreadPoolExecutor(1) as threads:
        with pool.executor_for(threads) as executor:
            assert executor is threads
        assert threads.submit(lambda: 2 + 2).result() == 4


@pytest.mark.parametrize("address", ["localhost", "http://127.0.0.1:8786"])
def test_something_that_is_not_a_schedulers_address_is_refused_at_once(address):
    with pytest.raises(ConfigError, match=f"{address!r} is not a Dask scheduler's address .*: give tcp://HOST:PORT"):
        pool.check_scheduler(address)


def test_the_kernels_are_given_the_scheduler_and_read_it_back(tmp_path):
    given = notebook_settings(True, tmp_path / "f", tmp_path / "c", environ={}, scheduler="tcp://10.0.0.1:8786")
    env = job.notebook_env(given)
    assert env["NB_SCHEDULER"] == "tcp://10.0.0.1:8786"
    assert notebook_settings(environ=env) == given
    local = notebook_settings(True, tmp_path / "f", tmp_path / "c", environ={})
    assert local.scheduler is None and job.notebook_env(local)["NB_SCHEDULER"] == ""
    assert notebook_settings(environ=job.notebook_env(local)).scheduler is None


# --- The main job's runs on a cluster ---------------------------------------------------


def test_cached_seeds_on_a_cluster_gives_the_summaries_of_local_workers(cluster, client, fake_dir, tmp_path):
    cifar = load_cifar10(fake_dir, split="small", n_train=80)
    configs = {"BN": TINY, "no BN": replace(TINY, norm="none")}
    local = cache.cached_seeds(configs, cifar, 2, tmp_path / "local", progress=False)
    start = time.time()
    remote = cache.cached_seeds(configs, cifar, 2, tmp_path / "cluster", cluster, progress=False)
    assert trained_on(client, start) == 4
    # Dask's nanny gives each worker one BLAS thread, as the local pool does: the same arithmetic, the same numbers.
    assert set(client.run(pool.blas_threads).values()) == {1}
    assert {label: [without_times(s) for s in runs] for label, runs in remote.items()} == \
           {label: [without_times(s) for s in runs] for label, runs in local.items()}


def test_cached_network_on_a_cluster_brings_back_the_network_of_its_stored_run(cluster, client, fake_dir, tmp_path):
    cifar = load_cifar10(fake_dir, split="small", n_train=80)
    (stored,) = cache.cached_seeds({"run": TINY}, cifar, 1, tmp_path, progress=False)["run"]
    start = time.time()
    net, summary = cache.cached_network(TINY, cifar, tmp_path, cluster, progress=False)
    assert trained_on(client, start) == 1
    assert summary == stored  # the cluster reproduced the stored run, so its network was kept
    assert cache.entry_path(TINY, cifar, tmp_path).with_suffix(".npz").is_file()
    assert net.dims == [3072, 8, 10]


def test_a_notebook_of_the_main_job_trains_its_runs_on_the_cluster_it_is_given(cluster, client, fake_dir, tmp_path):
    path = tmp_path / "09_cluster.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(
        "from helpers.core.data import load_cifar10\n"
        "from helpers.core.config import TrainConfig\n"
        "from helpers.report.cache import cached_seeds\n"
        "from helpers.report.settings import notebook_settings\n"
        "settings = notebook_settings()\n"
        f"cifar = load_cifar10({str(fake_dir)!r}, split='small', n_train=60)\n"
        f"runs = cached_seeds({{'run': TrainConfig(hidden=(8,), n_batch=10, n_s=5, cycles=1)}}, cifar, 2,"
        " settings.cache, settings.scheduler)\n"
        "print(settings.scheduler, len(runs['run']))"
    )], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), path)
    settings = notebook_settings(True, tmp_path / "figures", tmp_path / "cache", environ={}, scheduler=cluster)
    start = time.time()
    executed = job.run_notebook(path, job.notebook_env(settings), tmp_path / "executed")
    assert executed.cells[0].outputs[-1]["text"] == f"{cluster} 2\n"
    assert trained_on(client, start) == 2
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_the_main_job_refuses_an_unreachable_scheduler_before_any_notebook(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pool, "CONNECT_SECONDS", 1)  # nothing listens there: waiting longer would change nothing
    monkeypatch.setattr(job, "run_notebook", lambda *args: pytest.fail("a notebook ran"))
    code = main(["report", "--quick", "--figures-dir", str(tmp_path / "figures"), "--cache-dir",
                 str(tmp_path / "cache"), "--scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Cannot reach the Dask scheduler at tcp://127.0.0.1:1") and len(err.splitlines()) == 1
