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
# # 7. Inside the network as it trains: why batch normalization helps
#
# Notebook 5 tested the report's claims that without batch normalization a
# small initial sigma leaves the network at chance, and that with it sigma
# hardly matters; its verdicts say how far the seeds bear them out. Here we
# look at how the scale of the weights acts on each layer with and without
# BN, and at what BN costs:
#
# 1. **The weight-scale sweep**: test accuracy against sigma from 1e-5 to 1,
#    for the 3- and the 9-layer network, without and with BN.
# 2. **BN, LN and the batch size**: BN normalizes by the statistics of a
#    batch; how does the accuracy move with n_batch, and how far are a test
#    batch's own statistics from the running averages used at test time?
#    Layer normalization (LN) normalizes each image by its own statistics:
#    does it keep its accuracy where BN loses it at small batches?
# 3. **What the network learned**: the report's 3-layer BN network, its
#    first layer's weights as images, its confusion matrix, its most
#    confident mistakes.
# 4. **Each layer during training**: the scale of every layer's output, its
#    gradient and its updates, with and without BN, and a paragraph on why a
#    small sigma can stall training without BN, written from them.
#
# The sweeps train short runs, one cycle of two epochs (each title says so),
# in parallel, one per core: 2 seeds per setting for the weight-scale sweep,
# 5 for the batch-size study, whose verdict rests on Welch's t-tests (2 in
# quick mode); the report's network of section 3 trains on the report's
# schedule. All runs are recalled from the
# cache (`results/cache/`) when trained before. The data is a JPEG
# re-encoded copy of CIFAR-10 (45,000 training images; 5,000 in quick mode).

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished runs; None: NB_CACHE_DIR, else results/cache/
SCHEDULER = None  # Dask scheduler for the runs, "tcp://HOST:PORT"; None: NB_SCHEDULER, else local processes

# %%
# %matplotlib inline
from helpers.report import inside, inside_plots, layer_plots, plots, widgets, writeup
from helpers.report.cache import cached_network, cached_seeds
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10
from helpers.core.network import predict_proba
from helpers.core.config import TrainConfig

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE, scheduler=SCHEDULER)
QUICK, FIGURES, CACHE, SCHEDULER = settings.quick, settings.figures, settings.cache, settings.scheduler
SEEDS = 2  # per setting of the weight-scale sweep, in both modes
BATCH_SEEDS = settings.seeds  # per setting of the batch-size study: 5, or 2 in quick mode

cifar = load_cifar10(split="report", n_train=settings.n_train)
n_train = len(cifar.train.y)
note = inside.schedule_note(n_train)

# %% [markdown]
# ## 1. The weight-scale sweep
#
# Every weight of every layer drawn with the same sigma (He initialization,
# sigma = sqrt(2 / d_in) per layer, in the narrow panel on the right),
# without BN (dotted, open markers) and with it (solid, filled markers). The 9-layer network without BN stops at sigma 0.1:
# at sigma 1 its scores overflow within a few steps and training stops
# (`python -m helpers train --hidden 50 30 20 20 10 10 10 10 --no-bn
# --sigma 1`; `tests/test_inside.py` checks it).

# %%
sweep = cached_seeds(inside.sweep_configs(n_train), cifar, SEEDS, CACHE, SCHEDULER)
fig = inside_plots.sweep_figure(sweep, note)
plots.save_figure(fig, "07_weight_scale_sweep", FIGURES)
fig

# %%
inside.sweep_table(sweep)

# %%
print(inside.sweep_text(sweep))

# %% [markdown]
# ## 2. BN, LN and the batch size
#
# The 3-layer network, He initialization, trained with n_batch from 10 to
# 500 for the same two epochs (n_s scales with 1 / n_batch; the learning
# rates stay the report's), without normalization (dotted), with BN (solid)
# and with layer normalization (dash-dotted; Ba et al. 2016, cs231n's
# `layernorm_forward`: each image normalized over its layer's units, in
# training as at test time). At test time a BN network normalizes with the
# running averages of the training batches' statistics. The dashed line
# shows the same trained network normalizing each batch of n_batch test
# images by that batch's own mean and variance, as in training
# (`helpers.experiments.batch_stats_accuracy`). LN runs take the textbook
# path (`helpers.core.fast.trains` says which networks take the fast one).

# %%
batches = cached_seeds(inside.batch_size_configs(n_train), cifar, BATCH_SEEDS, CACHE, SCHEDULER)
fig = inside_plots.batch_size_figure(batches, note)
plots.save_figure(fig, "07_batch_size", FIGURES)
fig

# %%
inside.batch_size_table(batches)

# %%
print(inside.batch_size_text(batches))

