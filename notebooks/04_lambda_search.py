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
# The 57 runs of this search and of the steadier one below take about 7
# minutes with 2 cores, more than a third of the main job: in full mode both
# are read from `figures/04_lambda_search.json`, committed, which one command
# makes (every run kept in the cache, so a stopped command loses nothing):
#
#     python -m helpers.report.lambda_search
#
# In quick mode (CI) the same code runs 2 lambdas per stage on short runs.
# The best lambda then trains a final model for three cycles, here, with 5
# seeds (2 in quick mode), reported as mean ± standard deviation.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures and comparison rows; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/
SCHEDULER = None  # Dask scheduler for the runs, "tcp://HOST:PORT"; None: NB_SCHEDULER, else local processes

# %%
# %matplotlib inline
from helpers.report import lambda_search, plots, summary, widgets, writeup
from helpers.report.cache import cached_seeds
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE, scheduler=SCHEDULER)
QUICK, FIGURES, CACHE, SCHEDULER = settings.quick, settings.figures, settings.cache, settings.scheduler

# %%
cifar = load_cifar10(split="report", n_train=settings.n_train)
searches = lambda_search.lambda_searches(settings, cifar)
found, found_averaged = searches.values()  # one seed per lambda; several

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
seeds = found_averaged["config"]["seeds"]
fig = plots.search_figure(found_averaged, f"The same search, each lambda judged on {seeds} seeds (bars: ± 1 std)")
plots.save_figure(fig, "04_lambda_search_averaged", FIGURES)
fig

# %%
summary.search_table(found_averaged)

# %%
summary.search_comparison(searches)

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
