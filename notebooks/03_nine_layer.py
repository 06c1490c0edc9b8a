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
# A run trained before with the same settings on the same data is recalled
# from the cache (`results/cache/`) instead of being trained again.

# %% tags=["parameters"]
import os

QUICK = os.environ.get("NB_QUICK", "0") not in ("", "0")  # NB_QUICK=1: small, fast runs (CI)
N_TRAIN = 5000 if QUICK else None  # training images (None: all 45,000)
N_S = 100 if QUICK else None  # steps per half cycle (None: five epochs, 2250)
FIGURES = os.environ.get("NB_FIGURES_DIR", "../results/quick" if QUICK else "../figures")
CACHE = os.environ.get("NB_CACHE_DIR", "../results/cache")

# %%
import sys
from pathlib import Path

sys.path.insert(0, str(Path("..").resolve()))  # the repository root, which holds helpers/
# %matplotlib inline
from helpers.report import plots, summary
from helpers.report.cache import cached_experiment
from helpers.core.data import load_cifar10
from helpers.core.training import TrainConfig

# %%
HIDDEN = (50, 30, 20, 20, 10, 10, 10, 10)
cifar = load_cifar10(split="report", n_train=N_TRAIN)
configs = {
    "no BN": TrainConfig(hidden=HIDDEN, batch_norm=False, n_s=N_S),
    "BN": TrainConfig(hidden=HIDDEN, batch_norm=True, n_s=N_S),
}
runs = {label: cached_experiment(config, cifar, CACHE) for label, config in configs.items()}

# %%
fig = plots.curves_figure(runs, "9-layer network [50, 30, 20, 20, 10, 10, 10, 10]")
plots.save_figure(fig, "03_nine_layer_curves", FIGURES)
fig

# %%
summary.accuracy_table(runs)

# %% [markdown]
# ## Against the report

# %%
summary.compare(
    "03_nine_layer",
    {"nine_layer/no_bn": runs["no BN"]["test_accuracy"], "nine_layer/bn": runs["BN"]["test_accuracy"]},
    FIGURES,
)
