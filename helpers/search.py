"""Random search of the L2 weight lambda, in stages, on any executor.

The narrowing rule. Stage 1 draws `coarse` values of lambda log-uniformly
from lam_range. Every later stage draws `fine` values log-uniformly from a
range centred, in log10, on the best lambda found so far, and `shrink` times
narrower (in log10) than the stage before it. With the defaults (1e-5..1e-1,
shrink 4) the stages span 4, 1 and 0.25 decades, close to the report's
hand-picked [1e-5, 1e-1], [1e-4, 1e-3] and [10^-4.1, 10^-3.9]. A later stage
may reach past lam_range when the best lambda lies near its edge: that is
where the search should look then.

"Best" is the highest validation accuracy on the 5,000 validation images of
the report split, ties going to the lower validation cost, then to the
lambda drawn first. The test accuracy is recorded but never used to choose,
so that it stays an unbiased estimate.

By default every run trains with the same seed, the search's: all runs start
from the same weights and see the batches in the same order, so their
differences come from lambda, not from luck. Yet one run's validation
accuracy is itself noisy: another seed moves it by about half a point to a
point, about as much as nearby lambdas differ, so the best of single runs is
partly the luckiest. With seeds=k each lambda trains k times, with seeds
seed, seed + 1, ..., seed + k - 1, and is judged by the mean of its k
validation accuracies (and of its validation costs for ties). The mean of k
runs has the noise's standard deviation divided by sqrt(k), at k times the
cost. The summary gives each lambda's mean and its sample standard
deviation over the seeds.

The lambdas of stage s come from a generator seeded with (seed, s), whatever
seeds is. The same SearchConfig therefore gives the same lambdas and the same
results, whatever executor runs them.

Each run is one call of helpers.experiments.run_experiment, sent to a
concurrent.futures.Executor: by default a pool of processes, one per core,
each with one BLAS thread; for a cluster, the executor of a dask.distributed
Client (whose workers get one BLAS thread from Dask itself). Workers load the
data themselves, once per process, rather than receiving 700 MB each.

Every finished run, one per lambda and seed, is appended at once to
runs.jsonl in the output folder. A search started again on the same folder
reuses the runs recorded there, matched by their full training configuration
(seed included), and trains only the rest. At the end, summary.json holds
every lambda judged and the best lambda of each stage.
"""

import fcntl
import functools
import json
import math
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from .core.data import load_cifar10
from .errors import ConfigError, HelpersError
from .experiments import run_experiment
from .files import write_json
from .progress import progress_bar
from .core.training import TrainConfig, check_config

RESULTS_FILE = "runs.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class SearchConfig:
    """A staged random search of lambda; the defaults are the report's.

    base holds every other training setting; the search replaces its lam,
    cycles and seed. seeds: the runs per lambda, with seeds seed, seed + 1,
    ..., whose mean validation accuracy judges it (1: one run, the search's
    seed). The search only reads the final validation figures, so
    the default base evaluates once per cycle instead of ten times (this
    changes nothing in training, only saves time). n_train keeps only the
    first n_train training images (a quick mode); None keeps all 45,000.
    """

    lam_range: tuple = (1e-5, 1e-1)
    coarse: int = 10
    fine: int = 10
    stages: int = 3
    shrink: float = 4.0
    cycles: int = 2
    seed: int = 0
    seeds: int = 1
    base: TrainConfig = field(default_factory=lambda: TrainConfig(evals_per_cycle=1))
    n_train: int | None = None

    def to_dict(self):
        d = asdict(self)
        d["lam_range"] = list(self.lam_range)
        d["base"] = self.base.to_dict()
        return d

    def run_count(self):
        """The training runs of the whole search: every lambda drawn, once per seed."""
        return (self.coarse + self.fine * (self.stages - 1)) * self.seeds


@dataclass(frozen=True)
class Run:
    """One training run of the search: what a worker needs to do it."""

    stage: int
    index: int
    config: TrainConfig
    n_train: int | None
    data_dir: str | None

    def key(self):
        return run_key(self.config.to_dict(), self.n_train)


def run_key(config, n_train):
    """What identifies a run in the results file: its full training configuration."""
    return json.dumps({"config": config, "n_train": n_train}, sort_keys=True)


def check_search_config(config):
    """Refuse settings that cannot work, before any work is done."""
    c = config
    if len(c.lam_range) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in c.lam_range):
        raise ConfigError(f"lam_range must be two finite numbers (low, high), got {c.lam_range}.")
    low, high = c.lam_range
    if not 0 < low < high:
        raise ConfigError(
            f"lam_range must satisfy 0 < low < high (lambda is searched on a log scale), got {low}, {high}."
        )
    for name in ("coarse", "fine", "stages", "seeds"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}.")
    if not c.shrink >= 1:
        raise ConfigError(f"shrink must be >= 1 (each stage is at most as wide as the one before), got {c.shrink}.")
    if c.n_train is not None and not c.n_train >= 1:
        raise ConfigError(f"n_train must be >= 1 (or None for all the training images), got {c.n_train}.")
    check_config(replace(c.base, lam=low, cycles=c.cycles, seed=c.seed), c.n_train)


