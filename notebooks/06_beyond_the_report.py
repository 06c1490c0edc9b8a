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
# # 6. Beyond the report: the assignment's bonus exercise
#
# The assignment ends with an optional exercise: make the network as good as
# you can. Its handouts list the avenues: a wider or deeper network, dropout,
# batch normalization after the ReLU instead of before, random jitter of the
# training images, PreciseBN (the population statistics recomputed after
# training), other update rules. Every one of them is in `helpers/core/`
# (dropout and the network's options in `layers.py` and `network.py`, the
# update rules and schedules in `optim.py`, the augmentation in
# `augment.py`), checked against numerical gradients and PyTorch. One more
# avenue, older than the course: ZCA whitening of the images (`whiten.py`),
# which decorrelates the pixels for the first layer and is folded into its
# weights after training.
#
# **The ablation.** Each change alone on top of the report's 3-layer BN
# network (n_s = 2250, two cycles), then the changes added one by one, each
# over 3 seeds (2 in quick mode), in parallel, one per core: the table gives
# the test accuracy as mean ± std, the gain over the report's network with
# Welch's t-test, and the training time per run. PreciseBN and mirror TTA
# change only how a trained network is evaluated, so their rows read their
# accuracy from the training of the row they add to (`ablation.ablation_runs`).
# ZCA whitening uses the best model's eps, 3 (`docs/beyond-the-report.md`
# says how it was chosen).
# Label smoothing (eps = 0.1, Szegedy et al. 2016) and layer normalization
# in place of batch normalization (Ba et al. 2016) are measured alone only:
# layer normalization leaves PreciseBN nothing to recompute. The last two
# rows are the best model below (`--preset best`, its committed file in
# full mode), without and with mirror TTA, from the same three networks.
#
# The ablation's 42 trainings take about 13 minutes with 2 cores, as long
# as the whole main job: in full mode the table reads `figures/06_ablation.json`,
# committed, which one command makes (every run kept in the cache):
#
#     python -m helpers.report.ablation
#
# In quick mode (CI) the same rows train on short runs, 2 seeds each.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/
SCHEDULER = None  # Dask scheduler for the runs, "tcp://HOST:PORT"; None: NB_SCHEDULER, else local processes

# %%
# %matplotlib inline
from helpers.report import ablation, plots, rules, summary, writeup
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.config import PRESETS

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE, scheduler=SCHEDULER)
QUICK, FIGURES, CACHE, SCHEDULER = settings.quick, settings.figures, settings.cache, settings.scheduler

# %%
cifar = load_cifar10(split="report", n_train=settings.n_train)
best_runs = ablation.best_model_runs(settings, cifar, CACHE)
runs = {**ablation.notebook_ablation(settings, cifar), **ablation.tta_rows(best_runs)}
ablation.ablation_table(runs)

# %% [markdown]
# What the table says, written from it:

# %%
print(ablation.gains_text(runs, ablation.CHANGES))

# %% [markdown]
# ## Update rules and schedules, each at its own learning rate
#
# The ablation keeps the report's plain SGD with cyclical learning rates.
# Was that the right choice? Momentum, Nesterov, Adam and RMSprop (with the
# cyclical schedule), and the step and cosine schedules (with SGD), each at
# the report's eta_max would be an unfair test: Adam's good learning rate is
# about a hundred times smaller than SGD's, and momentum's step is about
# eta / (1 - mu). So each gets a short random search of eta_max over a log
# range of its own (6 values, one seed each, judged on the validation
# accuracy), then its best eta_max trains on 3 seeds (0, 1, 2), beside the
# report's network, all with the report's network and budget (2 cycles of
# n_s = 2250, 9,000 steps; eta_min stays at 1e-5, `helpers/report/rules.py`
# says why). That is 66 runs, 10 to 25 minutes with 2 cores, more than the
# main job can add: the table and figure below read
# `figures/06_rules.json`, committed, which one command makes:
#
#     python -m helpers.report.rules
#
# In quick mode (CI) the same code runs 2 values per search and 2 seeds, on
# short runs.

# %%
found = rules.comparison(settings, cifar, SCHEDULER)
rules.rules_table(found)

# %%
fig = rules.rules_figure(found)
plots.save_figure(fig, "06_rules", FIGURES)
fig

# %% [markdown]
# What the comparison says, written from it:

# %%
print(rules.rules_text(found))

# %% [markdown]
# ## The best model
#
# Wider and longer than anything the main job can train over seeds: the
# settings of `PRESETS["best"]` in `helpers/core/config.py`, one command:
#
#     python -m helpers train --preset best --seeds 3 --json figures/06_best_model.json
#
# The figures below read that file (committed; about 13 minutes per seed
# with 2 cores). Seed 0's curves, with the range of the 3 seeds as a band.
# In quick mode (CI), the same settings train for one short cycle instead.
# It trains on ZCA-whitened images (eps 3), the map folded into its first
# layer afterwards, so the network takes the images as every other does.
# The preset evaluates with mirror TTA (each test image and its mirror,
# their class probabilities averaged), which changes no training: the
# ablation's last two rows give the same networks without and with it.

# %%
PRESETS["best"]

# %%
best = {"best model": best_runs}  # as PRESETS["best"] evaluates: with mirror TTA
fig = plots.curves_figure(best, plots.settings_title("The best model", ablation.best_settings()), log_cost=True)
plots.save_figure(fig, "06_best_model_curves", FIGURES)
fig

# %%
summary.accuracy_table(best)

# %% [markdown]
# ## What this notebook found
#
# The ablation's accuracies and paragraph and the best model's accuracies,
# saved for REPORT.md (`06_beyond_the_report.results.json` beside the
# figures), and the notebook's conclusion written from them.

# %%
results = writeup.save_results("06_beyond_the_report", writeup.ablation_results(
    runs, best["best model"], ablation.CHANGES, ablation.best_settings()), FIGURES)
writeup.closing("06_beyond_the_report", results)
