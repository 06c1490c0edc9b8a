"""Numerical gradients, to check the analytic ones.

The textbook check (numerical_gradients_textbook) perturbs one entry of one
parameter, runs the whole forward pass, and repeats for every entry: for the
report's largest case (3072 inputs, hidden [50, 50]) that is 300,000 forward
passes and took the report 8 minutes. The fast check (numerical_gradients)
gives the same numbers in seconds.

A parameter of unit j of layer l (a column of W_l, or b_l[j], gamma_l[j],
beta_l[j]) changes only column j of that layer's output. So for each unit we
compute the perturbed column once per perturbation, as a batch: every row of
W_l's column j at once. From there on, the perturbed columns change the next
layer's scores by a rank-one update, and the rest of the forward pass runs
batched over all perturbations. Nothing is linearized: every cost is a real
forward pass, only the parts that cannot change are not recomputed. The
network's options keep this true: a skip adds the unchanged input, batch
normalization after the ReLU works column by column, and a dropout mask
multiplies entry by entry, so the parameters of unit j still change only
column j of their layer's output.

Dropout draws a new mask for every forward pass, and a finite difference
between passes with different masks measures the masks, not the gradient.
So every cost of a check sees one mask: each evaluation gets a fresh
np.random.default_rng(dropout_seed), and draws from it exactly what
network.forward draws (one mask per hidden layer, layer 1 first), and the
analytic gradients are computed with that mask too.

Everything runs in float64.
"""

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import ConfigError
from .layers import BN_EPS, dropout_forward, log_softmax
from .network import cost, cost_and_gradients

DEFAULT_H = 1e-6
CHUNK_BYTES = 2**20
"""Bytes of one batched activation array; small enough to stay in cache."""


def relative_error(analytic, numerical):
    """max |a - n| / max(1e-12, max(|a| + |n|)) over the entries of a parameter.

    Scaled by the largest entries rather than entry by entry: an entry whose
    true gradient is near zero is all rounding noise in both estimates, and
    would otherwise dominate the check.
    """
    a, n = np.asarray(analytic, np.float64), np.asarray(numerical, np.float64)
    return float(np.max(np.abs(a - n)) / max(1e-12, float(np.max(np.abs(a) + np.abs(n)))))


def as_float64(net):
    """A float64 copy of the network, options included (the check needs the precision)."""
    return dataclasses.replace(
        net,
        dims=list(net.dims),
        params={k: v.astype(np.float64) for k, v in net.params.items()},
        running={k: v.astype(np.float64) for k, v in net.running.items()},
    )


def numerical_gradients_textbook(net, X, y, lam, h=DEFAULT_H, dropout_seed=0):
    """Centered differences, one entry at a time: (J(theta + h) - J(theta - h)) / 2h.

    X: (n, d_in), y: (n,) -> a dict keyed like net.params, float64 arrays.
    Plain and slow (two forward passes per entry): for small networks, and to
    check numerical_gradients against. Every cost draws its dropout masks
    from a fresh default_rng(dropout_seed): all see the same masks.
    """
    net = as_float64(net)
    X = np.asarray(X, np.float64)
    grads = {}
    for name, theta in net.params.items():
        grad = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            old = theta[i]
            theta[i] = old + h
            cost_plus = cost(net, X, y, lam, np.random.default_rng(dropout_seed))
            theta[i] = old - h
            cost_minus = cost(net, X, y, lam, np.random.default_rng(dropout_seed))
            theta[i] = old
            grad[i] = (cost_plus - cost_minus) / (2 * h)
        grads[name] = grad
    return grads


def numerical_gradients(net, X, y, lam, h=DEFAULT_H, method="centered", dropout_seed=0):
    """Finite-difference gradient of the training-mode cost for every parameter.

    X: (n, d_in), y: (n,) -> dict keyed like net.params, float64 arrays.
    method: "centered" ((f(t + h) - f(t - h)) / 2h, error O(h^2)) or
    "forward" ((f(t + h) - f(t)) / h, error O(h), as in the report).
    dropout_seed: every cost is that of the dropout masks network.forward
    draws from a fresh default_rng(dropout_seed).

    A ReLU input within reach of the step makes the cost non-smooth there
    and the difference meaningless, so where a perturbation flips the sign of
    any ReLU input, that entry is differenced again with h / 10, then h / 100.
    """
    if method not in ("centered", "forward"):
        raise ValueError(f"method must be 'centered' or 'forward', got {method!r}.")
    if net.norm not in ("none", "batch"):
        raise ConfigError(f"The batched check knows batch normalization only, not norm {net.norm!r}: "
                          "use numerical_gradients_textbook (method='textbook' in check_gradients).")
    net = as_float64(net)
    base = _Baseline(net, np.ascontiguousarray(X, np.float64), y, dropout_seed)
    # The forward difference's f(t) goes through the same batched code as
    # f(t + h), so that their rounding is the same and cancels.
    signs = (1.0, -1.0) if method == "centered" else (1.0, 0.0)
    grads = {name: np.empty(p.shape) for name, p in net.params.items()}

    def unit(job):
        name, j = job
        kind, l = split_name(name)
        grads[name][..., j] = _unit_gradient(base, l, j, kind, h, signs, lam)

    jobs = [(name, j) for name, p in net.params.items() for j in range(p.shape[-1])]
    # Units are independent and NumPy releases the GIL in its loops, so one
    # thread per core; BLAS gets one thread each so they do not fight.
    with threadpool_limits(1), ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(unit, jobs))
    return grads


