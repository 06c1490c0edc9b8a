"""Where training runs go: a pool of worker processes on this computer, or a Dask cluster.

The search (helpers.search), the seeds (helpers.seeds) and the main job's
notebooks (helpers.report.cache) send their runs to a
concurrent.futures.Executor that executor_for gives:

- by default a pool of processes, one per core, each with one BLAS thread
  (process_pool): a run of the report's network multiplies matrices too small
  for a second BLAS thread to pay, while a second process trains a second run
  at full speed;
- given a Dask scheduler's address, "tcp://HOST:PORT", the executor of a
  dask.distributed Client of that cluster, whose workers get one BLAS thread
  each from Dask itself (its nanny sets OMP_NUM_THREADS and the like to 1).

Either way a worker loads the data itself, once per process (cached_cifar),
from the folder it is given: a cluster's workers must see that folder at the
same path (the same computer, or a shared filesystem).

Ctrl-C reaches the parent and the pool's workers alike: a worker stops the
run it trains and starts no other (on_ctrl_c), and run_each cancels the runs
not started, so that nothing half-trained is returned as finished.
"""

import functools
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

from .core.data import load_cifar10
from .errors import ConfigError
from .experiments import run_experiment

CONNECT_SECONDS = 10
"""How long to wait for a Dask scheduler to answer before it is called unreachable."""


# --- Choosing the executor -------------------------------------------------------


@contextmanager
def executor_for(executor=None, workers=None, blas_threads=None):
    """The executor the runs go to, for a with block; what it started is shut down on leaving.

    executor: None for a process_pool(workers, blas_threads); a Dask
    scheduler's address, "tcp://HOST:PORT", for the executor of a Client of
    that cluster (workers and blas_threads are then the cluster's own); or
    any concurrent.futures.Executor, used as it is and left running for its
    owner to shut down. An unreachable scheduler raises ConfigError.
    """
    if executor is None:
        with process_pool(workers, blas_threads) as pool:
            yield pool
    elif isinstance(executor, str):
        with dask_client(executor) as client:
            yield client.get_executor()
    else:
        yield executor


def dask_client(address):
    """A dask.distributed Client of the scheduler at address; ConfigError if there is none to reach there."""
    # Imported only when asked for: distributed takes a second to import.
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_SECONDS)
    except ValueError as err:  # not an address at all: no port, or an unknown scheme
        raise ConfigError(f"{address!r} is not a Dask scheduler's address ({err}): give tcp://HOST:PORT.") from err
    except OSError as err:
        raise ConfigError(f"Cannot reach the Dask scheduler at {address}: {err}. Start it (`dask scheduler`)"
                          " and its workers, or give the address it printed.") from err


def check_scheduler(address):
    """Refuse, before any work, a scheduler that cannot be reached (ConfigError); None is this computer's pool."""
    if address is not None:
        dask_client(address).close()


# --- The pool of processes --------------------------------------------------------


def cores():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def check_workers(workers):
    """Refuse a number of local worker processes below one (None: one per core)."""
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")


def process_pool(workers=None, blas_threads=None):
    """A pool of `workers` processes (default: one per core), each limited to blas_threads BLAS threads.

    blas_threads defaults to the workers' share of the cores: one each for
    one worker per core. One BLAS thread each: a run of the report's network
    multiplies matrices of a few hundred thousand entries, which a second
    BLAS thread speeds up only about 1.2 times, while a second process
    trains a second run at full speed (see benchmarks/search_speedup.py).
    A single worker (--workers 1) gets every core, for runs wide enough to
    use them. Workers are spawned, not forked: a fresh interpreter inherits
    no threads, locks or loaded data from the parent.
    """
    workers = workers or cores()
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_pool_worker,
        initargs=(blas_threads or max(1, cores() // workers),),
    )


class PoolWorker:
    """What a worker of process_pool() knows about Ctrl-C (see init_pool_worker)."""

    running = False  # a run is training in this process
    interrupted = False  # Ctrl-C has reached this process


def init_pool_worker(blas_threads):
    """Set up a worker of process_pool(): at most blas_threads BLAS threads, and Ctrl-C.

    threadpoolctl limits only the libraries already loaded; unpickling this
    function in a fresh worker has imported this module, and with it NumPy
    and its BLAS. blas_threads=None leaves BLAS its own choice.
    """
    threadpool_limits(blas_threads)
    signal.signal(signal.SIGINT, on_ctrl_c)


def on_ctrl_c(signum, frame):
    """SIGINT in a pool worker: stop the run in progress, and start no other.

    Ctrl-C reaches the parent and its workers alike. The default handler
    would also raise in an idle worker, killing it with a traceback, and a
    run the pool had already queued would still start and train in full.
    """
    PoolWorker.interrupted = True
    if PoolWorker.running:
        raise KeyboardInterrupt


def blas_threads():
    """The most threads any loaded BLAS library of this process may use."""
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=None)


# --- In a worker -------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def cached_cifar(data_dir, n_train, split="report"):
    """The split, loaded once per worker process and kept for its next runs.

    maxsize=1: a worker holds one copy of the data (about 0.75 GB at full size).
    """
    return load_cifar10(data_dir, split=split, n_train=n_train)


def experiment_in_worker(config, data_dir, n_train, split, name):
    """Train config on the worker's cached data; return (run_experiment's summary, the trained Network, seconds).

    seconds: training and evaluation, not loading the data. name (e.g.
    "run 1.3") says which run a Ctrl-C stopped. A run interrupted halfway
    raises KeyboardInterrupt: train() stops cleanly on Ctrl-C, but a
    half-trained run must not be returned as finished.
    """
    cifar = cached_cifar(data_dir, n_train, split)
    if PoolWorker.interrupted:
        raise KeyboardInterrupt(f"{name} not started: Ctrl-C")
    start = time.perf_counter()
    PoolWorker.running = True
    try:
        summary, result = run_experiment(config, cifar, progress=False)
    finally:
        PoolWorker.running = False
    if summary["interrupted"]:
        raise KeyboardInterrupt(f"{name} was interrupted")
    return summary, result.net, time.perf_counter() - start


# --- Running ---------------------------------------------------------------------


def run_each(executor, fn, items, on_result):
    """Call fn(item) for every item on executor, and on_result(item, result) as each one finishes.

    If one fails, the items not started are cancelled, those already running
    still finish and go to on_result, and the first error is raised again.
    Ctrl-C cancels the items not started too.
    """
    futures = {executor.submit(fn, item): item for item in items}
    errors = []
    try:
        for future in as_completed(futures):
            if future.cancelled():
                continue
            if future.exception() is not None:
                errors.append(future.exception())
                cancel(futures)
                continue
            on_result(futures[future], future.result())
    finally:
        cancel(futures)
    if errors:
        raise errors[0]


def cancel(futures):
    """Cancel the futures whose runs have not started; running and finished ones are left alone."""
    for future in futures:
        future.cancel()
