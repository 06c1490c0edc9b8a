"""The layers of the network as forward/backward pairs.

Every `*_forward` returns its output and the cache that the matching
`*_backward` needs; every `*_backward` takes the gradient of the cost with
respect to the forward's output and that cache, and returns the gradients with
respect to the forward's inputs and parameters.

Samples are rows: a mini-batch of n samples with d features is an (n, d) array.
"""

import numpy as np

BN_EPS = 1e-12
"""Added to the batch variance before the square root, so that a feature that
is constant over the batch does not divide by zero. Far below PyTorch's 1e-5:
with sigma = 1e-4 initialization (the sensitivity experiment) the variance of
a hidden layer's scores is about 1e-7, and a larger epsilon would swamp it and
undo the normalization the experiment is about."""


def linear_forward(H, W, b=None):
    """S = H W + b; the cache is H.

    H: (n, d_in), W: (d_in, d_out), b: (d_out,) or None -> S: (n, d_out).
    """
    S = H @ W
    if b is not None:
        S += b
    return S, H


def linear_backward(dS, H, W):
    """Gradients of S = H W + b with respect to W and b (and H when asked).

    dS: (n, d_out), H: (n, d_in), W: (d_in, d_out) -> dW: (d_in, d_out), db: (d_out,).
    W is None for the first layer: nobody needs the gradient of the images, and
    it would cost as much as the whole rest of the backward pass.
    Returns dH: (n, d_in) or None, dW, db.
    """
    dW = H.T @ dS
    db = dS.sum(axis=0)
    dH = None if W is None else dS @ W.T
    return dH, dW, db


def batchnorm_forward(S, gamma, beta, mu=None, var=None):
    """Normalize every feature, then scale and shift it.

    S_hat = (S - mu) / sqrt(var + BN_EPS);  S_tilde = gamma * S_hat + beta.
    In training, mu and var are None and the batch mean and biased batch
    variance are used; at test time the caller passes the running averages.

    S: (n, d), gamma, beta, mu, var: (d,) -> S_tilde: (n, d).
    The cache is (S_hat, gamma, inv_std); also returns the mu and var used.
    """
    n = S.shape[0]
    if mu is None:
        mu = S.sum(axis=0) / n
        S_hat = S - mu
        var = np.einsum("ij,ij->j", S_hat, S_hat) / n
    else:
        S_hat = S - mu
    inv_std = 1 / np.sqrt(var + BN_EPS)
    S_hat *= inv_std
    S_tilde = S_hat * gamma
    S_tilde += beta
    return S_tilde, (S_hat, gamma, inv_std), mu, var


def batchnorm_backward(dS_tilde, cache):
    """Gradients of batch normalization in training mode (batch statistics).

    dS_tilde: (n, d) -> dS: (n, d), dgamma: (d,), dbeta: (d,).
    The formula is the assignment's, folded: with g = dS_tilde * gamma,
    dS = inv_std * (g - mean(g) - S_hat * mean(g * S_hat)), all means over the batch.
    """
    S_hat, gamma, inv_std = cache
    n = dS_tilde.shape[0]
    dgamma = np.einsum("ij,ij->j", dS_tilde, S_hat)
    dbeta = dS_tilde.sum(axis=0)
    # mean(g) and mean(g * S_hat) are gamma * dbeta / n and gamma * dgamma / n.
    dS = dS_tilde - dbeta / n
    dS -= S_hat * (dgamma / n)
    dS *= gamma * inv_std
    return dS, dgamma, dbeta


def relu_forward(S):
    """H = max(S, 0), elementwise. S: (n, d) -> H: (n, d); the cache is H."""
    H = np.maximum(S, 0)
    return H, H


def relu_backward(dH, H):
    """dS = dH where the unit was active, else 0. dH, H: (n, d) -> dS: (n, d)."""
    return dH * (H > 0)


def softmax(S):
    """Row-wise softmax, shifted by the row maximum so that exp cannot overflow.

    S: (n, K) -> P: (n, K), rows summing to one.
    """
    P = S - S.max(axis=1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=1, keepdims=True)
    return P


def cross_entropy_forward(S, y):
    """Mean cross-entropy of the softmax of the scores S against integer labels.

    S: (n, K), y: (n,) ints in 0..K-1 -> loss (a float), cache (P, y).
    The loss uses log-sum-exp rather than log(P) so that a confident wrong
    prediction gives a large finite loss instead of log(0).
    """
    shifted = S - S.max(axis=1, keepdims=True)
    P = np.exp(shifted)
    Z = P.sum(axis=1, keepdims=True)
    P /= Z
    loss = float(np.log(Z).mean() - shifted[np.arange(S.shape[0]), y].mean())
    return loss, (P, y)


def cross_entropy_backward(cache):
    """Gradient of the mean cross-entropy with respect to the scores.

    Returns dS = (P - Y) / n: (n, K), where Y is the one-hot encoding of y.
    """
    P, y = cache
    n = P.shape[0]
    dS = P.copy()
    dS[np.arange(n), y] -= 1
    dS /= n
    return dS