def split_name(name):
    """ "gamma12" -> ("gamma", 12)."""
    kind = name.rstrip("0123456789")
    return kind, int(name[len(kind) :])


def _unit_gradient(base, l, j, kind, h, signs, lam):
    """Numerical gradient of the parameter `kind` of unit j of layer l.

    For "W" that is the column W_l[:, j], all its rows at once; otherwise one
    entry. The step shrinks for the entries whose perturbations crossed a kink.
    """
    grad, todo = None, None
    for step in (h, h / 10, h / 100):
        d, crossed = _difference(base, l, j, kind, step, signs, lam)
        if grad is None:
            grad, todo = d, crossed
        else:
            grad[todo] = d[todo]
            todo &= crossed
        if not todo.any():
            break
    return grad


def _difference(base, l, j, kind, h, signs, lam):
    """One finite difference with step h; also which entries crossed a kink."""
    old = base.net.params[f"{kind}{l}"][..., j]
    runs = [base.costs_of_column(l, j, kind, s * h) for s in signs]
    costs = [c for c, _ in runs]
    crossed = np.logical_or.reduce([x for _, x in runs])
    if kind == "W":
        # The other terms of the L2 cost do not change; adding only this
        # entry's keeps their rounding out of the difference.
        costs = [c + lam * (old + s * h) ** 2 for c, s in zip(costs, signs)]
    return (costs[0] - costs[1]) / ((signs[0] - signs[1]) * h), crossed


