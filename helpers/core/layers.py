"""The layers of the network, written as the assignment writes them.

Every layer is a pair of functions with one contract:

    out, cache = layer_forward(inputs..., params...)
    d_inputs..., d_params... = layer_backward(dout, cache)

where dout is the gradient of the cost with respect to `out`, and the
backward needs nothing but dout and the cache its forward made.

Samples are rows: a mini-batch of n samples with d features is an (n, d)
array. This is the plain version of the math, written to be read; the same
math rearranged for speed lives in helpers/core/fast.py, and the tests check
that the two agree.
"""

import numpy as np

from ..errors import ConfigError

BN_EPS = 1e-12
"""Added to the batch variance before the square root, so that a feature that
is constant over the batch does not divide by zero. Far below PyTorch's 1e-5:
with sigma = 1e-4 initialization (the sensitivity experiment) the variance of
a hidden layer's scores is about 1e-7, and a larger epsilon would swamp it and
undo the normalization the experiment is about."""


# --------------------------------------------------------------------- linear


def linear_forward(H, W, b=None):
    """S = H W + b.

    H: (n, d_in), W: (d_in, d_out), b: (d_out,) or None for a layer without
    a bias -> S: (n, d_out).
    """
    S = H @ W
    if b is not None:
        S = S + b
    return S, (H, W, b is not None)


def linear_backward(dS, cache):
    """dS: (n, d_out) -> dH: (n, d_in), dW: (d_in, d_out), db: (d_out,) or None."""
    H, W, has_bias = cache
    dH = dS @ W.T
    dW = H.T @ dS
    db = dS.sum(axis=0) if has_bias else None
    return dH, dW, db


# ---------------------------------------------------------- batch normalization


def batchnorm_forward(S, gamma, beta, running=None):
    """Normalize every feature, then scale it by gamma and shift it by beta.

    In training (running=None) the statistics are the batch's own: its mean
    and its biased variance (divided by n, not n - 1). At test time running
    is (mu_av, var_av), the averages kept during training.

    S: (n, d), gamma, beta: (d,) -> S_tilde: (n, d).
    The cache holds the mean and variance used, which training also needs
    for the running averages (see batch_statistics).
    """
    if running is None:
        mu = S.mean(axis=0)  # (d,)
        D = S - mu  # (n, d)
        var = (D**2).mean(axis=0)  # (d,)
    else:
        mu, var = running
        D = S - mu
    S_hat = D / np.sqrt(var + BN_EPS)  # (n, d)
    S_tilde = gamma * S_hat + beta  # (n, d)
    return S_tilde, (S, S_hat, mu, var, gamma)


def batchnorm_backward(dS_tilde, cache):
    """Batch normalization's backward pass (training mode), through its computation graph.

    The forward pass is a chain of small steps,
        mu = mean(S),  var = mean((S - mu)^2),  S_hat = (S - mu) / sqrt(var + eps),
        S_tilde = gamma * S_hat + beta,
    and S reaches S_hat three ways: directly, through mu and through var.
    This walks the chain back one step at a time, and adds the three paths.

    dS_tilde: (n, d) -> dS: (n, d), dgamma: (d,), dbeta: (d,). Only a
    mini-batch's (n, d): the forward's leading axes serve the batched
    gradient check, which needs no backward.
    """
    S, S_hat, mu, var, gamma = cache
    n = S.shape[0]
    dgamma = (dS_tilde * S_hat).sum(axis=0)  # (d,)
    dbeta = dS_tilde.sum(axis=0)  # (d,)
    dS_hat = dS_tilde * gamma  # (n, d)

    D = S - mu  # (n, d)
    inv_std = 1 / np.sqrt(var + BN_EPS)  # (d,)
    # S_hat = D * (var + eps)^(-1/2): the variance's share.
    dvar = (dS_hat * D).sum(axis=0) * -0.5 * inv_std**3  # (d,)
    # The mean's share: directly through D, and through var = mean(D^2).
    dmu = -(dS_hat * inv_std).sum(axis=0) + dvar * (-2 / n) * D.sum(axis=0)  # (d,)
    # Each S[i] reaches D[i] directly, var through D[i]^2 / n, and mu as 1 / n.
    dS = dS_hat * inv_std + dvar * (2 / n) * D + dmu / n  # (n, d)
    return dS, dgamma, dbeta