# --- The narrowing rule and the draws ----------------------------------------


def stage_log10_range(lam_range, shrink, stage, best_lam=None):
    """The (low, high) log10 bounds that stage (1, 2, ...) draws lambda from.

    Stage 1: lam_range. Stage s > 1: centred on log10(best_lam), with width
    that of lam_range divided by shrink ** (s - 1).
    """
    low, high = math.log10(lam_range[0]), math.log10(lam_range[1])
    if stage == 1:
        return low, high
    half_width = (high - low) / shrink ** (stage - 1) / 2
    centre = math.log10(best_lam)
    return centre - half_width, centre + half_width


def sample_lambdas(log10_range, n, seed, stage):
    """n values drawn log-uniformly: 10 ** u, u uniform in log10_range, from a generator seeded (seed, stage)."""
    rng = np.random.default_rng([seed, stage])
    return [float(lam) for lam in 10.0 ** rng.uniform(*log10_range, size=n)]


def plan_stage(config, stage, log10_range, data_dir=None):
    """The runs of one stage: for each lambda, in the order they were drawn, a list of its runs, one per seed."""
    n = config.coarse if stage == 1 else config.fine
    lams = sample_lambdas(log10_range, n, config.seed, stage)
    return [
        [
            Run(stage, i, replace(config.base, lam=lam, cycles=config.cycles, seed=seed), config.n_train, data_dir)
            for seed in range(config.seed, config.seed + config.seeds)
        ]
        for i, lam in enumerate(lams)
    ]


def brief(records):
    """One lambda judged on its records (one per seed, a list of dicts): the figures a summary shows.

    Returns {"lam", "stage", "index": as in the records; "val_accuracy",
    "val_cost", "test_accuracy": their means over the seeds; "seeds": the
    number of records; "val_accuracy_std": the sample standard deviation
    (ddof=1) of the validation accuracy, None for one record}.
    """
    val_accuracy = np.array([r["val_accuracy"] for r in records])
    first = records[0]
    return {
        "lam": first["lam"],
        "stage": first["stage"],
        "index": first["index"],
        "val_accuracy": float(val_accuracy.mean()),
        "val_cost": float(np.mean([r["val_cost"] for r in records])),
        "test_accuracy": float(np.mean([r["test_accuracy"] for r in records])),
        "seeds": len(records),
        "val_accuracy_std": float(val_accuracy.std(ddof=1)) if len(records) > 1 else None,
    }


def best_lambda(judged):
    """The judged lambda (see brief) with the highest mean validation accuracy.

    Ties go to the lower mean validation cost, then to the earlier in judged
    (max keeps the first of equal keys).
    """
    return max(judged, key=lambda j: (j["val_accuracy"], -j["val_cost"]))


# --- In a worker ---------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def cached_cifar(data_dir, n_train, split="report"):
    """The split, loaded once per worker process and kept for its next runs.

    maxsize=1: a worker holds one copy of the data (about 0.75 GB at full size).
    """
    return load_cifar10(data_dir, split=split, n_train=n_train)


