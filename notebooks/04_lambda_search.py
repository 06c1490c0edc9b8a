# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Searching lambda, coarse to fine
#
# The L2 weight lambda of the 3-layer network [50, 50] with batch
# normalization is searched at random, log-uniformly, in three stages of ten
# runs: the first over [1e-5, 1e-1], each later one over a range centred (in
# log10) on the best lambda so far and four times narrower. The report chose
# its later ranges by hand, [1e-4, 1e-3] and then [10^-4.1, 10^-3.9];
# `helpers.search` documents the rule that replaces the hand. Every run trains
# on 45,000 images for two cycles (n_s = 2250) with the same seed, and is
# judged by its accuracy on the 5,000 validation images: the test images are
# never used to choose.
#
# The runs go to a pool of processes, one per core. Each finished run is
# recorded at once in the cache (`results/cache/lambda-search-*/runs.jsonl`),
# and a search started again trains only the runs that are missing. The best
# lambda then trains a final model for three cycles, with 5 seeds (2 in
# quick mode), reported as mean ± standard deviation.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures and comparison rows; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/
SCHEDULER = None  # Dask scheduler for the runs, "tcp://HOST:PORT"; None: NB_SCHEDULER, else local processes

# %%
# %matplotlib inline
from dataclasses import replace

from helpers.report import plots, summary, widgets, writeup
from helpers import search
from helpers.report.cache import cached_seeds, folder_for
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE, scheduler=SCHEDULER)
QUICK, FIGURES, CACHE, SCHEDULER = settings.quick, settings.figures, settings.cache, settings.scheduler
RUNS_PER_STAGE = 2 if QUICK else 10  # lambdas drawn in each of the three stages
AVERAGED_SEEDS = 2 if QUICK else 3  # seeds per lambda of the seed-averaged search

# %%
cifar = load_cifar10(split="report", n_train=settings.n_train)
config = search.SearchConfig(
    coarse=RUNS_PER_STAGE,
    fine=RUNS_PER_STAGE,
    n_train=settings.n_train,
    base=replace(search.SearchConfig().base, n_s=settings.n_s),
)
out = folder_for("lambda-search", config.to_dict(), cifar, CACHE)
found = search.run_search(config, out, SCHEDULER, cifar.folder)  # one worker per core, or the Dask cluster

# %%
fig = plots.search_figure(found)
plots.save_figure(fig, "04_lambda_search", FIGURES)
fig

# %%
summary.search_table(found)

# %% [markdown]
# ## A steadier search: each lambda judged on several seeds
#
# Each run above is one seed, and another seed moves a validation accuracy
# by about as much as nearby lambdas differ, so the best single run is partly
# the luckiest. The same search again, with the same budget of training
# runs, judges each lambda on the mean validation accuracy of 3 seeds (2 in
# quick mode), and so draws a third as many lambdas per stage.

# %%
averaged = replace(config, seeds=AVERAGED_SEEDS, coarse=max(1, RUNS_PER_STAGE // AVERAGED_SEEDS),
                   fine=max(1, RUNS_PER_STAGE // AVERAGED_SEEDS))
found_averaged = search.run_search(averaged, folder_for("lambda-search", averaged.to_dict(), cifar, CACHE),
                                   SCHEDULER, cifar.folder)

# %%
fig = plots.search_figure(found_averaged, f"The same search, each lambda judged on {AVERAGED_SEEDS} seeds (bars: ± 1 std)")
plots.save_figure(fig, "04_lambda_search_averaged", FIGURES)
fig

# %%
summary.search_table(found_averaged)

# %%
summary.search_comparison({"one seed per lambda": found, f"{AVERAGED_SEEDS} seeds per lambda": found_averaged})

# %% [markdown]
# ## The final model
#
# The best lambda of the search, trained for three cycles instead of two,
# with several seeds: seed 0's curves, and the range of all the seeds as a
# band.

# %%
best_lam = found["best"]["lam"]
final = cached_seeds({f"lambda = {best_lam:.2e}, 3 cycles": TrainConfig(lam=best_lam, cycles=3, n_s=settings.n_s)},
                     cifar, settings.seeds, CACHE, SCHEDULER)
(final_runs,) = final.values()  # one configuration, over the seeds
fig = plots.curves_figure({"final model": final_runs},
                          f"The final model: 3-layer [50, 50], BN, the best lambda ({best_lam:.2e}), 3 cycles")
plots.save_figure(fig, "04_final_model_curves", FIGURES)
fig

# %%
summary.accuracy_table(final)

# %% [markdown]
# ## Try another lambda
#
# The slider sets lambda (log scale) for the final model's settings. Releasing
# it recalls that run from the cache, or trains it (the bar shows the
# progress; a full-size run of three cycles takes some seconds), and plots it.
# Its steps of 10^0.1 start from the best lambda, so it can always go back
# to the final model. The button writes the figure shown, as PNG and PDF,
# into the figures folder, as slider_<network>_lambda-<value>.

# %%
widgets.lambda_explorer(cifar, TrainConfig(cycles=3, n_s=settings.n_s), CACHE, FIGURES, lam=best_lam)

# %% [markdown]
# ## Against the report

# %%
ours = {
    **{f"lambda/stage_{stage['stage']}": stage["best"]["val_accuracy"] for stage in found["stages"]},
    "lambda/best": best_lam,
    "lambda/final": summary.test_accuracies(next(iter(final.values()))),
}
summary.compare("04_lambda_search", ours, FIGURES)

# %%
writeup.closing("04_lambda_search", ours)
