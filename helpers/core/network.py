"""The k-layer network: initialization, cost, analytic gradients, prediction.

Layer l (1 <= l < k) computes
    S_l = H_{l-1} W_l + b_l
    S_tilde_l = gamma_l * BN(S_l) + beta_l      (with batch normalization)
    H_l = max(S_tilde_l, 0)
and the last layer computes S_k = H_{k-1} W_k + b_k and P = softmax(S_k).
The cost is the mean cross-entropy plus lam * sum_l ||W_l||^2.

With batch normalization, b_l of a hidden layer is cancelled exactly by the
subtraction of the batch mean (and of the running mean at test time, which
averages batch means), so the forward pass leaves it out: its gradient is
exactly zero and it stays at zero. It is kept in params because it is part of
the assignment's network and of the public contract.

A network is plain data: its sizes, a dict of parameter arrays, and the
running averages of the batch statistics that batch normalization uses at
test time.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .layers import (
    BN_EPS,
    batchnorm_backward,
    batchnorm_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    softmax,
)

__all__ = [
    "BN_EPS",
    "Network",
    "init_network",
    "forward",
    "forward_backward",
    "cost_and_gradients",
    "evaluate",
    "predict_proba",
    "accuracy",
    "cost",
    "update_running_stats",
    "moving_average",
]

INITS = ("he", "xavier")
EVAL_CHUNK = 10_000
"""Rows per forward pass at test time: bounds memory on the full data sets."""


@dataclass
class Network:
    """A k-layer network.

    dims: [d_in, m_1, ..., m_{k-1}, K], so layer l maps dims[l-1] -> dims[l].
    params: "W1", "b1", "gamma1", "beta1", ..., "Wk", "bk"; W_l: (dims[l-1], dims[l]).
    running: "mu1", "var1", ...: the exponential moving averages of the batch
        statistics of every batch-normalized layer, used at test time.
    alpha: the weight of the old average in mu_av = alpha mu_av + (1 - alpha) mu.
    """

    dims: list[int]
    batch_norm: bool
    params: dict[str, np.ndarray]
    running: dict[str, np.ndarray] = field(default_factory=dict)
    alpha: float = 0.9

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    @property
    def dtype(self):
        return self.params["W1"].dtype


def init_network(dims, batch_norm=True, init="he", seed=0, dtype=np.float32, alpha=0.9):
    """A network with random weights, zero biases, gamma = 1 and beta = 0.

    init: "he" (sigma = sqrt(2 / d_in)), "xavier" (sigma = sqrt(1 / d_in)),
    or a number: the same sigma for every layer (the sensitivity experiment).
    The weights are drawn in float64 from `seed` and then cast, so a float32
    and a float64 network with the same seed hold the same numbers.
    """
    dims = _check_dims(dims)
    check_init(init)
    if not 0 <= alpha < 1:
        raise ConfigError(f"alpha must be in [0, 1), got {alpha}.")
    rng = np.random.default_rng(seed)
    params, running = {}, {}
    k = len(dims) - 1
    for l in range(1, k + 1):
        d_in, d_out = dims[l - 1], dims[l]
        sigma = _sigma(init, d_in)
        params[f"W{l}"] = (sigma * rng.standard_normal((d_in, d_out))).astype(dtype)
        params[f"b{l}"] = np.zeros(d_out, dtype)
        if batch_norm and l < k:
            params[f"gamma{l}"] = np.ones(d_out, dtype)
            params[f"beta{l}"] = np.zeros(d_out, dtype)
            running[f"mu{l}"] = np.zeros(d_out, dtype)
            running[f"var{l}"] = np.ones(d_out, dtype)
    return Network(dims, bool(batch_norm), params, running, float(alpha))


def _check_dims(dims):
    dims = list(dims)
    if len(dims) < 2:
        raise ConfigError(f"dims needs an input and an output size, got {dims}.")
    for d in dims:
        if int(d) != d or d < 1:
            raise ConfigError(f"Every layer width must be a whole number >= 1, got {dims}.")
    return [int(d) for d in dims]


def check_init(init):
    if isinstance(init, str):
        if init not in INITS:
            raise ConfigError(f"Unknown init {init!r}: use one of {INITS} or a positive number (sigma).")
    elif not (np.isfinite(init) and init > 0):
        raise ConfigError(f"init sigma must be a positive number, got {init}.")


def _sigma(init, d_in):
    if init == "he":
        return np.sqrt(2.0 / d_in)
    if init == "xavier":
        return np.sqrt(1.0 / d_in)
    return float(init)


def forward(net, X, training=True):
    """The scores of the last layer, and what the backward pass needs.

    X: (n, d_in) -> S: (n, K), caches: one (linear, batch norm, ReLU) triple
    of layer caches per layer. In training mode batch normalization uses the
    statistics of the batch; otherwise the running averages in net.running.
    """
    p, k = net.params, net.n_layers
    caches = []
    H = X
    for l in range(1, k):
        # With batch normalization the bias is left out: the mean
        # subtraction would cancel it exactly.
        S, linear_cache = linear_forward(H, p[f"W{l}"], None if net.batch_norm else p[f"b{l}"])
        bn_cache = None
        if net.batch_norm:
            running = None if training else (net.running[f"mu{l}"], net.running[f"var{l}"])
            S, bn_cache = batchnorm_forward(S, p[f"gamma{l}"], p[f"beta{l}"], running)
        H, relu_cache = relu_forward(S)
        caches.append((linear_cache, bn_cache, relu_cache))
    S, linear_cache = linear_forward(H, p[f"W{k}"], p[f"b{k}"])
    caches.append((linear_cache, None, None))
    return S, caches


def backward(net, dS, caches):
    """The gradient of the loss for every parameter, from dS, its gradient at the scores.

    dS: (n, K) -> a dict keyed like net.params, each gradient shaped like its
    parameter. The bias of a batch-normalized layer is not used, so its
    gradient is zero.
    """
    grads = {}
    for l in range(net.n_layers, 0, -1):
        linear_cache, bn_cache, relu_cache = caches[l - 1]
        if relu_cache is not None:
            dS = relu_backward(dH, relu_cache)
        if bn_cache is not None:
            dS, grads[f"gamma{l}"], grads[f"beta{l}"] = batchnorm_backward(dS, bn_cache)
        dH, grads[f"W{l}"], db = linear_backward(dS, linear_cache)
        grads[f"b{l}"] = np.zeros_like(net.params[f"b{l}"]) if db is None else db
    return grads


def regularization(net, lam):
    """lam * sum of the squared entries of every weight matrix (not b, gamma, beta)."""
    return lam * sum(float(np.sum(W**2)) for name, W in net.params.items() if name.startswith("W"))


def forward_backward(net, X, y, lam):
    """One training-mode pass over a mini-batch: the cost and its gradient.

    X: (n, d_in), y: (n,) -> cost, loss, grads (keyed like net.params),
    batch_stats. The cost is the loss plus lam * sum ||W_l||^2, and grads its
    gradient, the L2 term's 2 lam W_l included. batch_stats is
    [(mu_1, var_1), ...], the batch statistics of every batch-normalized
    layer, for update_running_stats.
    """
    S, caches = forward(net, X, training=True)
    loss, loss_cache = cross_entropy_forward(S, y)
    grads = backward(net, cross_entropy_backward(1.0, loss_cache), caches)
    for l in range(1, net.n_layers + 1):
        grads[f"W{l}"] += 2 * lam * net.params[f"W{l}"]
    batch_stats = [bn_cache[2:4] for _, bn_cache, _ in caches if bn_cache is not None]
    return loss + regularization(net, lam), loss, grads, batch_stats


def cost_and_gradients(net, X, y, lam):
    """The cost on (X, y) in training mode and its gradient for every parameter.

    X: (n, d_in), y: (n,) -> cost (a float), grads keyed like net.params.
    """
    cost, _, grads, _ = forward_backward(net, X, y, lam)
    return cost, grads


def cost(net, X, y, lam):
    """The training-mode cost alone: the loss plus lam * sum ||W_l||^2. X: (n, d_in), y: (n,)."""
    S, _ = forward(net, X, training=True)
    return cross_entropy_forward(S, y)[0] + regularization(net, lam)


def update_running_stats(net, batch_stats):
    """mu_av = alpha mu_av + (1 - alpha) mu, and the same for the variance, in place.

    batch_stats: [(mu_1, var_1), ...] from forward_backward.
    """
    for l, (mu, var) in enumerate(batch_stats, start=1):
        moving_average(net.running[f"mu{l}"], mu, net.alpha)
        moving_average(net.running[f"var{l}"], var, net.alpha)


def moving_average(average, new, alpha):
    """average <- alpha * average + (1 - alpha) * new, in place."""
    average *= alpha
    average += (1 - alpha) * new


def scores(net, X):
    """Test-time scores, in chunks of rows. X: (n, d_in) -> S: (n, K)."""
    return np.concatenate(
        [forward(net, X[i : i + EVAL_CHUNK], training=False)[0] for i in range(0, len(X), EVAL_CHUNK)]
    )


def predict_proba(net, X):
    """Test-time class probabilities. X: (n, d_in) -> P: (n, K)."""
    return softmax(scores(net, X))


def accuracy(net, X, y):
    """Fraction of rows of X whose most probable class is y."""
    return float(np.mean(scores(net, X).argmax(axis=1) == y))


def evaluate(net, X, y, lam):
    """Test-time cost, loss and accuracy on (X, y), in one pass over the data."""
    S = scores(net, X)
    loss, _ = cross_entropy_forward(S, y)
    return {
        "cost": loss + regularization(net, lam),
        "loss": loss,
        "accuracy": float(np.mean(S.argmax(axis=1) == y)),
    }