def experiment_in_worker(config, data_dir, n_train, split, name):
    """Train config on the worker's cached data; return (run_experiment's summary, seconds).

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
        summary, _ = run_experiment(config, cifar, progress=False)
    finally:
        PoolWorker.running = False
    if summary["interrupted"]:
        raise KeyboardInterrupt(f"{name} was interrupted")
    return summary, time.perf_counter() - start


def train_run(run):
    """Train one run and return its record for the results file. Runs in a worker.

    The record: lam, stage, index (its place in the stage's draws), seed;
    val_accuracy, val_cost (final, on the 5,000 validation images),
    test_accuracy; seconds (training and evaluation, not loading the data),
    train_seconds, steps; blas_threads of the worker; data (the folder read),
    n_train and config (the TrainConfig as a dict), which identify the run.
    """
    name = f"run {run.stage}.{run.index} (lambda {run.config.lam:.3g})"
    summary, seconds = experiment_in_worker(run.config, run.data_dir, run.n_train, "report", name)
    return {
        "lam": run.config.lam,
        "stage": run.stage,
        "index": run.index,
        "seed": run.config.seed,
        "val_accuracy": summary["val_accuracy"],
        "val_cost": summary["history"]["val_cost"][-1],
        "test_accuracy": summary["test_accuracy"],
        "seconds": seconds,
        "train_seconds": summary["train_seconds"],
        "steps": summary["steps"],
        "blas_threads": blas_threads(),
        "data": summary["data"],
        "n_train": run.n_train,
        "config": summary["config"],
    }


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


# --- Executors -------------------------------------------------------------------


def cores():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def process_pool(workers=None, blas_threads=1):
    """A pool of `workers` processes (default: one per core), each limited to blas_threads BLAS threads.

    One BLAS thread each: a run multiplies matrices of a few hundred thousand
    entries, which a second BLAS thread speeds up only about 1.2 times, while
    a second process trains a second run at full speed (see
    benchmarks/search_speedup.py). Workers are spawned, not forked: a fresh
    interpreter inherits no threads, locks or loaded data from the parent.
    """
    return ProcessPoolExecutor(
        workers or cores(),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_pool_worker,
        initargs=(blas_threads,),
    )


def run_stage(executor, runs, results_path, bar):
    """Train runs on executor, appending each record to results_path as soon as it arrives.

    Returns {run key: record}; on a failure, see run_each.
    """
    records = {}

    def record(run, result):
        append_line(results_path, result)
        records[run.key()] = result
        bar.update(1)

    run_each(executor, train_run, runs, record)
    return records


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


def run_search(config, out_dir, executor=None, data_dir=None, progress=True):
    """Run the staged search of config, recording to out_dir; return the summary.

    executor: any concurrent.futures.Executor, e.g. dask's
    Client.get_executor(); None makes a process_pool() for the search.
    data_dir is resolved by each worker as in helpers.core.data.find_batches_dir.
    Runs already in out_dir/runs.jsonl are reused, not trained again.

    The summary (also written to out_dir/summary.json): "best", the best
    judged lambda (see brief); "stages", a stage_summary per stage;
    "per_lambda", every judged lambda, stage by stage in the order drawn;
    "runs", "trained", "reused": training runs (lambdas x seeds) in all,
    trained now, and found in runs.jsonl; "results_file"; "config".
    """
    check_search_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    done = {}
    for record in read_lines(results_path):
        done.setdefault(run_key(record["config"], record["n_train"]), record)
    if data_dir is not None:
        data_dir = os.path.abspath(data_dir)

    stages, judged, runs_seen, trained = [], [], 0, 0
    best = None
    with nullcontext(executor) if executor is not None else process_pool() as ex, \
            progress_bar(config.run_count(), progress, desc="search", unit="run") as bar:
        for stage in range(1, config.stages + 1):
            best_lam = None if best is None else best["lam"]
            log10_range = stage_log10_range(config.lam_range, config.shrink, stage, best_lam)
            per_lambda = plan_stage(config, stage, log10_range, data_dir)
            # Every seed of every lambda goes to the executor at once, to keep all its workers busy.
            runs = [run for lambda_runs in per_lambda for run in lambda_runs]
            todo = [run for run in runs if run.key() not in done]
            bar.update(len(runs) - len(todo))
            done.update(run_stage(ex, todo, results_path, bar))
            trained += len(todo)
            runs_seen += len(runs)
            stage_judged = [brief([done[run.key()] for run in lambda_runs]) for lambda_runs in per_lambda]
            judged += stage_judged
            best = best_lambda(judged)
            stages.append(stage_summary(stage, log10_range, stage_judged))

    summary = {
        "best": best,
        "stages": stages,
        "per_lambda": judged,
        "runs": runs_seen,
        "trained": trained,
        "reused": runs_seen - trained,
        "results_file": RESULTS_FILE,
        "config": config.to_dict(),
    }
    write_json(out / SUMMARY_FILE, summary)
    return summary


def stage_summary(stage, log10_range, judged):
    """The summary of one stage from its judged lambdas (see brief), in the order they were drawn."""
    return {
        "stage": stage,
        "lam_range": [10.0 ** log10_range[0], 10.0 ** log10_range[1]],
        "log10_range": list(log10_range),
        "lams": [j["lam"] for j in judged],
        "best": best_lambda(judged),
    }


def append_line(path, obj):
    """Append obj to path as one JSON line, whole, even with several writers or a crash.

    A writer holds an exclusive lock (flock) on the file while it writes, so
    lines from two processes never mix. A writer killed mid-line leaves a last
    line without its newline; the next writer cuts it off before appending
    (read_lines ignores it meanwhile). fsync: once this returns, the line
    survives a crash of the machine too.
    """
    line = (json.dumps(obj) + "\n").encode()
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_lines(path):
    """The JSON objects of the whole lines of path; [] if it does not exist.

    A last line without its newline is a write cut short (see append_line)
    and is ignored. A whole line that is not JSON raises HelpersError.
    """
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    *lines, _torn_or_empty = content.split(b"\n")
    objects = []
    for number, line in enumerate(lines, 1):
        try:
            objects.append(json.loads(line))
        except ValueError as err:
            raise HelpersError(
                f"{path}, line {number}, is not a JSON record ({err}); the file was damaged "
                "by something other than the search. Delete that line, or move the file away to start afresh."
            ) from err
    return objects