class _Baseline:
    """The unperturbed forward pass, and losses of batches of perturbed ones.

    Layer activations are kept as S[l]: (n, d_l), the scores H_{l-1} W_l
    (+ b_l), and H[l]: (n, d_l), the layer outputs; positive[l] records which
    ReLU inputs are positive, to spot perturbations that cross a kink;
    masks[l] is layer l's dropout mask (None without dropout); S_centered[l]
    and var[l] are the batch statistics that a rank-one move of the scores of
    a layer batch-normalized before its ReLU starts from (see _pre_relu_moved).
    """

    def __init__(self, net, X, y, dropout_seed):
        self.net, self.y = net, y
        # BN right after the linear map: a rank-one move of its scores has
        # cheap batch statistics.
        self.bn_first = net.norm == "batch" and net.norm_place == "before"
        rng = np.random.default_rng(dropout_seed)
        p, k = net.params, net.n_layers
        self.H, self.S, self.positive, self.masks = [X], [None], [None], [None]
        self.S_centered, self.var = [None], [None]
        for l in range(1, k + 1):
            S = self.H[-1] @ p[f"W{l}"]
            if net.has_bias(l):
                S = S + p[f"b{l}"]
            self.S.append(S)
            self.S_centered.append(S - S.mean(axis=0))
            self.var.append(S.var(axis=0))
            if l < k:
                A, relu_input = self._activation(l, S)
                self.positive.append(relu_input > 0)
                if net.has_skip(l):
                    A = A + self.H[l - 1]
                # The draws of network.forward, in its order, from the same
                # seed: the same masks as the analytic gradients'.
                H, mask = dropout_forward(A, net.dropout, rng)
                self.masks.append(mask)
                self.H.append(H)

    def _batchnorm(self, l, S, gamma=None, beta=None):
        """Layer l's batch normalization of S: (..., n, d); gamma, beta: (..., 1, d).

        gamma and beta default to layer l's; the samples are on axis -2.
        """
        gamma = self.net.params[f"gamma{l}"] if gamma is None else gamma
        beta = self.net.params[f"beta{l}"] if beta is None else beta
        S_hat = (S - S.mean(axis=-2, keepdims=True)) / np.sqrt(S.var(axis=-2, keepdims=True) + BN_EPS)
        return S_hat * gamma + beta

    def _activation(self, l, S, gamma=None, beta=None):
        """F_l, layer l's output before its skip and its dropout, and its ReLU's input.

        S: (..., n, d), the layer's scores -> F: (..., n, d), relu_input: (..., n, d).
        """
        if self.net.norm_place == "after":
            return self._batchnorm(l, np.maximum(S, 0), gamma, beta), S
        relu_input = self._batchnorm(l, S, gamma, beta) if self.net.norm == "batch" else S
        return np.maximum(relu_input, 0), relu_input

    def _output(self, l, F, H_prev, cols=slice(None)):
        """Layer l's output H_l from F_l: the skip H_prev added, then the dropout mask.

        F: (..., n, d) holds the columns `cols` of layer l's units (all, or a
        single j with the unit axis dropped); H_prev: layer l-1's output, all
        its columns.
        """
        if self.net.has_skip(l):
            F = F + H_prev[..., cols]
        if self.masks[l] is not None:
            F = F * self.masks[l][:, cols]
        return F

    def costs_of_column(self, l, j, kind, delta):
        """Data loss with one parameter of unit j of layer l moved by delta.

        For kind "W", every row i of W_l[:, j] is moved in turn (a batch of
        d_{l-1} perturbations); otherwise there is one perturbation. Returns
        the losses (P,) and whether each perturbation flipped a ReLU input (P,).
        """
        p, k = self.net.params, self.net.n_layers
        s = self.S[l][:, j]
        gamma = beta = None
        if kind == "W":
            cols = s + delta * self.H[l - 1].T
        else:
            cols = s[None].copy()
            if kind == "b" and self.net.has_bias(l):
                cols += delta
            elif kind in ("gamma", "beta"):
                gamma, beta = p[f"gamma{l}"][j], p[f"beta{l}"][j]
                gamma, beta = (gamma + delta, beta) if kind == "gamma" else (gamma, beta + delta)
        if l == k:
            return self._losses_with_scores_column(j, cols), np.zeros(len(cols), bool)
        if self.net.norm == "batch" and gamma is None:
            gamma, beta = p[f"gamma{l}"][j], p[f"beta{l}"][j]
        F, relu_input = self._activation(l, cols[:, :, None], gamma, beta)
        crossed = ((relu_input[:, :, 0] > 0) != self.positive[l][:, j]).any(axis=1)
        H_cols = self._output(l, F[:, :, 0], self.H[l - 1], j)
        losses, crossed_later = self._losses_with_hidden_column(l, j, H_cols)
        return losses, crossed | crossed_later

    def _losses_with_scores_column(self, j, cols):
        """cols: (P, n) replacements for column j of the last layer's scores."""
        out = np.empty(len(cols))
        for rows in _chunks(len(cols), self.S[-1].size):
            S = np.repeat(self.S[-1][None], rows.stop - rows.start, axis=0)
            S[:, :, j] = cols[rows]
            out[rows] = _losses(S, self.y)
        return out

    def _losses_with_hidden_column(self, l, j, cols):
        """cols: (P, n) replacements for column j of H_l -> losses, crossed: (P,)."""
        # A change delta of column j of H_l moves S_{l+1} by delta (outer) W_{l+1}[j, :].
        delta = cols - self.H[l][:, j]
        m, w = l + 1, self.net.params[f"W{l + 1}"][j]
        losses, crossed = np.empty(len(cols)), np.empty(len(cols), bool)
        for rows in _chunks(len(cols), self.S[m].size):
            if m == self.net.n_layers:
                losses[rows], crossed[rows] = _losses(self.S[m][None] + delta[rows, :, None] * w, self.y), False
                continue
            if self.bn_first:
                relu_input = self._pre_relu_moved(m, delta[rows], w)
                F = np.maximum(relu_input, 0)
            else:
                F, relu_input = self._activation(m, self.S[m][None] + delta[rows, :, None] * w)
            H_l = None
            if self.net.has_skip(m):
                # Layer m adds H_l, which now differs in column j.
                H_l = np.repeat(self.H[l][None], rows.stop - rows.start, axis=0)
                H_l[:, :, j] = cols[rows]
            losses[rows], crossed[rows] = self._losses_after(m, F, relu_input, H_l)
        return losses, crossed

    def _pre_relu_moved(self, m, delta, w):
        """The ReLU input of layer m, batch-normalized before its ReLU, when its scores move by delta (outer) w.

        delta: (P, n), w: (d_m,) -> (P, n, d_m). The batch statistics of
        S + delta w^T follow from those of S with small matrix products,
            mean' = mean + mean(delta) w,
            var'  = var + 2 w cov(S, delta) + w^2 var(delta),
        so only the normalization itself touches arrays of size P n d_m.
        """
        n = delta.shape[1]
        p = self.net.params
        delta_c = delta - delta.mean(axis=1, keepdims=True)
        cov = delta_c @ self.S_centered[m] / n
        var = self.var[m] + 2 * w * cov + w**2 * np.einsum("pi,pi->p", delta_c, delta_c)[:, None] / n
        scale = p[f"gamma{m}"] / np.sqrt(var + BN_EPS)
        pre = delta_c[:, :, None] * w
        pre += self.S_centered[m]
        pre *= scale[:, None, :]
        pre += p[f"beta{m}"]
        return pre

    def _losses_from(self, m, H_prev):
        """Run layers m.. on a batch of layer m-1's outputs H_prev: (P, n, d_{m-1}) -> losses, crossed: (P,)."""
        S = H_prev @ self.net.params[f"W{m}"]
        if self.net.has_bias(m):
            S += self.net.params[f"b{m}"]
        if m == self.net.n_layers:
            return _losses(S, self.y), np.zeros(len(S), bool)
        F, relu_input = self._activation(m, S)
        return self._losses_after(m, F, relu_input, H_prev)

    def _losses_after(self, m, F, relu_input, H_prev):
        """Finish layer m from F_m and its ReLU input, both (P, n, d_m), then run the layers after it.

        H_prev: (P, n, d_{m-1}), layer m-1's outputs, for the skip (None if layer m has none).
        """
        crossed = ((relu_input > 0) != self.positive[m]).any(axis=(1, 2))
        losses, crossed_later = self._losses_from(m + 1, self._output(m, F, H_prev))
        return losses, crossed | crossed_later


