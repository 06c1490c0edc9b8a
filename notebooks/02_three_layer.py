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
# # 2. Three layers, with and without batch normalization
#
# The report's network, 3072 → 50 → 50 → 10, trained with its settings:
# He initialization, mini-batches of 100, a cyclical learning rate between
# 1e-5 and 1e-1 with n_s = 2250 (five epochs), two cycles (9,000 update
# steps), lambda 0.005; 45,000 training images, 5,000 for validation, and the
# 10,000 test images. The ensemble averages the softmax outputs of the
# snapshots taken each time the learning rate is back at its minimum.
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
cifar = load_cifar10(split="report", n_train=settings.n_train)
configs = {
    "no BN": TrainConfig(hidden=(50, 50), norm="none", n_s=settings.n_s),
    "BN": TrainConfig(hidden=(50, 50), norm="batch", n_s=settings.n_s),
}
runs = cached_seeds(configs, cifar, settings.seeds, CACHE, SCHEDULER)
ours = {"three_layer/no_bn": summary.test_accuracies(runs["no BN"]),
        "three_layer/bn": summary.test_accuracies(runs["BN"])}

# %% [markdown]
# Cost (loss plus the L2 term), loss and accuracy on the training and the
# validation images, ten times per cycle, as in the report's figures. The
# training curves are measured on a fixed sample of 10,000 training images
# (all 45,000 would cost half as much time as the training itself).

# %%
fig = plots.curves_figure(runs, "3-layer network [50, 50]")
plots.save_figure(fig, "02_three_layer_curves", FIGURES)
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
summary.compare("02_three_layer", ours, FIGURES)

# %%
writeup.closing("02_three_layer", ours)
