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
# # 1. Gradient check
#
# Before anything is trained, the analytic gradients of `helpers.core.network` are
# compared with numerical ones, in float64. The checks follow the report's
# sequence, from a tiny network, where a mistake is cheap to find, up to the
# full 3072 features: 3 images, lambda 0 and one hidden layer of 50 on the
# first 10 features; then 10 images and lambda 0.005; then 1000 features and
# two hidden layers; then all 3072 features and 100 images. Every network has
# batch normalization and is He-initialized.
#
# Each case is checked with two finite differences, step h = 1e-6:
# centered, (f(θ + h) − f(θ − h)) / 2h, with an error of order h², the
# package's default; and forward, (f(θ + h) − f(θ)) / h, with an error of
# order h, the report's. The relative error of a parameter is
# max|a − n| / max(1e-12, max(|a| + |n|)) over its entries
# (`helpers.core.gradcheck.relative_error`). First, on the smallest case, the
# plain check that moves one entry at a time, beside the fast one that the
# others use.

# %% tags=["parameters"]
QUICK = None  # True: small, fast runs, as in CI; None: as NB_QUICK says (1 or 0, unset: 0)
FIGURES = None  # folder for figures and comparison rows; None: NB_FIGURES_DIR, else figures/ (results/quick/ if QUICK)
CACHE = None  # folder of finished work; None: NB_CACHE_DIR, else results/cache/

# %%
# %matplotlib inline
from IPython.display import display

from helpers.report import checks, plots, summary
from helpers.report.settings import notebook_settings
from helpers.core.data import load_cifar10

settings = notebook_settings(quick=QUICK, figures=FIGURES, cache=CACHE)
QUICK, FIGURES, CACHE = settings.quick, settings.figures, settings.cache
N_FULL = 20 if QUICK else 100  # images in the last, full-size check

# %% [markdown]
# ## One entry at a time, and all at once
#
# The plain check, `check_gradients(..., method="textbook")`
# (`numerical_gradients_textbook`), moves one entry of one parameter by +h,
# computes the cost with a whole forward pass, moves it by −h, computes the
# cost again, puts the entry back, and goes on to the next: two forward passes
# per entry. The first case has 1,160 entries, so 2,320 passes; the full-size
# case has about 157,000, so 314,000 passes (the report's forward differences,
# one pass per entry, took 8 minutes on it).
# The fast check (`method="centered"`) computes the same differences, but
# moves a whole column of a weight matrix at once, as a batch, and recomputes
# only what the move can change (`helpers/core/gradcheck.py` says how). Both
# on the first case, with the images of `data_batch_1`, as in
# `python -m helpers gradcheck`. Every check below is made once and kept in
# the cache (`results/cache/`), keyed by the cases, the data and the code, so
# a re-run shows the same errors and times.

# %%
cifar = load_cifar10(split="small")
made = checks.cached_checks(cifar, N_FULL, CACHE)
first = made["first"]
display(checks.side_by_side(first))
print(f"Largest difference between the two numerical gradients: {first['largest_difference']:.1e}")

# %% [markdown]
# The two give the same numbers, to their rounding: the fast check is the
# textbook one rearranged, and `tests/test_gradcheck.py` holds it to that on
# networks of every shape. On so small a network both take a fraction of a
# second; at the full size the fast one takes seconds (the last table below).
#
# ## The report's four checks, centered and forward

# %%
results = made["cases"]
for result in results:
    display(checks.side_by_side(result))

# %% [markdown]
# With batch normalization the bias b of a hidden layer is cancelled by the
# mean subtraction, so the network leaves it out ("unused"): its gradient is
# exactly zero, and there is nothing to check. Every other parameter agrees
# to many digits. The centered differences are far more precise than the
# forward ones, for about twice the time: two forward passes per entry
# instead of one.

# %%
fig = plots.gradcheck_figure(results)
plots.save_figure(fig, "01_gradient_check", FIGURES)
fig

# %% [markdown]
# ## Against the report
#
# The report gives the range of the forward-difference errors of W and gamma
# in the full-size case, and the time of that check.

# %%
full = results[-1]
low, high = checks.error_range(full, "forward", kinds=("W", "gamma"))
summary.compare(
    "01_gradient_check",
    {"gradcheck/forward_errors": f"{low:.0e} to {high:.0e}", "gradcheck/forward_seconds": full["seconds"]["forward"]},
    FIGURES,
)