def _chunks(total, item_size):
    """Slices of range(total) holding about CHUNK_BYTES of float64 items each."""
    step = max(1, CHUNK_BYTES // (8 * item_size))
    return [slice(i, min(i + step, total)) for i in range(0, total, step)]


def _losses(S, y):
    """Mean cross-entropy of each of a batch of score arrays. S: (P, n, K) -> (P,)."""
    log_P = log_softmax(S)
    return -np.mean(np.take_along_axis(log_P, y[None, :, None], axis=2)[..., 0], axis=1)


def check_gradients(net, X, y, lam, h=DEFAULT_H, method="centered", dropout_seed=0):
    """Analytic against numerical gradients, in float64.

    method: "centered" or "forward" for the fast numerical_gradients, or
    "textbook" for numerical_gradients_textbook (centered, one entry at a time).
    dropout_seed: with dropout, the analytic gradients and every numerical
    cost use the masks drawn from a fresh default_rng(dropout_seed).
    Returns {"errors": {name: relative error}, "max_relative_error", "seconds"
    (of the numerical gradients), "analytic", "numerical"}.
    """
    net = as_float64(net)
    X = np.ascontiguousarray(X, np.float64)
    _, analytic = cost_and_gradients(net, X, y, lam, np.random.default_rng(dropout_seed))
    start = time.perf_counter()
    if method == "textbook":
        numerical = numerical_gradients_textbook(net, X, y, lam, h, dropout_seed)
    else:
        numerical = numerical_gradients(net, X, y, lam, h, method, dropout_seed)
    seconds = time.perf_counter() - start
    errors = {name: relative_error(analytic[name], numerical[name]) for name in net.params}
    return {
        "errors": errors,
        "max_relative_error": max(errors.values()),
        "seconds": seconds,
        "analytic": analytic,
        "numerical": numerical,
    }


KINDS = ("W", "b", "gamma", "beta")


def per_layer_rows(names, cell):
    """The rows of a per-layer table: [l, cell(W_l), cell(b_l), cell(gamma_l), cell(beta_l)].

    names: the parameter names; cell(name) gives a cell's text, and "-" stands
    for a parameter the network does not have.
    """
    names = set(names)
    n_layers = max(split_name(name)[1] for name in names)
    return [[l, *(cell(f"{kind}{l}") if f"{kind}{l}" in names else "-" for kind in KINDS)]
            for l in range(1, n_layers + 1)]


def error_table(errors):
    """The report's per-layer table of relative errors, as text: a row per layer, a column per kind."""
    rows = per_layer_rows(errors, lambda name: f"{errors[name]:.2e}")
    lines = [f"{'layer':>5}" + "".join(f"{kind:>12}" for kind in KINDS)]
    lines += [f"{row[0]:>5}" + "".join(f"{cell:>12}" for cell in row[1:]) for row in rows]
    return "\n".join(lines)
