"""The softmax cross-entropy with label smoothing: layers.py's textbook pair and fast.py's fused one.

The textbook pair gives PyTorch's cross_entropy(label_smoothing=eps), value
and gradient, and centered differences; without smoothing it is bit for bit
the plain cross-entropy it was before the setting. The fast pair gives the
textbook's loss, probabilities and gradient to a relative 1e-12 in float64.
"""

import math

import numpy as np
import pytest

from helpers.core import fast, layers
from helpers.errors import ConfigError

SMOOTHINGS = [0.0, 0.05, 0.1, 0.5, 0.9]


def scores(n=7, K=10, seed=0, dtype=np.float64, scale=3.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, K))).astype(dtype), rng.integers(0, K, n)


def assert_same(a, b, rel=1e-12):
    """max |a - b| <= rel * max |b|: a relative difference over the whole array."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.max(np.abs(a - b)) <= rel * np.max(np.abs(b))


def plain_cross_entropy(S, y):
    """The textbook pair as it was before label smoothing, written out: the reference of bit-identity."""
    n, K = S.shape
    log_P = layers.log_softmax(S)
    loss = float(-log_P[np.arange(n), y].mean())
    dS = 0.7 * (np.exp(log_P) - np.eye(K, dtype=S.dtype)[y]) / n
    return loss, dS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, K, scale", [(7, 10, 3.0), (1, 2, 1.0), (100, 10, 30.0), (5, 3, 1e4)])
def test_without_smoothing_the_loss_is_bit_for_bit_the_plain_cross_entropy(dtype, n, K, scale):
    S, y = scores(n, K, dtype=dtype, scale=scale)
    expected_loss, expected_dS = plain_cross_entropy(S, y)
    for loss, cache in (layers.cross_entropy_forward(S, y), layers.cross_entropy_forward(S, y, smoothing=0.0)):
        assert loss == expected_loss
        dS = layers.cross_entropy_backward(0.7, cache)
        assert dS.dtype == dtype
        np.testing.assert_array_equal(dS, expected_dS)


def torch_loss_and_gradient(S, y, smoothing, dloss):
    import torch

    S_t = torch.tensor(S, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(S_t, torch.tensor(y, dtype=torch.int64), label_smoothing=smoothing)
    (dloss * loss).backward()
    return loss.item(), S_t.grad.numpy()


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_the_loss_and_its_gradient_are_torch_cross_entropy_with_label_smoothing(smoothing):
    S, y = scores(n=50, K=10)
    loss, cache = layers.cross_entropy_forward(S, y, smoothing)
    dS = layers.cross_entropy_backward(0.7, cache)
    torch_loss, torch_dS = torch_loss_and_gradient(S, y, smoothing, 0.7)
    assert loss == pytest.approx(torch_loss, rel=1e-12)
    assert_same(dS, torch_dS)


@pytest.mark.parametrize("smoothing", [0.1, 0.5])
def test_the_gradient_is_the_centered_differences_of_the_loss(smoothing):
    S, y = scores(n=4, K=5, seed=3)
    _, cache = layers.cross_entropy_forward(S, y, smoothing)
    dS = layers.cross_entropy_backward(1.0, cache)
    h = 1e-5
    numeric = np.zeros_like(S)
    for index in np.ndindex(S.shape):
        plus, minus = S.copy(), S.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (layers.cross_entropy_forward(plus, y, smoothing)[0]
                          - layers.cross_entropy_forward(minus, y, smoothing)[0]) / (2 * h)
    assert_same(dS, numeric, rel=1e-8)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_smoothing_puts_the_minimum_at_the_smoothed_target_with_finite_scores(smoothing):
    """At scores whose softmax is T the gradient vanishes and the loss is T's entropy; confidence beyond costs."""
    K, y = 10, np.array([0, 3, 9])
    T = layers.smoothed_targets(y, K, smoothing, np.float64)
    np.testing.assert_allclose(T.sum(axis=1), 1, rtol=1e-15)
    assert T[0, 0] == pytest.approx(1 - smoothing + smoothing / K) and T[0, 1] == pytest.approx(smoothing / K)
    S = np.log(T)
    loss, cache = layers.cross_entropy_forward(S, y, smoothing)
    assert np.max(np.abs(layers.cross_entropy_backward(1.0, cache))) < 1e-15
    assert loss == pytest.approx(-np.sum(T[0] * np.log(T[0])), rel=1e-12)
    # Ten more units on the correct scores: the plain loss falls, the smoothed one rises.
    confident = S + 10 * np.eye(K)[y]
    assert layers.cross_entropy_forward(confident, y, smoothing)[0] > loss
    assert layers.cross_entropy_forward(confident, y)[0] < layers.cross_entropy_forward(S, y)[0]


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_the_fast_loss_is_the_textbook_loss(smoothing, scale):
    S, y = scores(n=100, K=10, seed=5, scale=scale)
    loss, cache = layers.cross_entropy_forward(S, y, smoothing)
    fast_loss, P = fast.cross_entropy_forward(S, y, smoothing)
    assert fast_loss == pytest.approx(loss, rel=1e-12)
    assert_same(P, cache[0])
    # The fast backward is scaled by eta (trick 6): the textbook's with dloss = eta.
    assert_same(fast.cross_entropy_backward(P, y, 0.05, smoothing), layers.cross_entropy_backward(0.05, cache))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_fast_loss_keeps_float32(smoothing):
    S, y = scores(n=20, K=10, dtype=np.float32)
    loss, P = fast.cross_entropy_forward(S, y, smoothing)
    dS = fast.cross_entropy_backward(P, y, 0.1, smoothing)
    assert P.dtype == dS.dtype == np.float32
    assert loss == pytest.approx(layers.cross_entropy_forward(S.astype(np.float64), y, smoothing)[0], rel=1e-5)


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5, math.nan, math.inf, "0.1", None])
def test_a_bad_smoothing_is_refused_with_what_to_do(smoothing):
    S, y = scores()
    with pytest.raises(ConfigError, match=r"Label smoothing must be a number in \[0, 1\), got .*0.1 is usual"):
        layers.cross_entropy_forward(S, y, smoothing)
