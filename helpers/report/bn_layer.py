"""The batch normalization layer on its own, on small arrays: what notebook 00 shows.

Three demonstrations, each a function the notebook calls and the tests check:
- normalization: every feature leaves the layer with mean 0 and standard
  deviation 1, whatever its scale and shift, and then gamma and beta set them;
- test mode: running averages of the batch statistics, kept over training
  batches, stand in for the statistics of a batch when there is none;
- the backward pass, checked against centered differences.

Everything runs in float64, on the layers of helpers.core.layers.
"""

import numpy as np

from ..core.gradcheck import DEFAULT_H, relative_error
from ..core.layers import BN_EPS, batchnorm_forward
from ..core.network import moving_average
from .tables import Table


def sample_batch(means, stds, n, seed=0):
    """n samples of independent normal features with these means and standard deviations.

    means, stds: (d,); seed: an int or a np.random.Generator -> S: (n, d).
    """
    rng = np.random.default_rng(seed)
    means, stds = np.asarray(means, np.float64), np.asarray(stds, np.float64)
    return means + stds * rng.standard_normal((n, len(means)))


# ---------------------------------------------------------------- normalization


def normalization_statistics(S, gamma, beta):
    """Per-feature mean and standard deviation of S, of S normalized, and of the layer's output.

    S: (n, d), gamma, beta: (d,). The normalized S is the layer's output with
    gamma = 1 and beta = 0. Returns {"before", "normalized", "output"}, each
    (mean (d,), std (d,)); the std divides by n, as the layer's variance does.
    """
    d = S.shape[1]
    S_hat, _ = batchnorm_forward(S, np.ones(d), np.zeros(d))
    S_tilde, _ = batchnorm_forward(S, gamma, beta)
    return {name: (A.mean(axis=0), A.std(axis=0))
            for name, A in (("before", S), ("normalized", S_hat), ("output", S_tilde))}


def normalization_table(S, gamma, beta):
    """normalization_statistics as a table, one row per feature, with gamma and beta beside the output's."""
    stats = normalization_statistics(S, gamma, beta)
    rows = []
    for j in range(S.shape[1]):
        cells = [_number(stats[stage][k][j]) for stage in ("before", "normalized") for k in (0, 1)]
        cells += [_number(gamma[j]), _number(beta[j]), *(_number(stats["output"][k][j]) for k in (0, 1))]
        rows.append([j + 1, *cells])
    header = ["feature", "mean of S", "std of S", "mean of S_hat", "std of S_hat", "gamma", "beta",
              "mean of output", "std of output"]
    return Table(header, rows, f"**{S.shape[0]} samples**: per feature, before and after the layer")


def _number(x):
    return f"{x:.3g}"


# -------------------------------------------------------------------- test mode


def warm_up(means, stds, batches=60, batch_size=100, alpha=0.9, seed=0):
    """The running averages of the batch statistics over training batches from one distribution.

    Each batch of batch_size samples (sample_batch with these means and stds)
    goes through the layer in training mode, and its mean and variance update
    the running averages as the network's training does:
        mu_av <- alpha mu_av + (1 - alpha) mu,   var_av <- alpha var_av + (1 - alpha) var,
    starting, as init_network does, from mu_av = 0 and var_av = 1.

    Returns {"mean", "var": the distribution's, (d,); "batch_mean",
    "batch_var": each batch's, (batches, d); "running_mean", "running_var":
    (batches + 1, d), row 0 the starting values and row b the averages after
    batch b; "alpha", "batch_size"}.
    """
    rng = np.random.default_rng(seed)
    d = len(means)
    gamma, beta = np.ones(d), np.zeros(d)
    mu_av, var_av = np.zeros(d), np.ones(d)
    batch_mean, batch_var, running_mean, running_var = [], [], [mu_av.copy()], [var_av.copy()]
    for _ in range(batches):
        S = sample_batch(means, stds, batch_size, rng)
        # The layer's cache holds the batch mean and variance it normalized with.
        _, (_, _, mu, var, _) = batchnorm_forward(S, gamma, beta)
        moving_average(mu_av, mu, alpha)
        moving_average(var_av, var, alpha)
        batch_mean.append(mu)
        batch_var.append(var)
        running_mean.append(mu_av.copy())
        running_var.append(var_av.copy())
    return {
        "mean": np.asarray(means, np.float64),
        "var": np.asarray(stds, np.float64) ** 2,
        "batch_mean": np.array(batch_mean),
        "batch_var": np.array(batch_var),
        "running_mean": np.array(running_mean),
        "running_var": np.array(running_var),
        "alpha": alpha,
        "batch_size": batch_size,
    }


def running_averages_table(warmup):
    """Per feature: the distribution's mean and variance beside the running averages after the warm-up."""
    rows = [[j + 1, _number(warmup["mean"][j]), _number(warmup["running_mean"][-1, j]),
             _number(warmup["var"][j]), _number(warmup["running_var"][-1, j])]
            for j in range(len(warmup["mean"]))]
    batches = len(warmup["batch_mean"])
    return Table(["feature", "true mean", "mu_av", "true variance", "var_av"], rows,
                 f"**After {batches} batches of {warmup['batch_size']}** (alpha = {warmup['alpha']:g})")


