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
    """Scores of the last layer, and what backward needs.

    X: (n, d_in) -> S: (n, K), caches (one per layer), batch_stats.
    In training mode batch normalization uses the statistics of X, returned in
    batch_stats as [(mu_l, var_l), ...]; otherwise it uses net.running.
    """
    p = net.params
    k = net.n_layers
    caches, batch_stats = [], []
    H = X
    for l in range(1, k + 1):
        normalized = net.batch_norm and l < k
        S, linear_cache = linear_forward(H, p[f"W{l}"], None if normalized else p[f"b{l}"])
        if l == k:
            caches.append((linear_cache, None, None))
            break
        bn_cache = None
        if net.batch_norm:
            mu, var = (None, None) if training else (net.running[f"mu{l}"], net.running[f"var{l}"])
            S, bn_cache, mu, var = batchnorm_forward(S, p[f"gamma{l}"], p[f"beta{l}"], mu, var)
            batch_stats.append((mu, var))
        H, relu_cache = relu_forward(S)
        caches.append((linear_cache, bn_cache, relu_cache))
    return S, caches, batch_stats


def backward(net, dS, caches, lam, grads=None):
    """Gradients of the cost from dS, the gradient of the loss at the scores.

    dS: (n, K) -> a dict keyed like net.params, each gradient shaped like its parameter.
    grads: a dict like that to write the gradients into, or None for new
    arrays. The training loop keeps one, of views into a single vector, so
    that a step allocates no gradient and updates every parameter at once. The
    gradient of a batch-normalized layer's bias is zero and is not written:
    such a dict must start at zero.
    """
    if grads is None:
        grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    for l in range(net.n_layers, 0, -1):
        linear_cache, bn_cache, relu_cache = caches[l - 1]
        if relu_cache is not None:
            dS = relu_backward(dH, relu_cache)
            if bn_cache is not None:
                dS, _, _ = batchnorm_backward(dS, bn_cache, grads[f"gamma{l}"], grads[f"beta{l}"])
        W, dW = net.params[f"W{l}"], grads[f"W{l}"]
        dH, _, _ = linear_backward(
            dS, linear_cache, W if l > 1 else None, dW, grads[f"b{l}"], bias=bn_cache is None
        )
        if lam:
            dW += (2 * lam) * W
    return grads


def regularization(net, lam):
    """lam * sum of the squared entries of every weight matrix (not b, gamma, beta)."""
    if not lam:
        return 0.0
    return lam * sum(float(np.vdot(W, W)) for name, W in net.params.items() if name.startswith("W"))


def forward_backward(net, X, y, lam, grads=None, scale=1.0):
    """One training-mode pass over a mini-batch.

    X: (n, d_in), y: (n,) -> cost, loss, grads (keyed like net.params), batch_stats.
    grads: where to write the gradients, as in `backward`.
    scale: multiplies every gradient; the training loop passes eta, so that
    the gradients come out as the step and the update needs no extra pass.
    """
    S, caches, batch_stats = forward(net, X, training=True)
    loss, loss_cache = cross_entropy_forward(S, y)
    grads = backward(net, cross_entropy_backward(loss_cache, scale), caches, scale * lam, grads)
    return loss + regularization(net, lam), loss, grads, batch_stats


def cost_and_gradients(net, X, y, lam):
    """The cost on (X, y) in training mode and its gradient for every parameter.

    X: (n, d_in), y: (n,) -> cost (a float), grads keyed like net.params.
    """
    cost, _, grads, _ = forward_backward(net, X, y, lam)
    return cost, grads


def update_running_stats(net, batch_stats):
    """mu_av = alpha mu_av + (1 - alpha) mu, and the same for the variance, in place."""
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
