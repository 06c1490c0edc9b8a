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
# # 5. Sensitivity to initialization
#
# Instead of He initialization, every weight of every layer is drawn with the
# same standard deviation sigma: 1e-1, 1e-3 and 1e-4, each without and with
# batch normalization. The network and the other settings are those of
# notebook 2 (3-layer [50, 50], n_s = 2250, two cycles, lambda 0.005).
#
# Without batch normalization a small sigma shrinks the signal at every layer,
# and its gradients with it; batch normalization rescales each layer's scores
# to unit variance whatever the scale of the weights, so it should not care.
#
# Every setting is trained with 5 seeds (2 in quick mode), in parallel, one
# per core: the tables give mean ± standard deviation over the seeds, the
# figure seed 0's curves with the range of all the seeds as a band. A run
# trained before with the same settings on the same data is recalled from
# the cache (`results/cache/`) instead of being trained again.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures and comparison rows; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/
SCHEDULER = None  # Dask scheduler for the runs, "tcp://HOST:PORT"; None: NB_SCHEDULER, else local processes

# %%
# %matplotlib inline
from helpers.report import plots, summary, verdicts, widgets, writeup
from helpers.report.cache import cached_seeds
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE, scheduler=SCHEDULER)
QUICK, FIGURES, CACHE, SCHEDULER = settings.quick, settings.figures, settings.cache, settings.scheduler

# %%
cifar = load_cifar10(split="report", n_train=settings.n_train)
configs = {
    (sigma, batch_norm): TrainConfig(init=sigma, norm="batch" if batch_norm else "none", n_s=settings.n_s)
    for sigma in summary.SIGMAS
    for batch_norm in (False, True)
}
runs = cached_seeds(configs, cifar, settings.seeds, CACHE, SCHEDULER)
ours = {summary.sigma_key(*key): summary.test_accuracies(seeded) for key, seeded in runs.items()}

# %%
fig = plots.sensitivity_figure(runs)
plots.save_figure(fig, "05_init_sensitivity", FIGURES)
fig

# %%
summary.accuracy_table({f"sigma {sigma:g}, {'BN' if bn else 'no BN'}": seeded for (sigma, bn), seeded in runs.items()})

# %% [markdown]
# ## The report's conclusions, tested
#
# With BN, sigma should not matter: each pair of sigmas is tested for a
# difference, and the claim holds when the 95 % interval of the difference
# lies within 1 point. Without BN, sigma 1e-3 and 1e-4 should not train:
# every seed at chance (10 %), below the same sigma with BN. Welch's t-test
# on the test accuracies of the seeds.

# %%
verdicts.findings_table(ours)

# %% [markdown]
# ## Try another sigma
#
# The slider sets sigma (log scale), the box batch normalization. Releasing
# the slider recalls that run from the cache, or trains it (the bar shows
# the progress; a full-size run takes some seconds), and plots it. The
# button writes the figure shown, as PNG and PDF, into the figures folder,
# as slider_<network>_sigma-<value>_<bn or no-bn>.

# %%
widgets.sigma_explorer(cifar, TrainConfig(n_s=settings.n_s), CACHE, FIGURES, sigma=1e-3, norm="batch")

# %% [markdown]
# ## Against the report

# %%
summary.compare("05_init_sensitivity", ours, FIGURES)

# %%
writeup.closing("05_init_sensitivity", ours)