def one_sample(warmup, n_large=10_000, seed=1):
    """One sample through the layer three ways, with gamma = 1 and beta = 0.

    The sample is the first row of a batch of n_large from the warm-up's
    distribution. Returns, each (d,): "sample", the sample itself;
    "large_batch", its output in training mode within that batch, whose
    statistics are the distribution's to about 1 %; "test_mode", its output
    alone with the warm-up's running averages; "alone", its output alone in
    training mode, a batch of one.
    """
    S = sample_batch(warmup["mean"], np.sqrt(warmup["var"]), n_large, seed)
    gamma, beta = np.ones(S.shape[1]), np.zeros(S.shape[1])
    running = (warmup["running_mean"][-1], warmup["running_var"][-1])
    return {
        "sample": S[0],
        "large_batch": batchnorm_forward(S, gamma, beta)[0][0],
        "test_mode": batchnorm_forward(S[:1], gamma, beta, running)[0][0],
        "alone": batchnorm_forward(S[:1], gamma, beta)[0][0],
    }


def one_sample_table(warmup, n_large=10_000, seed=1):
    """one_sample as a table, one row per way, one column per feature."""
    outputs = one_sample(warmup, n_large, seed)
    ways = (
        ("sample", "the sample, s"),
        ("large_batch", f"training mode, in a batch of {n_large:,}"),
        ("test_mode", "test mode, alone: running averages"),
        ("alone", "training mode, alone: a batch of one"),
    )
    d = len(outputs["sample"])
    rows = [[label, *(_number(outputs[key][j]) for j in range(d))] for key, label in ways]
    return Table(["", *(f"feature {j + 1}" for j in range(d))], rows)


# ---------------------------------------------------------------- backward pass


def small_input(n=5, d=3, seed=0):
    """A small random problem for the backward check: S (n, d), gamma, beta (d,), dout (n, d).

    The features have different scales and shifts (standard deviations from
    0.1 to 10), so that a mistake in how the gradient scales cannot hide.
    """
    rng = np.random.default_rng(seed)
    S = sample_batch(rng.uniform(-5, 5, d), np.logspace(-1, 1, d), n, rng)
    gamma, beta = rng.uniform(0.5, 2, d), rng.standard_normal(d)
    return S, gamma, beta, rng.standard_normal((n, d))


def numerical_gradients(S, gamma, beta, dout, h=DEFAULT_H, forward=batchnorm_forward):
    """Centered differences of f = sum(dout * BN(S)) for every entry of S, gamma and beta.

    forward: the layer's forward pass, batchnorm_forward or another of the
    same signature (layers.layernorm_forward).

    The gradient of f is what a backward pass returns for dout: dout plays
    the part of the gradient arriving from the layers above.
    S, dout: (n, d), gamma, beta: (d,) -> {"S": (n, d), "gamma": (d,), "beta": (d,)}.
    """
    inputs = {"S": S.copy(), "gamma": gamma.copy(), "beta": beta.copy()}

    def f():
        S_tilde, _ = forward(inputs["S"], inputs["gamma"], inputs["beta"])
        return np.sum(dout * S_tilde)

    grads = {}
    for name, x in inputs.items():
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            f_plus = f()
            x[i] = old - h
            f_minus = f()
            x[i] = old
            grad[i] = (f_plus - f_minus) / (2 * h)
        grads[name] = grad
    return grads


def backward_errors(backward, S, gamma, beta, dout, h=DEFAULT_H):
    """Relative errors of backward's dS, dgamma, dbeta against numerical_gradients.

    backward: a function (dout, cache) -> (dS, dgamma, dbeta), such as
    helpers.core.layers.batchnorm_backward. Returns {"S", "gamma", "beta"}.
    """
    _, cache = batchnorm_forward(S, gamma, beta)
    analytic = dict(zip(("S", "gamma", "beta"), backward(dout, cache)))
    numerical = numerical_gradients(S, gamma, beta, dout, h)
    return {name: relative_error(analytic[name], numerical[name]) for name in numerical}


def backward_check_table(backwards, S, gamma, beta, dout, h=DEFAULT_H):
    """backward_errors of each of backwards, {label: backward}, as a table: a row each."""
    rows = []
    for label, backward in backwards.items():
        errors = backward_errors(backward, S, gamma, beta, dout, h)
        rows.append([label, *(f"{errors[name]:.1e}" for name in ("S", "gamma", "beta"))])
    n, d = S.shape
    caption = (f"**{n} samples, {d} features**: relative errors against centered differences, "
               f"h = {h:g}, float64")
    return Table(["backward", "dS", "dgamma", "dbeta"], rows, caption)


def backward_with_constant_statistics(dS_tilde, cache):
    """A wrong backward pass, for the check to catch: it holds the batch mean and variance constant.

    It keeps only the direct path from S to S_hat, dS = gamma dS_tilde / sqrt(var + eps),
    and forgets that mu and var move with every sample of the batch: the
    gradient of test mode, not of training mode.
    """
    _, S_hat, _, var, gamma = cache
    dS = dS_tilde * gamma / np.sqrt(var + BN_EPS)
    return dS, (dS_tilde * S_hat).sum(axis=0), dS_tilde.sum(axis=0)