# %% [markdown]
# Does LN keep its accuracy where BN loses it? Welch's t-tests of LN
# against BN at the smallest n_batch and at the report's 100, and of each
# network's accuracy at the smallest n_batch against its own at 100:

# %%
print(inside.layer_norm_text(batches))

# %% [markdown]
# ## 3. What the network learned
#
# The report's 3-layer BN network (`TrainConfig()`: [50, 50], He
# initialization, two cycles of n_s = 2250, lambda 0.005; seed 0): the
# very run of notebook 2's table, with the same test accuracy. Its trained
# weights are kept in the cache beside its summary (`cached_network`); if
# notebook 2 kept only the summary, the run is trained again the same way
# and its network kept only if it reproduces that summary.

# %%
net, summary = cached_network(TrainConfig(n_s=settings.n_s), cifar, CACHE, SCHEDULER)
fig = inside_plots.weights_figure(inside.weight_images(net.params["W1"]))
plots.save_figure(fig, "07_first_layer_weights", FIGURES)
fig

# %%
P = predict_proba(net, cifar.test.X)
matrix = inside.confusion_matrix(cifar.test.y, P.argmax(axis=1))
fig = inside_plots.confusion_figure(matrix, cifar.class_names)
plots.save_figure(fig, "07_confusion_matrix", FIGURES)
fig

# %%
print(inside.confusion_text(matrix, cifar.class_names))

# %%
wrong = inside.confident_mistakes(P, cifar.test.y, 24)
fig = inside_plots.mistakes_figure(inside.to_images(cifar.test.X[wrong], cifar.mean, cifar.std),
                                   cifar.test.y[wrong], P[wrong].argmax(axis=1), P[wrong].max(axis=1),
                                   cifar.class_names)
plots.save_figure(fig, "07_confident_mistakes", FIGURES)
fig

# %% [markdown]
# ## 4. Each layer during training
#
# The 3-layer network at sigma 1e-1, 1e-3 and 1e-4, and the 9-layer network
# with He initialization, without and with BN, on the short schedule, one
# seed each, trained with `TrainConfig(layer_stats=True)`: at every
# evaluation of the history each layer's statistics are measured on a fixed
# probe batch, the first n_batch training images (`helpers/core/probe.py`).
# Each panel is one run, each line one layer, in a colour and line style of
# its own; the y-axes are logarithmic and shared.

# %%
traced = cached_seeds(inside.layer_stats_configs(n_train), cifar, 1, CACHE, SCHEDULER)
three, nine = inside.traced_runs(traced, "3-layer"), inside.traced_runs(traced, "9-layer")
fig = layer_plots.layer_curves_figure(three, "act_std", f"3-layer: each hidden layer's output std; {note}")
plots.save_figure(fig, "07_activation_std", FIGURES)
fig

# %%
fig = layer_plots.layer_curves_figure(three, "grad_norm", f"3-layer: each layer's gradient norm; {note}")
plots.save_figure(fig, "07_gradient_norm", FIGURES)
fig

# %%
fig = layer_plots.layer_curves_figure(nine, "act_std", f"9-layer: each hidden layer's output std; {note}")
plots.save_figure(fig, "07_nine_layer_activation_std", FIGURES)
fig

# %%
fig = layer_plots.layer_curves_figure(nine, "grad_norm", f"9-layer: each layer's gradient norm; {note}")
plots.save_figure(fig, "07_nine_layer_gradient_norm", FIGURES)
fig

# %%
inside.layer_table(traced)

# %% [markdown]
# ### The distributions, layer by layer
#
# Each hidden layer's values at the ReLU's input (after BN, when there is
# BN), the 9-layer network without and with BN, at the last evaluation;
# each histogram spans its own range [-r, r], written in its panel. The
# slider below moves through the evaluations of training; its button writes
# the histograms shown, as PNG and PDF, into the figures folder.

# %%
fig = layer_plots.histogram_figure(nine, -1)
plots.save_figure(fig, "07_histograms", FIGURES)
fig

# %%
widgets.histogram_scrubber(nine, FIGURES)

# %% [markdown]
# ## Why a small sigma can stall training without BN
#
# Written from the statistics of the 3-layer runs at sigma 1e-3 above, and
# at sigma 1e-1 with BN for comparison:

# %%
print(inside.why_text(traced, sigma=1e-3))

# %% [markdown]
# ## What this notebook found
#
# The four sections' conclusions, saved for REPORT.md
# (`07_inside_batch_norm.results.json` beside the figures):

# %%
results = writeup.save_results("07_inside_batch_norm", writeup.inside_results(
    sweep, batches, matrix, cifar.class_names, traced), FIGURES)
writeup.closing("07_inside_batch_norm", results)
