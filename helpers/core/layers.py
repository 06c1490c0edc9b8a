"""The layers of the network as forward/backward pairs.

Every `*_forward` returns its output and the cache that the matching
`*_backward` needs; every `*_backward` takes the gradient of the cost with
respect to the forward's output and that cache, and returns the gradients with
respect to the forward's inputs and parameters.

Samples are rows: a mini-batch of n samples with d features is an (n, d) array.

Matrix products are written np.dot(A, B) rather than A @ B: the same BLAS
call with less NumPy machinery around it. At mini-batch sizes that machinery
is a good part of the cost of a product, more so when the machine is busy
(benchmarks/speed.py).
"""

from functools import lru_cache

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
    S = np.dot(H, W)
    if b is not None:
        S += b
    return S, H


def linear_backward(dS, H, W, dW=None, db=None, bias=True):
    """Gradients of S = H W + b with respect to W and b (and H when asked).

    dS: (n, d_out), H: (n, d_in), W: (d_in, d_out) -> dW: (d_in, d_out), db: (d_out,).
    W is None for the first layer: nobody needs the gradient of the images, and
    it would cost as much as the whole rest of the backward pass.
    bias=False for a layer whose forward pass leaves b out: db is then None.
    dW, db: arrays to write the gradients into (the training loop passes views
    of one flat gradient vector), or None for new ones.
    Returns dH: (n, d_in) or None, dW, db.
    """
    dW = np.dot(H.T, dS, out=dW)
    db = batch_sum(dS, out=db) if bias else None
    dH = None if W is None else np.dot(dS, W.T)
    return dH, dW, db


def batch_sum(A, out=None):
    """The sum over the batch (the rows). A: (n, d) -> (d,).

    A product with a vector of ones is one BLAS call: at mini-batch sizes it
    takes a third of the time of A.sum(axis=0), whose cost is mostly overhead.
    """
    return np.dot(_constant(A.shape[0], 1, A.dtype), A, out=out)


def batch_mean(A):
    """The mean over the batch (the rows), as one product like batch_sum. A: (n, d) -> (d,)."""
    n = A.shape[0]
    return np.dot(_constant(n, 1 / n, A.dtype), A)


@lru_cache(maxsize=32)
def _constant(n, value, dtype):
    """A read-only vector of n copies of value."""
    vector = np.full(n, value, dtype)
    vector.flags.writeable = False
    return vector


def batchnorm_forward(S, gamma, beta, mu=None, var=None):
    """Normalize every feature, then scale and shift it.

    S_hat = (S - mu) / sqrt(var + BN_EPS);  S_tilde = gamma * S_hat + beta.
    In training, mu and var are None and the batch mean and biased batch
    variance are used; at test time the caller passes the running averages.

    S: (n, d), gamma, beta, mu, var: (d,) -> S_tilde: (n, d).
    The cache is (S_hat, gamma, inv_std); also returns the mu and var used.
    """
    if mu is None:
        mu = batch_mean(S)
        S_hat = S - mu
        var = batch_mean(S_hat * S_hat)
    else:
        S_hat = S - mu
    inv_std = (var + BN_EPS) ** -0.5
    S_hat *= inv_std
    S_tilde = S_hat * gamma
    S_tilde += beta
    return S_tilde, (S_hat, gamma, inv_std), mu, var


def batchnorm_backward(dS_tilde, cache, dgamma=None, dbeta=None):
    """Gradients of batch normalization in training mode (batch statistics).

    dS_tilde: (n, d) -> dS: (n, d), dgamma: (d,), dbeta: (d,).
    dgamma, dbeta: arrays to write those gradients into, or None for new ones.
    The formula is the assignment's, folded: with g = dS_tilde * gamma,
    dS = inv_std * (g - mean(g) - S_hat * mean(g * S_hat)), all means over the batch.
    """
    S_hat, gamma, inv_std = cache
    n = dS_tilde.shape[0]
    dgamma = batch_sum(dS_tilde * S_hat, out=dgamma)
    dbeta = batch_sum(dS_tilde, out=dbeta)
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
    n, K = S.shape
    rows = np.arange(n)
    # Each row is shifted by its maximum, so that exp cannot overflow. Picking
    # it with argmax takes a third of the time of S.max(axis=1) on short rows.
    shifted = S - S[rows, S.argmax(axis=1)][:, None]
    P = np.exp(shifted)
    Z = np.dot(P, _constant(K, 1, P.dtype))
    P /= Z[:, None]
    loss = float(np.add.reduce(np.log(Z) - shifted[rows, y])) / n
    return loss, (P, y)


def cross_entropy_backward(cache, scale=1.0):
    """Gradient of the mean cross-entropy with respect to the scores, times scale.

    Returns dS = scale * (P - Y) / n: (n, K), where Y is the one-hot encoding of y.
    Every gradient of the backward pass is linear in dS: the training loop
    passes scale = eta, so that the gradients come out as the step itself.
    """
    P, y = cache
    n = P.shape[0]
    dS = P.copy()
    dS[np.arange(n), y] -= 1
    dS *= scale / n
    return dS
