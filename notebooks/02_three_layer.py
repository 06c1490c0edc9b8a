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
# A run trained before with the same settings on the same data is recalled
# from the cache (`results/cache/`) instead of being trained again.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures and comparison rows; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/

# %%
# %matplotlib inline
from helpers.report import plots, summary
from helpers.report.cache import cached_experiment
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.training import TrainConfig

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE)
QUICK, FIGURES, CACHE = settings.quick, settings.figures, settings.cache

# %%
cifar = load_cifar10(split="report", n_train=settings.n_train)
configs = {
    "no BN": TrainConfig(hidden=(50, 50), batch_norm=False, n_s=settings.n_s),
    "BN": TrainConfig(hidden=(50, 50), batch_norm=True, n_s=settings.n_s),
}
runs = {label: cached_experiment(config, cifar, CACHE) for label, config in configs.items()}

# %% [markdown]
# Cost (loss plus the L2 term), loss and accuracy on the training and the
# validation images, ten times per cycle, as in the report's figures.

# %%
fig = plots.curves_figure(runs, "3-layer network [50, 50]")
plots.save_figure(fig, "02_three_layer_curves", FIGURES)
fig

# %%
summary.accuracy_table(runs)

# %% [markdown]
# ## Against the report

# %%
summary.compare(
    "02_three_layer",
    {"three_layer/no_bn": runs["no BN"]["test_accuracy"], "three_layer/bn": runs["BN"]["test_accuracy"]},
    FIGURES,
)