def batchnorm_backward_folded(dS_tilde, cache):
    """The same gradients as batchnorm_backward, with the three paths folded into one formula.

    The assignment's compact form: with G = dS_tilde * gamma, G1 = G (var + eps)^(-1/2),
    G2 = G (var + eps)^(-3/2), D = S - mu and c = sum over the batch of G2 * D,
        dS = G1 - mean(G1) - D * c / n.

    dS_tilde: (n, d) -> dS: (n, d), dgamma: (d,), dbeta: (d,). Only a
    mini-batch's (n, d): the forward's leading axes serve the batched
    gradient check, which needs no backward.
    """
    S, S_hat, mu, var, gamma = cache
    n = S.shape[0]
    dgamma = (dS_tilde * S_hat).sum(axis=0)  # (d,)
    dbeta = dS_tilde.sum(axis=0)  # (d,)
    G = dS_tilde * gamma  # (n, d)
    G1 = G * (var + BN_EPS) ** -0.5  # (n, d)
    G2 = G * (var + BN_EPS) ** -1.5  # (n, d)
    D = S - mu  # (n, d)
    c = (G2 * D).sum(axis=0)  # (d,)
    dS = G1 - G1.mean(axis=0) - D * c / n  # (n, d)
    return dS, dgamma, dbeta


# ---------------------------------------------------------- layer normalization


