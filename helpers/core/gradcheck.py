"""Numerical gradients, to check the analytic ones.

The textbook check (numerical_gradients_textbook) perturbs one entry of one
parameter, runs the whole forward pass, and repeats for every entry: for the
report's largest case (3072 inputs, hidden [50, 50]) that is 300,000 forward
passes and took the report 8 minutes. The fast check (numerical_gradients)
gives the same numbers in seconds.

The fast check batches the perturbations and runs them through the
network's own layers (network.activation_forward, layers.linear_forward),
from the perturbed layer on, on arrays of perturbed copies (n, P, d). A
parameter of unit j of layer l (a column of W_l, or b_l[j], gamma_l[j],
beta_l[j]) changes only column j of that layer's scores. For each unit,
every row of W_l's column j is moved at once, as a batch. Where the
normalization treats each unit alone (none, or batch normalization, before
or after the ReLU) the parameters of unit j change only column j of the
layer's output too, so only that column is run through the layer, and the
next layer's scores move by a rank-one update; with layer normalization,
whose statistics mix a sample's units, the whole layer is run. From there
on the rest of the forward pass runs batched over all perturbations. Nothing
is linearized: every cost is a real forward pass, only the parts that cannot
change are not recomputed. A skip adds the unchanged input, and a dropout
mask multiplies entry by entry.

Dropout draws a new mask for every forward pass, and a finite difference
between passes with different masks measures the masks, not the gradient.
So every cost of a check sees one mask: the masks network.forward draws
from a fresh np.random.default_rng(dropout_seed), which the textbook
check's passes draw again, the batched passes replay, and the analytic
gradients use too.

Everything runs in float64.
"""

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from .layers import linear_forward, log_softmax
from .network import activation_forward, cost, cost_and_gradients, forward

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
    """The unperturbed forward pass, and the losses of batches of perturbed ones, by the network's own layers.

    The unperturbed pass is network.forward's, with the dropout masks drawn
    from default_rng(dropout_seed); from its caches, S[l]: (n, d_l) holds
    layer l's scores H_{l-1} W_l (+ b_l), H[l]: (n, d_l) its output (H[0]
    is X), positive[l] which of its ReLU inputs are positive (to spot a
    perturbation that crosses a kink) and masks[l] its dropout mask (None
    without dropout), replayed in every perturbed pass.

    A batch of P perturbed passes holds the copies on a middle axis, (n, P,
    d): samples first, units last, as network.activation_forward takes
    them, so that batch normalization (over the samples, axis 0) and layer
    normalization (over the units, the last axis) each normalize every copy
    alone, and linear_forward's product works unchanged.
    """

    def __init__(self, net, X, y, dropout_seed):
        self.net, self.y = net, y
        p, k = net.params, net.n_layers
        _, caches = forward(net, X, training=True, rng=np.random.default_rng(dropout_seed))
        self.H = [linear_cache[0] for linear_cache, _, _, _ in caches]  # layer l's input is H[l - 1]
        self.S = [None] + [linear_forward(self.H[l - 1], p[f"W{l}"], self._bias(l))[0] for l in range(1, k + 1)]
        self.positive = [None] + [relu_cache > 0 for _, _, relu_cache, _ in caches[:-1]]
        self.masks = [None] + [dropout_cache for _, _, _, dropout_cache in caches[:-1]]
        # With a normalization that treats each unit alone, a parameter of unit j
        # changes only column j of its layer's output: the rest of the layer is
        # not recomputed. Layer normalization mixes a sample's units.
        self.per_unit = net.norm in ("none", "batch")
        self.chunk_size = n_per_chunk(len(X) * max(net.dims[1:]))

    def _bias(self, l):
        return self.net.params[f"b{l}"] if self.net.has_bias(l) else None

    def costs_of_column(self, l, j, kind, delta):
        """Data loss with one parameter of unit j of layer l moved by delta.

        For kind "W", every row i of W_l[:, j] is moved in turn (a batch of
        d_{l-1} perturbations); otherwise there is one perturbation. Returns
        the losses (P,) and whether each perturbation flipped a ReLU input (P,).
        """
        p, k = self.net.params, self.net.n_layers
        s = self.S[l][:, j, None]  # (n, 1)
        gamma = beta = None
        if kind == "W":
            cols = s + delta * self.H[l - 1]  # (n, P): column j of S_l, for each row of W_l[:, j] moved
        else:
            cols = s.copy()
            if kind == "b" and self.net.has_bias(l):
                cols += delta
            elif kind in ("gamma", "beta"):
                gamma, beta = p[f"gamma{l}"].copy(), p[f"beta{l}"].copy()
                (gamma if kind == "gamma" else beta)[j] += delta
        if l == k:
            return self._losses_with_score_column(l, j, cols, None)
        if not self.per_unit:
            return self._losses_with_score_column(l, j, cols, self.H[l - 1][:, None], gamma, beta)
        if self.net.norm != "none":
            gamma = (p[f"gamma{l}"] if gamma is None else gamma)[j, None]
            beta = (p[f"beta{l}"] if beta is None else beta)[j, None]
        F, _, relu_input = activation_forward(self.net, l, cols[:, :, None], gamma=gamma, beta=beta)
        crossed = ((relu_input[:, :, 0] > 0) != self.positive[l][:, j, None]).any(axis=0)
        mask = None if self.masks[l] is None else self.masks[l][:, j, None]
        skip_input = self.H[l - 1][:, j, None] if self.net.has_skip(l) else None  # as wide: unit j's own input
        H_cols = self._output(l, F[:, :, 0], skip_input, mask)
        losses, crossed_later = self._losses_with_hidden_column(l, j, H_cols)
        return losses, crossed | crossed_later

    def _losses_with_score_column(self, l, j, cols, H_prev, gamma=None, beta=None):
        """cols: (n, P) replacements for column j of S_l, the whole layer recomputed -> losses, crossed: (P,).

        chunk_size copies at a time: layer 1 of the report's network has 3,072
        perturbations of a row of W_1, and all of them at once would be an
        (n, 3072, d) array per layer.
        """
        losses, crossed = np.empty(cols.shape[1]), np.empty(cols.shape[1], bool)
        for rows in _chunks(cols.shape[1], self.chunk_size):
            S = self._with_column(self.S[l], j, cols[:, rows])
            losses[rows], crossed[rows] = self._losses_from(l, S, H_prev, gamma, beta)
        return losses, crossed

    def _with_column(self, S, j, cols):
        """Copies of S: (n, d), one per column of cols: (n, P), with column j replaced by it -> (n, P, d)."""
        out = np.repeat(S[:, None], cols.shape[1], axis=1)
        out[:, :, j] = cols
        return out

    def _losses_with_hidden_column(self, l, j, cols):
        """cols: (n, P) replacements for column j of H_l -> losses, crossed: (P,)."""
        # A change delta of column j of H_l moves S_{l+1} by delta (outer) W_{l+1}[j, :].
        delta = cols - self.H[l][:, j, None]  # (n, P)
        m, w = l + 1, self.net.params[f"W{l + 1}"][j]
        losses, crossed = np.empty(cols.shape[1]), np.empty(cols.shape[1], bool)
        for rows in _chunks(cols.shape[1], self.chunk_size):
            S = self.S[m][:, None] + delta[:, rows, None] * w  # (n, P, d_m)
            # Layer m adds H_l, which now differs in column j, if it has a skip.
            H_l = self._with_column(self.H[l], j, cols[:, rows]) if self.net.has_skip(m) else None
            losses[rows], crossed[rows] = self._losses_from(m, S, H_l)
        return losses, crossed

    def _losses_from(self, m, S, H_prev, gamma=None, beta=None):
        """Run the network on from layer m's scores S: (n, P, d_m) -> losses, crossed: (P,).

        H_prev: layer m-1's outputs, (n, P or 1, d_{m-1}), for layer m's skip
        (None if it has none). gamma, beta: layer m's, if moved.
        """
        crossed = np.zeros(S.shape[1], bool)
        while m < self.net.n_layers:
            F, _, relu_input = activation_forward(self.net, m, S, gamma=gamma, beta=beta)
            crossed |= ((relu_input > 0) != self.positive[m][:, None]).any(axis=(0, 2))
            H = self._output(m, F, H_prev, None if self.masks[m] is None else self.masks[m][:, None])
            m, gamma, beta = m + 1, None, None
            S, _ = linear_forward(H, self.net.params[f"W{m}"], self._bias(m))
            H_prev = H
        return _losses(S, self.y), crossed

    def _output(self, l, F, H_prev, mask):
        """Layer l's output H_l from F_l, as network.forward makes it: the skip's H_prev added, then the mask."""
        if self.net.has_skip(l):
            F = F + H_prev
        return F if mask is None else F * mask


def n_per_chunk(item_size):
    """How many perturbed copies of item_size float64 numbers make about CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // (8 * item_size))


def _chunks(total, step):
    """Slices of range(total), step at a time."""
    return [slice(i, min(i + step, total)) for i in range(0, total, step)]


def _losses(S, y):
    """Mean cross-entropy of each of a batch of score arrays. S: (n, P, K) -> (P,)."""
    log_P = log_softmax(S)
    return -np.mean(np.take_along_axis(log_P, y[:, None, None], axis=2)[..., 0], axis=0)


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
