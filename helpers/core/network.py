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

Three options change a hidden layer l (1 <= l < k); with their defaults
(norm "batch" before the ReLU, no skips, no dropout) the network is exactly
the one above. In full, layer l computes
    S_l = H_{l-1} W_l + b_l                        (b_l left out if BN comes next)
    F_l = max(gamma_l * N(S_l) + beta_l, 0)        (norm_place "before": the default)
     or = gamma_l * N(max(S_l, 0)) + beta_l        (norm_place "after")
     or = max(S_l, 0)                              (norm "none")
    A_l = F_l + H_{l-1}                            (skips, on layers that have one)
     or = F_l
    H_l = A_l * M_l                                (dropout, in training mode)
     or = A_l

norm: the normalization N of every hidden layer, one of NORMS: "batch"
(batch normalization, each unit over the batch), "layer" (layer
normalization, each sample over the layer's units: the same in training
and at test time, no running averages; b_l is not cancelled, so it is
used) or "none".

norm_place: where N sits, one of NORM_PLACES: "before" the ReLU (the
report's) or "after" it. After the ReLU, the mean subtraction no longer
follows the linear map, so b_l is used and learnt, and batch
normalization's running averages are those of max(S_l, 0).

skips: a hidden layer l >= 2 as wide as the layer before it (dims[l-1] ==
dims[l]) adds its input to its output, H_l = F_l(H_{l-1}) + H_{l-1}. The
addition comes after the whole layer (after the ReLU, or after the
normalization placed after it) and before the layer's dropout: the pre-dropout placement,
so the dropout acts on the sum, and the H_{l-1} that is added is layer l-1's
output as the next layer sees it (its own dropout applied). Layer 1 never has
a skip (its input is the image), nor does layer k (the scores). There are no
projections: layers of unequal widths simply have none.

dropout: inverted dropout on every hidden layer's output, in training mode
only: M_l: (n, m_l) holds 1 / (1 - p) with probability 1 - p and 0 otherwise,
a new mask for every pass, drawn from the numpy Generator passed to forward
(layer 1's mask first). Thanks to the 1 / (1 - p), E[H_l] is unchanged, so at
test time nothing is dropped and nothing is scaled. The input image and the
scores are never dropped.

A network is plain data: its sizes, its options, a dict of parameter arrays,
and the running averages of the batch statistics that batch normalization
uses at test time.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .layers import (
    BN_EPS,
    batchnorm_backward,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    softmax,
)

__all__ = [
    "BN_EPS",
    "NORMS",
    "NORM_LABELS",
    "NORM_PLACES",
    "Network",
    "init_network",
    "forward",
    "activation_forward",
    "forward_backward",
    "loss_and_gradients",
    "cost_and_gradients",
    "evaluate",
    "predict_proba",
    "accuracy",
    "cost",
    "update_running_stats",
    "moving_average",
]

INITS = ("he", "xavier")
NORMS = ("none", "batch", "layer")
"""The normalizations of a hidden layer (Network.norm)."""
NORM_LABELS = {"none": "no BN", "batch": "BN", "layer": "LN"}
"""How titles and tables name each normalization, in the report's words."""
NORM_PLACES = ("before", "after")
"""Where a hidden layer normalizes, relative to its ReLU (Network.norm_place)."""
EVAL_CHUNK = 10_000
"""Rows per forward pass at test time: bounds memory on the full data sets."""


@dataclass
class Network:
    """A k-layer network.

    dims: [d_in, m_1, ..., m_{k-1}, K], so layer l maps dims[l-1] -> dims[l].
    norm: the hidden layers' normalization, one of NORMS (module docstring).
    params: "W1", "b1", "gamma1", "beta1", ..., "Wk", "bk"; W_l: (dims[l-1], dims[l]);
        gamma_l, beta_l: (dims[l],), on hidden layers when norm is not "none".
    running: "mu1", "var1", ...: the exponential moving averages of the batch
        statistics of every batch-normalized layer (norm "batch"), used at test time.
    alpha: the weight of the old average in mu_av = alpha mu_av + (1 - alpha) mu.
    dropout: the probability p of dropping a hidden unit in training (0: no dropout).
    norm_place: "before" or "after" the ReLU, one of NORM_PLACES.
    skips: skip connections, H_l = F_l(H_{l-1}) + H_{l-1}, on every hidden
        layer l >= 2 as wide as the one before (see has_skip).
    """

    dims: list[int]
    norm: str
    params: dict[str, np.ndarray]
    running: dict[str, np.ndarray] = field(default_factory=dict)
    alpha: float = 0.9
    dropout: float = 0.0
    norm_place: str = "before"
    skips: bool = False

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    @property
    def dtype(self):
        return self.params["W1"].dtype

    def has_bias(self, l) -> bool:
        """Whether layer l adds its bias: not when batch normalization follows its linear map and cancels it."""
        return not (self.norm == "batch" and self.norm_place == "before" and l < self.n_layers)

    def has_skip(self, l) -> bool:
        """Whether layer l adds its input to its output: a hidden layer l >= 2 as wide as the one before."""
        return self.skips and 2 <= l < self.n_layers and self.dims[l - 1] == self.dims[l]


def init_network(dims, norm="batch", init="he", seed=0, dtype=np.float32, alpha=0.9,
                 dropout=0.0, norm_place="before", skips=False):
    """A network with random weights, zero biases, gamma = 1 and beta = 0.

    init: "he" (sigma = sqrt(2 / d_in)), "xavier" (sigma = sqrt(1 / d_in)),
    or a number: the same sigma for every layer (the sensitivity experiment).
    The weights are drawn in float64 from `seed` and then cast, so a float32
    and a float64 network with the same seed hold the same numbers.
    norm: one of NORMS; a normalized hidden layer has gamma and beta, and
    with batch normalization the running averages of its statistics.
    dropout, norm_place, skips: the options of the module docstring; they
    change no parameter, only how the layers use them.
    """
    dims = _check_dims(dims)
    check_init(init)
    if not 0 <= alpha < 1:
        raise ConfigError(f"alpha must be in [0, 1), got {alpha}.")
    check_options(dims, norm, dropout, norm_place, skips)
    rng = np.random.default_rng(seed)
    params, running = {}, {}
    k = len(dims) - 1
    for l in range(1, k + 1):
        d_in, d_out = dims[l - 1], dims[l]
        sigma = _sigma(init, d_in)
        params[f"W{l}"] = (sigma * rng.standard_normal((d_in, d_out))).astype(dtype)
        params[f"b{l}"] = np.zeros(d_out, dtype)
        if norm != "none" and l < k:
            params[f"gamma{l}"] = np.ones(d_out, dtype)
            params[f"beta{l}"] = np.zeros(d_out, dtype)
        if norm == "batch" and l < k:
            running[f"mu{l}"] = np.zeros(d_out, dtype)
            running[f"var{l}"] = np.ones(d_out, dtype)
    return Network(dims, norm, params, running, float(alpha), float(dropout), norm_place, bool(skips))


def _check_dims(dims):
    dims = list(dims)
    if len(dims) < 2:
        raise ConfigError(f"dims needs an input and an output size, got {dims}.")
    for d in dims:
        if int(d) != d or d < 1:
            raise ConfigError(f"Every layer width must be a whole number >= 1, got {dims}.")
    return [int(d) for d in dims]


def check_options(dims, norm, dropout, norm_place, skips):
    """Refuse options that cannot work, or that would silently do nothing."""
    if norm not in NORMS:
        raise ConfigError(f"norm (the hidden layers' normalization) must be one of {NORMS}, got {norm!r}.")
    if norm_place not in NORM_PLACES:
        raise ConfigError(f"norm_place (the normalization's place) must be one of {NORM_PLACES}, got {norm_place!r}.")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout (the probability of dropping a hidden unit) must be in [0, 1), got {dropout}.")
    if norm_place == "after" and norm == "none":
        raise ConfigError("norm_place 'after' moves the normalization after the ReLU: it needs a norm other "
                          "than 'none'.")
    if skips and not any(dims[l - 1] == dims[l] for l in range(2, len(dims) - 1)):
        raise ConfigError(
            f"skips connects hidden layers of equal width, but no hidden layer after the first is as wide "
            f"as the one before it in dims={dims}."
        )


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


def forward(net, X, training=True, rng=None):
    """The scores of the last layer, and what the backward pass needs.

    X: (n, d_in) -> S: (n, K), caches: one (linear, normalization, ReLU,
    dropout) quadruple of layer caches per layer (None for a layer's missing
    parts). In training mode batch normalization uses the statistics of the
    batch; otherwise the running averages in net.running. rng, a numpy
    Generator, draws the dropout masks: needed in training mode when
    net.dropout > 0, and not drawn from otherwise.
    """
    if training and net.dropout > 0 and rng is None:
        raise ConfigError(
            f"This network drops hidden units in training (dropout={net.dropout}): pass rng, "
            "a numpy Generator, to draw the dropout masks."
        )
    p, k = net.params, net.n_layers
    caches = []
    H = X
    for l in range(1, k):
        # With batch normalization right after it, the bias is left out: the
        # mean subtraction would cancel it exactly.
        S, linear_cache = linear_forward(H, p[f"W{l}"], p[f"b{l}"] if net.has_bias(l) else None)
        A, norm_cache, relu_cache = activation_forward(net, l, S, training)
        if net.has_skip(l):
            # Before the dropout, so that the dropout acts on the sum (module docstring).
            A = A + H
        # At test time nothing is dropped: p = 0 is the identity.
        H, dropout_cache = dropout_forward(A, net.dropout if training else 0.0, rng)
        caches.append((linear_cache, norm_cache, relu_cache, dropout_cache))
    S, linear_cache = linear_forward(H, p[f"W{k}"], p[f"b{k}"])
    caches.append((linear_cache, None, None, None))
    return S, caches


def activation_forward(net, l, S, training=True, gamma=None, beta=None):
    """F_l: hidden layer l's normalization and ReLU, in the network's order, before its skip and dropout.

    S: (n, ..., u), the scores of layer l's units (u = dims[l]): samples on
    the first axis, units on the last; axes between are carried along (the
    gradient check's batches of perturbed copies). gamma, beta: (u,), the
    normalization's scale and shift, layer l's by default; with a
    normalization that treats each unit alone (norm "none" or "batch") S may
    hold any u of the units, given with their gamma and beta.
    -> F: (n, ..., u), norm_cache (None without normalization), relu_cache
    (the ReLU's input).
    """
    if net.norm_place == "after":
        R, relu_cache = relu_forward(S)
        F, norm_cache = normalize_forward(net, l, R, training, gamma, beta)
    else:
        N, norm_cache = normalize_forward(net, l, S, training, gamma, beta)
        F, relu_cache = relu_forward(N)
    return F, norm_cache, relu_cache


def normalize_forward(net, l, A, training=True, gamma=None, beta=None):
    """Hidden layer l's normalization (net.norm) of A: (n, ..., u) -> out: (n, ..., u), cache.

    norm "none" returns A itself and no cache. gamma, beta: as in activation_forward.
    """
    if net.norm == "none":
        return A, None
    gamma = net.params[f"gamma{l}"] if gamma is None else gamma
    beta = net.params[f"beta{l}"] if beta is None else beta
    if net.norm == "layer":
        return layernorm_forward(A, gamma, beta)
    running = None if training else (net.running[f"mu{l}"], net.running[f"var{l}"])
    return batchnorm_forward(A, gamma, beta, running)


def normalize_backward(net, dout, cache):
    """The backward pass of normalize_forward: dout: (n, u) -> dA: (n, u), dgamma, dbeta: (u,) (None without)."""
    if net.norm == "none":
        return dout, None, None
    if net.norm == "layer":
        return layernorm_backward(dout, cache)
    return batchnorm_backward(dout, cache)


def backward(net, dS, caches):
    """The gradient of the loss for every parameter, from dS, its gradient at the scores.

    dS: (n, K) -> a dict keyed like net.params, each gradient shaped like its
    parameter. The bias of a layer batch-normalized before its ReLU is not
    used, so its gradient is zero.
    """
    k = net.n_layers
    grads = {}
    dH, grads[f"W{k}"], grads[f"b{k}"] = linear_backward(dS, caches[k - 1][0])
    for l in range(k - 1, 0, -1):
        linear_cache, norm_cache, relu_cache, dropout_cache = caches[l - 1]
        dA = dropout_backward(dH, dropout_cache)
        if net.norm_place == "after":
            dR, dgamma, dbeta = normalize_backward(net, dA, norm_cache)
            dS = relu_backward(dR, relu_cache)
        else:
            dN = relu_backward(dA, relu_cache)
            dS, dgamma, dbeta = normalize_backward(net, dN, norm_cache)
        if net.norm != "none":
            grads[f"gamma{l}"], grads[f"beta{l}"] = dgamma, dbeta
        dH_in, grads[f"W{l}"], db = linear_backward(dS, linear_cache)
        grads[f"b{l}"] = np.zeros_like(net.params[f"b{l}"]) if db is None else db
        if net.has_skip(l):
            # H_{l-1} reaches the sum A_l both through the layer and directly.
            dH_in = dH_in + dA
        dH = dH_in
    return grads


def regularization(net, lam):
    """lam * sum of the squared entries of every weight matrix (not b, gamma, beta)."""
    return lam * sum(float(np.sum(W**2)) for name, W in net.params.items() if name.startswith("W"))


def forward_backward(net, X, y, lam, rng=None, smoothing=0.0):
    """One training-mode pass over a mini-batch: the cost and its gradient.

    X: (n, d_in), y: (n,) -> cost, loss, grads (keyed like net.params),
    batch_stats. The cost is the loss plus lam * sum ||W_l||^2, and grads its
    gradient, the L2 term's 2 lam W_l included. The loss is the
    cross-entropy against targets smoothed by `smoothing` (label smoothing
    eps, layers.cross_entropy_forward; 0: the one-hot labels). batch_stats is
    [(mu_1, var_1), ...], the batch statistics of every batch-normalized
    layer (none unless norm is "batch"), for update_running_stats. rng draws
    the dropout masks (see forward).
    """
    S, caches = forward(net, X, training=True, rng=rng)
    loss, grads = loss_and_gradients(net, S, caches, y, lam, smoothing)
    batch_stats = [norm_cache[2:4] for _, norm_cache, _, _ in caches[:-1]] if net.norm == "batch" else []
    return loss + regularization(net, lam), loss, grads, batch_stats


def loss_and_gradients(net, S, caches, y, lam, smoothing=0.0):
    """The loss of a training-mode forward pass, and the gradient of the cost.

    S: (n, K), caches: from forward(net, X, training=True); y: (n,) -> loss
    (a float), grads keyed like net.params, the L2 term's 2 lam W_l included.
    smoothing: the label smoothing eps of the loss (0: none).
    Kept apart from forward_backward for helpers.core.probe, which also reads
    the forward pass's caches.
    """
    loss, loss_cache = cross_entropy_forward(S, y, smoothing)
    grads = backward(net, cross_entropy_backward(1.0, loss_cache), caches)
    for l in range(1, net.n_layers + 1):
        grads[f"W{l}"] += 2 * lam * net.params[f"W{l}"]
    return loss, grads


def cost_and_gradients(net, X, y, lam, rng=None):
    """The cost on (X, y) in training mode and its gradient for every parameter.

    X: (n, d_in), y: (n,) -> cost (a float), grads keyed like net.params.
    rng draws the dropout masks (see forward).
    """
    cost, _, grads, _ = forward_backward(net, X, y, lam, rng)
    return cost, grads


def cost(net, X, y, lam, rng=None):
    """The training-mode cost alone: the loss plus lam * sum ||W_l||^2. X: (n, d_in), y: (n,).

    rng draws the dropout masks (see forward).
    """
    S, _ = forward(net, X, training=True, rng=rng)
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
    """Test-time cost, loss and accuracy on (X, y), in one pass over the data.

    The loss is the plain cross-entropy against the labels, also for a
    network trained with label smoothing: the training curves of runs with
    and without it measure the same thing.
    """
    S = scores(net, X)
    loss, _ = cross_entropy_forward(S, y)
    return {
        "cost": loss + regularization(net, lam),
        "loss": loss,
        "accuracy": float(np.mean(S.argmax(axis=1) == y)),
    }