def layernorm_forward(S, gamma, beta):
    """Normalize every sample over its features, then scale by gamma and shift by beta (Ba et al., 2016).

    Batch normalization's statistics turned by a right angle: each row's
    mean and biased variance over its d features. They are the sample's own,
    so the layer is the same in training and at test time, needs no running
    averages, and works on a batch of one. The epsilon is BN_EPS, for the
    same reason.

    S: (..., d), samples on the leading axes (any number of them), gamma,
    beta: (d,) -> S_tilde: (..., d), cache (S, S_hat, mu, var, gamma) with
    mu, var: (..., 1).
    """
    mu = S.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((S - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    S_hat = (S - mu) / np.sqrt(var + BN_EPS)  # (..., d)
    S_tilde = gamma * S_hat + beta  # (..., d)
    return S_tilde, (S, S_hat, mu, var, gamma)


def layernorm_backward(dS_tilde, cache):
    """Layer normalization's backward pass, through the same graph as batchnorm_backward.

    The chain mu = mean(S), var = mean((S - mu)^2), S_hat = (S - mu) /
    sqrt(var + eps), S_tilde = gamma * S_hat + beta is batch normalization's
    with the means taken over each row's d features instead of over the n
    samples: S reaches S_hat directly, through its row's mu and through its
    row's var. gamma and beta are per feature, so their gradients still sum
    over the samples.

    dS_tilde: (n, d) -> dS: (n, d), dgamma: (d,), dbeta: (d,). Only a
    mini-batch's (n, d): the forward's leading axes serve the batched
    gradient check, which needs no backward.
    """
    S, S_hat, mu, var, gamma = cache
    d = S.shape[-1]
    dgamma = (dS_tilde * S_hat).sum(axis=0)  # (d,)
    dbeta = dS_tilde.sum(axis=0)  # (d,)
    dS_hat = dS_tilde * gamma  # (n, d)

    D = S - mu  # (n, d)
    inv_std = 1 / np.sqrt(var + BN_EPS)  # (n, 1)
    # S_hat = D * (var + eps)^(-1/2): the variance's share.
    dvar = (dS_hat * D).sum(axis=-1, keepdims=True) * -0.5 * inv_std**3  # (n, 1)
    # The mean's share: directly through D, and through var = mean(D^2).
    dmu = -(dS_hat * inv_std).sum(axis=-1, keepdims=True) + dvar * (-2 / d) * D.sum(axis=-1, keepdims=True)  # (n, 1)
    # Each S[i, j] reaches D[i, j] directly, var_i through D[i, j]^2 / d, and mu_i as 1 / d.
    dS = dS_hat * inv_std + dvar * (2 / d) * D + dmu / d  # (n, d)
    return dS, dgamma, dbeta


# ----------------------------------------------------------------------- ReLU


def relu_forward(S):
    """H = max(S, 0), elementwise. S: (n, d) -> H: (n, d); the cache is S."""
    return np.maximum(S, 0), S


def relu_backward(dH, cache):
    """The gradient passes where the unit was active. dH: (n, d) -> dS: (n, d)."""
    S = cache
    return dH * (S > 0)


# -------------------------------------------------------- inverted dropout


def dropout_forward(H, p, rng):
    """Inverted dropout: drop each unit with probability p, scale the kept ones by 1 / (1 - p).

    out = H * M, where M: (n, d) holds 1 / (1 - p) for a kept unit (drawn
    with probability 1 - p from rng, a numpy Generator) and 0 for a dropped
    one. The scaling keeps E[out] = H, so at test time the layer is simply
    left out. p = 0 is the identity: out is H itself, and rng is not drawn
    from (it may be None).

    H: (n, d) -> out: (n, d); the cache is M, in H's dtype (None when p = 0).
    """
    if not 0 <= p < 1:
        raise ConfigError(f"dropout p (the probability of dropping a unit) must be in [0, 1), got {p}.")
    if p == 0:
        return H, None
    M = dropout_mask(H.shape, p, rng, H.dtype)
    return H * M, M


def dropout_mask(shape, p, rng, dtype):
    """The mask M of inverted dropout: 1 / (1 - p) for a kept unit, each kept with probability 1 - p, else 0.

    shape: (n, d); the draws are rng.random(shape), so one generator state always gives the same mask.
    """
    return ((rng.random(shape) >= p) / (1 - p)).astype(dtype)


def dropout_backward(dout, cache):
    """The gradient passes through the kept units, scaled as they were. dout: (n, d) -> dH: (n, d)."""
    M = cache
    return dout if M is None else dout * M


# ------------------------------------------------------ softmax cross-entropy


def log_softmax(S):
    """log softmax over the last axis. S: (..., K) -> (..., K).

    Shifted by each row's maximum first, so that exp cannot overflow, and
    kept in logs, so that a confident wrong prediction costs a large finite
    loss rather than log(0).
    """
    shifted = S - S.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(S):
    """Class probabilities, each row summing to one. S: (..., K) -> P: (..., K)."""
    return np.exp(log_softmax(S))


def cross_entropy_forward(S, y, smoothing=0.0):
    """Mean cross-entropy of the softmax of the scores against integer labels.

    The target of a sample of class y is Y, the one-hot encoding of y, or
    with label smoothing eps (Szegedy et al., 2016)
        T = (1 - eps) Y + eps / K,
    which keeps a share eps of the probability for the other classes, so that
    the loss no longer rewards driving the correct score ever higher: its
    minimum is at P = T, at finite scores.
        loss = -(1/n) sum_i sum_k T_ik log P_ik
    (PyTorch's cross_entropy(S, y, label_smoothing=eps)). With eps = 0 the
    loss is -mean_i log P_i,y_i, computed as such (no products with zeros),
    so that runs without smoothing keep their numbers bit for bit.

    S: (n, K), y: (n,) ints in 0..K-1, smoothing: eps in [0, 1)
    -> loss (a float), cache (P, T).
    """
    check_smoothing(smoothing)
    n, K = S.shape
    log_P = log_softmax(S)  # (n, K)
    T = smoothed_targets(y, K, smoothing, S.dtype)  # (n, K)
    loss = -log_P[np.arange(n), y].mean()
    if smoothing:
        # The row sums of T log P, in the two parts of T: eps / K times every log P, 1 - eps times log P_y.
        loss = (1 - smoothing) * loss - smoothing * log_P.mean(axis=1).mean()
    return float(loss), (np.exp(log_P), T)


def cross_entropy_backward(dloss, cache):
    """dloss: the gradient of the cost at the loss (1 when the loss is the cost).

    -> dS = dloss * (P - T) / n: (n, K), where T is the (smoothed) target of
    cross_entropy_forward; without smoothing T = Y, the one-hot encoding of y.
    """
    P, T = cache
    n = P.shape[0]
    return dloss * (P - T) / n


def smoothed_targets(y, K, smoothing, dtype):
    """(1 - smoothing) one_hot(y) + smoothing / K. y: (n,) ints in 0..K-1 -> T: (n, K), each row summing to 1."""
    return (1 - smoothing) * np.eye(K, dtype=dtype)[y] + smoothing / K


def check_smoothing(smoothing):
    """Refuse a label smoothing outside [0, 1): at 1 the target is uniform and the labels are ignored."""
    if not (isinstance(smoothing, (int, float, np.integer, np.floating)) and 0 <= smoothing < 1):
        raise ConfigError(
            f"Label smoothing must be a number in [0, 1), got {smoothing!r}; 0 is none, 0.1 is usual "
            "(Szegedy et al., 2016)."
        )
