"""Runs over seeds: one configuration trained for several seeds in parallel, and the spread of its accuracies.

A single run's accuracy is one sample: another seed (other initial weights,
another order of the batches) moves it by a fraction of a point or more, and
so does a change that only reorders floating-point sums. run_seeds trains the
same TrainConfig with seeds base, base + 1, ..., base + n - 1 and returns
every seed's summary (helpers.experiments.summarize) with the mean, standard
deviation, min and max of its test, ensemble test and validation accuracy.

The standard deviation is the sample one (ddof=1): the seeds are a sample of
all the seeds one could have drawn, and their spread around their own mean
underestimates the spread around the true mean; dividing by n - 1 instead of
n makes the variance unbiased (its square root, the std, is still a little
low for few seeds). With one seed there is no spread, and it is None.

The seeds run on the executors of helpers.pool: by default a pool of
processes, one per core (at most one per seed), each with one BLAS thread;
or a Dask cluster. Each worker loads the data itself, once per process.
"""

import os
from dataclasses import dataclass, replace

import numpy as np

from .core.config import TrainConfig, check_config
from .errors import ConfigError
from .progress import progress_bar
from .pool import cores, executor_for, experiment_in_worker, run_each

ACCURACIES = ("test_accuracy", "ensemble_test_accuracy", "val_accuracy")
"""The figures whose spread over the seeds run_seeds reports."""


@dataclass(frozen=True)
class SeedRun:
    """One run: what a worker needs to train it, and whether to send its trained network back."""

    config: TrainConfig
    data_dir: str | None
    split: str
    n_train: int | None
    keep_network: bool = False


def check_seeds(seeds):
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds (how many seeds to train) must be a whole number >= 1, got {seeds!r}.")


def seed_configs(config, seeds):
    """config for seeds config.seed, config.seed + 1, ..., config.seed + seeds - 1: [TrainConfig] * seeds."""
    check_seeds(seeds)
    return [replace(config, seed=config.seed + i) for i in range(seeds)]


def train_seed(run):
    """Train one run in a worker -> (its summary (helpers.experiments.summarize), its Network or None).

    The trained network comes back only if run.keep_network: most callers
    keep summaries only, and need not wait for the arrays to travel.
    """
    summary, net, _ = experiment_in_worker(run.config, run.data_dir, run.n_train, run.split,
                                           f"seed {run.config.seed}")
    return summary, (net if run.keep_network else None)


def train_each(configs, executor=None, data_dir=None, split="report", n_train=None, progress=True, on_result=None,
               keep_networks=False):
    """Train every TrainConfig of configs in parallel on executor; return their summaries, in order.

    executor: where the runs train (helpers.pool.executor_for): a Dask
    scheduler's address ("tcp://HOST:PORT"), any concurrent.futures.Executor,
    or None for a process pool of at most one worker per run and one BLAS
    thread per worker, however few the runs: a run then gives the same
    numbers whichever call trains it (another thread count may sum in
    another order). data_dir, split and
    n_train choose the data as in helpers.core.data.load_cifar10; each
    worker loads it itself. on_result(config, summary, net) is called in
    this process as each run finishes, so that a caller can keep it (e.g. in
    a cache) even if a later run fails or Ctrl-C stops the rest; net is the
    trained Network with keep_networks, else None. If a run fails, the runs
    not started are cancelled and its error is raised.
    """
    for config in configs:
        check_config(config, n_train)
    if not configs:
        return []
    if data_dir is not None:
        data_dir = os.path.abspath(data_dir)  # a worker may run in another folder
    runs = [SeedRun(config, data_dir, split, n_train, keep_networks) for config in configs]
    summaries = {}

    def keep(run, result):
        summary, net = result
        summaries[id(run)] = summary
        if on_result is not None:
            on_result(run.config, summary, net)
        bar.update(1)

    with executor_for(executor, min(len(runs), cores()), 1) as ex, \
            progress_bar(len(runs), progress, desc="runs", unit="run") as bar:
        run_each(ex, train_seed, runs, keep)
    return [summaries[id(run)] for run in runs]


def run_seeds(config, seeds, executor=None, data_dir=None, split="report", n_train=None, progress=True):
    """Train config for seeds seeds, config.seed, config.seed + 1, ..., in parallel on executor.

    executor, data_dir, split, n_train: as for train_each.
    Returns {"seeds": [int] * seeds, "summaries": [summary] * seeds, in the
    order of the seeds, "statistics": seed_statistics(summaries)}.
    """
    configs = seed_configs(config, seeds)
    summaries = train_each(configs, executor, data_dir, split, n_train, progress)
    return {
        "seeds": [c.seed for c in configs],
        "summaries": summaries,
        "statistics": seed_statistics(summaries),
    }


def seed_runs(runs):
    """One run's summary or several seeds' summaries, as a list of summaries either way."""
    return runs if isinstance(runs, list) else [runs]


def seed_statistics(summaries):
    """The spread of each accuracy of ACCURACIES over the summaries of several seeds.

    Returns {accuracy: {"mean", "std", "min", "max": float, "values": [float]
    in the order of summaries}}. std is the sample standard deviation
    (ddof=1), None for a single summary. Every summary must have finished
    training, so that it has an ensemble test accuracy.
    """
    statistics = {}
    for key in ACCURACIES:
        values = np.array([s[key] for s in summaries], dtype=np.float64)
        statistics[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "min": float(values.min()),
            "max": float(values.max()),
            "values": values.tolist(),
        }
    return statistics


def run_text(summary):
    """What `train` prints of one run's summary (helpers.experiments.summarize): its steps and accuracies."""
    lines = [f"trained {summary['steps']} steps in {summary['train_seconds']:.1f} s"
             f" ({summary['ms_per_step']:.3f} ms/step){' (interrupted)' if summary['interrupted'] else ''}",
             f"test accuracy        {100 * summary['test_accuracy']:.2f} %",
             f"validation accuracy  {100 * summary['val_accuracy']:.2f} %"]
    if summary["ensemble_test_accuracy"] is not None:
        lines.append(f"ensemble of {summary['snapshots']} snapshots, test accuracy"
                     f" {100 * summary['ensemble_test_accuracy']:.2f} %")
    return "\n".join(lines)


SPREAD_ROWS = (("test_accuracy", "test accuracy"), ("ensemble_test_accuracy", "ensemble test accuracy"),
               ("val_accuracy", "validation accuracy"))


def spread_text(results):
    """What `train --seeds N` prints of run_seeds' results: the spread of each accuracy, then every seed's run."""
    seeds = len(results["seeds"])
    lines = [f"over {seeds} seeds (std: the sample standard deviation, ddof=1)",
             f"{'':24}{'mean ± std':>16}  {'min':>9}  {'max':>9}"]
    for key, label in SPREAD_ROWS:
        s = results["statistics"][key]
        lines.append(f"{label:24}{100 * s['mean']:6.2f} ± {100 * s['std']:5.2f} %  {100 * s['min']:7.2f} %"
                     f"  {100 * s['max']:7.2f} %")
    for seed, summary in zip(results["seeds"], results["summaries"]):
        lines.append(f"seed {seed}: test {100 * summary['test_accuracy']:.2f} %,"
                     f" ensemble {100 * summary['ensemble_test_accuracy']:.2f} %,"
                     f" validation {100 * summary['val_accuracy']:.2f} %;"
                     f" {summary['steps']} steps in {summary['train_seconds']:.1f} s")
    return "\n".join(lines)
