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
# # 3. Nine layers, with and without batch normalization
#
# The report's deep network, 3072 → 50 → 30 → 20 → 20 → 10 → 10 → 10 → 10 → 10,
# with the settings of notebook 2: He initialization, mini-batches of 100, a
# cyclical learning rate between 1e-5 and 1e-1 with n_s = 2250, two cycles,
# lambda 0.005, trained on 45,000 images. Depth is where batch normalization
# should pay: without it, the scale of the activations drifts from layer to
# layer, and the narrow layers make it worse.
#
# Every setting is trained with 5 seeds (2 in quick mode): another seed
# draws other initial weights and another order of the batches, and moves
# the accuracy as much as some of the report's differences. The tables give
# mean ± standard deviation over the seeds; the figures draw seed 0's curves
# and, as a band, the range of all the seeds. The seeds train in parallel,
# one per core. A run trained before with the same settings on the same
# data is recalled from the cache (`results/cache/`) instead of being
# trained again.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures and comparison rows; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/
SCHEDULER = None  # Dask scheduler for the runs, "tcp://HOST:PORT"; None: NB_SCHEDULER, else local processes

# %%
# %matplotlib inline
from helpers.report import plots, summary, verdicts, writeup
from helpers.report.cache import cached_seeds
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE, scheduler=SCHEDULER)
QUICK, FIGURES, CACHE, SCHEDULER = settings.quick, settings.figures, settings.cache, settings.scheduler

# %%
HIDDEN = (50, 30, 20, 20, 10, 10, 10, 10)
cifar = load_cifar10(split="report", n_train=settings.n_train)
configs = {
    "no BN": TrainConfig(hidden=HIDDEN, norm="none", n_s=settings.n_s),
    "BN": TrainConfig(hidden=HIDDEN, norm="batch", n_s=settings.n_s),
}
runs = cached_seeds(configs, cifar, settings.seeds, CACHE, SCHEDULER)
ours = {"nine_layer/no_bn": summary.test_accuracies(runs["no BN"]),
        "nine_layer/bn": summary.test_accuracies(runs["BN"])}

# %%
fig = plots.curves_figure(runs, "9-layer network [50, 30, 20, 20, 10, 10, 10, 10]")
plots.save_figure(fig, "03_nine_layer_curves", FIGURES)
fig

# %%
summary.accuracy_table(runs)

# %% [markdown]
# ## The report's conclusion, tested
#
# Welch's t-test on the test accuracies of the seeds: is the difference
# between BN and no BN larger than the seeds' own spread?

# %%
verdicts.findings_table(ours)

# %% [markdown]
# ## Against the report
#
# The report's numbers are single runs; ours are means over the seeds, and
# the last column says whether the report's run lies inside the range of
# ours.

# %%
summary.compare("03_nine_layer", ours, FIGURES)

# %%
writeup.closing("03_nine_layer", ours)
