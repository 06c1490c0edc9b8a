"""Notebook 04's two searches of lambda, trained once and committed.

The report's coarse-to-fine search of lambda (helpers.search: three stages
of ten runs, one seed each) and the same search with each lambda judged on
the mean of 3 seeds (three stages of three lambdas): 57 runs of 9,000 steps,
about 7 minutes with 2 cores, a quarter of the main job's time.
`python -m helpers.report.lambda_search` trains them once and writes
SEARCH_FILE, which notebook 04 reads in full mode (see
helpers.report.committed); the best lambda's final model still trains in
the notebook. In quick mode (CI) the same code runs 2 lambdas per stage on
short runs.
"""

import sys
from dataclasses import replace

from ..pool import executor_for
from ..search import SearchConfig, run_search
from .cache import folder_for
from .committed import commit_main, read_committed
from .settings import FIGURES_DIR, notebook_settings
from .summary import search_table

SEARCH_FILE = FIGURES_DIR / "04_lambda_search.json"
"""Both searches, as `python -m helpers.report.lambda_search` writes them and notebook 04 reads them."""
COMMAND = "python -m helpers.report.lambda_search"
COST = "about 7 minutes with 2 cores"
"""57 runs of 9,000 steps on the fast path, two at a time: 6 min 03 s on 2026-12-03 (2-core AMD EPYC, SkylakeX
kernels, the JPEG re-encoded copy of CIFAR-10)."""

RUNS_PER_STAGE, QUICK_RUNS_PER_STAGE = 10, 2
"""Single-seed runs per stage, as the report drew them (and in quick mode); the averaged search has the same budget."""
AVERAGED_SEEDS, QUICK_AVERAGED_SEEDS = 3, 2
"""Seeds per lambda of the averaged search, in full and in quick mode."""


def search_configs(settings):
    """{label: SearchConfig} of notebook 04's two searches, for settings (a NotebookSettings).

    The first is the report's search; the second judges each lambda on the
    mean of several seeds and draws that many times fewer lambdas per stage,
    so that both train the same number of runs.
    """
    runs = QUICK_RUNS_PER_STAGE if settings.quick else RUNS_PER_STAGE
    seeds = QUICK_AVERAGED_SEEDS if settings.quick else AVERAGED_SEEDS
    single = SearchConfig(coarse=runs, fine=runs, n_train=settings.n_train,
                          base=replace(SearchConfig().base, n_s=settings.n_s))
    averaged = replace(single, seeds=seeds, coarse=max(1, runs // seeds), fine=max(1, runs // seeds))
    return {"one seed per lambda": single, f"{seeds} seeds per lambda": averaged}


def run_searches(cifar, configs, cache_dir, executor=None, progress=True):
    """Run each search of configs ({label: SearchConfig}) on cifar, one pool for all; kept in cache_dir.

    Returns {"settings": {label: config as a dict}, "searches": {label:
    run_search's summary, less how many of its runs were trained now and
    how many recalled}}.
    """
    found = {}
    with executor_for(executor) as pool:  # its workers load the data once for both searches
        for label, config in configs.items():
            out = folder_for("lambda-search", config.to_dict(), cifar, cache_dir)
            summary = run_search(config, out, pool, cifar.folder, progress)
            found[label] = {key: value for key, value in summary.items() if key not in ("trained", "reused")}
    return {"settings": {label: config.to_dict() for label, config in configs.items()}, "searches": found}


def lambda_searches(settings, cifar):
    """Notebook 04's searches, {label: summary}: read from SEARCH_FILE in full mode, run small in quick mode.

    settings: a NotebookSettings; in quick mode the runs are kept in
    settings.cache and train on settings.scheduler.
    """
    configs = search_configs(settings)
    if not settings.quick:
        expected = {label: config.to_dict() for label, config in configs.items()}
        return read_committed(SEARCH_FILE, expected, f"`{COMMAND}` ({COST})")["searches"]
    return run_searches(cifar, configs, settings.cache, settings.scheduler)["searches"]


def main(argv=None):
    """`python -m helpers.report.lambda_search`: train both searches and write them to SEARCH_FILE (or --out)."""
    def make(cifar, cache, scheduler):
        found = run_searches(cifar, search_configs(notebook_settings(quick=False, environ={})), cache, scheduler)
        return found, "\n\n".join(f"{label}:\n{search_table(summary)}" for label, summary in found["searches"].items())

    return commit_main(argv, COMMAND, f"Train notebook 04's two searches of lambda ({COST}) and write them as JSON.",
                       SEARCH_FILE, make)


if __name__ == "__main__":
    sys.exit(main())
