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
# # 0. The batch normalization layer
#
# Before the network, the layer on its own, on small arrays. A batch is an
# n × d array S, one sample per row, one feature per column, and batch
# normalization treats every feature j on its own:
#
# $$\mu_j = \frac{1}{n} \sum_{i=1}^{n} s_{ij}, \qquad
#   v_j = \frac{1}{n} \sum_{i=1}^{n} (s_{ij} - \mu_j)^2,$$
#
# $$\hat{s}_{ij} = \frac{s_{ij} - \mu_j}{\sqrt{v_j + \varepsilon}}, \qquad
#   \tilde{s}_{ij} = \gamma_j \, \hat{s}_{ij} + \beta_j .$$
#
# The variance divides by n, as in the assignment, and ε = 1e-12 only keeps a
# constant feature from dividing by zero. γ and β are parameters, learned like
# the weights. The layer is `batchnorm_forward(S, gamma, beta)` in
# `helpers/core/layers.py`; the functions of `helpers/report/bn_layer.py`
# below call it and tabulate what it returns.

# %% tags=["parameters"]
QUICK = None  # True: as in CI (nothing here shrinks); None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)

# %%
# %matplotlib inline
import numpy as np

from helpers.core.layers import batchnorm_backward, batchnorm_backward_folded
from helpers.report import bn_layer, plots
from helpers.report.settings import notebook_settings

settings = notebook_settings(quick=QUICK, figures=FIGURES)
# Everything here is small: quick mode only sends the figure to results/quick/.
QUICK, FIGURES = settings.quick, settings.figures

# %% [markdown]
# ## Normalization, then γ and β
#
# 200 samples of three features of very different scales and shifts. The
# table gives each feature's mean and standard deviation before the layer (S),
# once normalized (Ŝ, the output with γ = 1 and β = 0), and after γ and β.

# %%
S = bn_layer.sample_batch(means=[5, -2, 100], stds=[1, 0.1, 20], n=200)
gamma = np.array([2.0, 0.5, 1.0])
beta = np.array([1.0, -3.0, 0.0])
bn_layer.normalization_table(S, gamma, beta)

# %% [markdown]
# Whatever its scale, every feature of Ŝ has mean 0 (to rounding: 1e-15) and
# standard deviation 1, so the next layer sees inputs of one size however the
# weights before it grow or shrink. Then γ and β take over: the output's mean
# is β and its standard deviation γ. The normalization takes nothing away
# that the network could need, since γ = √(v + ε) and β = μ would undo it.
# The third feature keeps γ = 1 and β = 0, the values `init_network` starts
# from.

# %% [markdown]
# ## Test mode: the running averages
#
# In training, every batch is normalized with its own μ and v. A trained
# network must also classify one image at a time, and a batch of one is its
# own mean. So during training the network keeps exponential moving averages
# of the batch statistics,
#
# $$\mu^{\mathrm{av}} \leftarrow \alpha \, \mu^{\mathrm{av}} + (1 - \alpha) \, \mu, \qquad
#   v^{\mathrm{av}} \leftarrow \alpha \, v^{\mathrm{av}} + (1 - \alpha) \, v,$$
#
# with α = 0.9 (`moving_average` in `helpers/core/network.py`, which
# `update_running_stats` applies to every layer after each training step), and
# at test time normalizes with them instead:
# `batchnorm_forward(S, gamma, beta, running=(mu_av, var_av))`.
#
# Here 60 training batches of 100 samples of two features, drawn from fixed
# normal distributions (means 3 and −1, standard deviations 2 and 0.5), go
# through the layer, and the averages start where `init_network` starts them,
# at 0 and 1.

# %%
warmup = bn_layer.warm_up(means=[3, -1], stds=[2, 0.5], batches=60, batch_size=100, alpha=0.9)
fig = plots.running_averages_figure(warmup)
plots.save_figure(fig, "00_batch_norm_running_averages", FIGURES)
fig

# %%
bn_layer.running_averages_table(warmup)

# %% [markdown]
# Each batch moves the averages a tenth of the way to its own statistics, so
# the starting values fade as 0.9 to the power of the batch number: they
# still weigh 35 % after 10 batches, 0.2 % after 60. What remains is the
# noise of the batches, smoothed: the averages wander about a quarter as much
# as the batches' own statistics (√((1 − α) / (1 + α)) ≈ 0.23). A larger α
# would smooth more but forget more slowly, and in a network the statistics
# drift as the weights learn. The batch variance, which divides by n, is on
# average (n − 1)/n of the true one, 1 % low with batches of 100: within the
# noise here.
#
# Now one sample from the same distributions, through the layer three ways
# (γ = 1, β = 0): in training mode within a batch of 10,000 from the same
# distributions, whose statistics are the true ones to about 1 %; alone in
# test mode; and alone in training mode.

# %%
bn_layer.one_sample_table(warmup)

# %% [markdown]
# In test mode one sample comes out as it would in a large batch, to the
# precision of the running averages. Alone in training mode it is its own
# batch mean, and comes out as β (here 0) whatever it was.

# %% [markdown]
# ## The backward pass, checked numerically
#
# The backward pass takes G = ∂J/∂S̃, the gradient arriving from the layers
# above, and returns ∂J/∂S, ∂J/∂γ and ∂J/∂β. The last two are direct:
#
# $$\frac{\partial J}{\partial \gamma_j} = \sum_i g_{ij} \, \hat{s}_{ij}, \qquad
#   \frac{\partial J}{\partial \beta_j} = \sum_i g_{ij} .$$
#
# S reaches Ŝ three ways: directly, through μ and through v.
# `batchnorm_backward` walks the computation graph back one step at a time and
# adds the three paths; `batchnorm_backward_folded` is the assignment's compact
# formula, with G' = G ⊙ γ and D = S − μ (μ and v broadcast over the rows):
#
# $$G_1 = G' \odot (v + \varepsilon)^{-1/2}, \qquad
#   G_2 = G' \odot (v + \varepsilon)^{-3/2}, \qquad
#   c_j = \sum_i (G_2 \odot D)_{ij},$$
#
# $$\frac{\partial J}{\partial s_{ij}} = (G_1)_{ij} - \frac{1}{n} \sum_k (G_1)_{kj} - \frac{1}{n} D_{ij} \, c_j .$$
#
# To check them, take any G and the scalar f(S, γ, β) = Σ g_ij s̃_ij: its
# gradient is exactly what a backward pass returns for G. Each entry of S, γ
# and β is moved by ±h in turn, h = 1e-6, and (f(x + h) − f(x − h)) / 2h
# compared with the backward's, in float64; the relative error is
# max|a − n| / max(|a| + |n|) over a gradient's entries, as in notebook 1.
# The third backward is wrong on purpose: it holds μ and v constant, keeping
# only the direct path, a mistake easily made. The check should catch it.

# %%
S, gamma, beta, dout = bn_layer.small_input(n=5, d=3)
bn_layer.backward_check_table(
    {
        "batchnorm_backward (through the graph)": batchnorm_backward,
        "batchnorm_backward_folded (the assignment's formula)": batchnorm_backward_folded,
        "wrong: mu and var held constant": bn_layer.backward_with_constant_statistics,
    },
    S, gamma, beta, dout,
)

# %% [markdown]
# Both backward passes agree with the differences to about 1e-10, as closely
# as the differences can tell: f carries 16 digits, and dividing its change by
# 2h = 2e-6 leaves about 10. The wrong one is off by tens of percent in dS,
# while its dγ and dβ, which it computes rightly, pass: the check also says
# which gradient is wrong. Notebook 1 checks the whole network the same way.
