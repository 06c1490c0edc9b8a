"""Tests of the network's options (issue 15): inverted dropout, batch normalization
after the ReLU, and skip connections; their layer, their gradients (against
PyTorch autograd and the numerical check), and that with the options off the
network is bit for bit the one it was."""

import dataclasses

import numpy as np
import pytest
import torch

from helpers.core import layers
from helpers.core.gradcheck import check_gradients, numerical_gradients, numerical_gradients_textbook, relative_error
from helpers.core.network import (
    BN_EPS,
    backward,
    cost,
    cost_and_gradients,
    evaluate,
    forward,
    forward_backward,
    init_network,
    predict_proba,
)
from helpers.errors import ConfigError

K = 5
THREE_LAYERS = [12, 8, 8, K]
FOUR_LAYERS = [12, 8, 8, 8, K]
MIXED_WIDTHS = [12, 8, 6, 6, K]  # a skip on layer 3 only

# (norm, options): every option alone, the skips with and without BN, and all three.
OPTIONS = [
    pytest.param("none", dict(dropout=0.3), id="dropout"),
    pytest.param("batch", dict(dropout=0.3), id="dropout-bn"),
    pytest.param("batch", dict(norm_place="after"), id="bn-after-relu"),
    pytest.param("none", dict(skips=True), id="skips"),
    pytest.param("batch", dict(skips=True), id="skips-bn"),
    pytest.param("batch", dict(dropout=0.3, norm_place="after", skips=True), id="all-three"),
]
DIMS = [
    pytest.param(THREE_LAYERS, id="3-layer"),
    pytest.param(FOUR_LAYERS, id="4-layer"),
    pytest.param(MIXED_WIDTHS, id="mixed-widths"),
]


# ----------------------------------------------------------------- helpers


def make_problem(dims, norm, n=20, seed=0, dtype=np.float64, **options):
    """A network with every parameter away from its initial constant, and a batch (X, y)."""
    rng = np.random.default_rng(seed + 100)
    net = init_network(dims, norm=norm, seed=seed, dtype=dtype, **options)
    for name, p in net.params.items():
        if name.startswith("gamma"):
            p[...] = 1 + 0.3 * rng.standard_normal(p.shape)
        elif name.startswith(("beta", "b")):
            p[...] = 0.3 * rng.standard_normal(p.shape)
    X = rng.standard_normal((n, dims[0])).astype(dtype)
    y = rng.integers(0, dims[-1], n)
    return net, X, y


def dropout_masks(net, X, seed):
    """The masks M_l that a training pass with default_rng(seed) uses, from its caches."""
    _, caches = forward(net, X, training=True, rng=np.random.default_rng(seed))
    return [dropout_cache for _, _, _, dropout_cache in caches[:-1]]


def torch_cost_and_gradients(net, X, y, lam, masks):
    """The network with its options, built functionally in PyTorch (float64), and its autograd gradients.

    masks: the dropout mask of every hidden layer (None: no dropout), the ones NumPy drew.
    """
    P = {name: torch.tensor(p, dtype=torch.float64, requires_grad=True) for name, p in net.params.items()}

    def bn(S, l):
        mu, var = S.mean(dim=0), S.var(dim=0, correction=0)
        return P[f"gamma{l}"] * (S - mu) / torch.sqrt(var + BN_EPS) + P[f"beta{l}"]

    H = torch.tensor(X, dtype=torch.float64)
    k = net.n_layers
    for l in range(1, k):
        # The bias is added even where BN cancels it: autograd then gives it a zero gradient.
        S = H @ P[f"W{l}"] + P[f"b{l}"]
        if net.norm_place == "after":
            F = bn(torch.relu(S), l)
        elif net.norm == "batch":
            F = torch.relu(bn(S, l))
        else:
            F = torch.relu(S)
        if net.skips and l >= 2 and net.dims[l - 1] == net.dims[l]:
            F = F + H
        if masks[l - 1] is not None:
            F = F * torch.tensor(masks[l - 1], dtype=torch.float64)
        H = F
    S = H @ P[f"W{k}"] + P[f"b{k}"]
    loss = torch.nn.functional.cross_entropy(S, torch.tensor(y, dtype=torch.int64))
    total = loss + lam * sum((P[f"W{l}"] ** 2).sum() for l in range(1, k + 1))
    total.backward()
    return total.item(), {name: t.grad.numpy() for name, t in P.items()}


def cancelled_biases(net):
    """The biases BN subtracts right back out: true gradient 0, so compared absolutely."""
    return {f"b{l}" for l in range(1, net.n_layers) if not net.has_bias(l)}


# The forward and backward passes as they were before the options, copied
# verbatim (but for the names), to check that the defaults change nothing.


def old_forward(net, X, training=True):
    p, k = net.params, net.n_layers
    caches = []
    H = X
    for l in range(1, k):
        S, linear_cache = layers.linear_forward(H, p[f"W{l}"], None if net.norm == "batch" else p[f"b{l}"])
        bn_cache = None
        if net.norm == "batch":
            running = None if training else (net.running[f"mu{l}"], net.running[f"var{l}"])
            S, bn_cache = layers.batchnorm_forward(S, p[f"gamma{l}"], p[f"beta{l}"], running)
        H, relu_cache = layers.relu_forward(S)
        caches.append((linear_cache, bn_cache, relu_cache))
    S, linear_cache = layers.linear_forward(H, p[f"W{k}"], p[f"b{k}"])
    caches.append((linear_cache, None, None))
    return S, caches


def old_backward(net, dS, caches):
    grads = {}
    for l in range(net.n_layers, 0, -1):
        linear_cache, bn_cache, relu_cache = caches[l - 1]
        if relu_cache is not None:
            dS = layers.relu_backward(dH, relu_cache)  # noqa: F821 (set by the previous layer)
        if bn_cache is not None:
            dS, grads[f"gamma{l}"], grads[f"beta{l}"] = layers.batchnorm_backward(dS, bn_cache)
        dH, grads[f"W{l}"], db = layers.linear_backward(dS, linear_cache)
        grads[f"b{l}"] = np.zeros_like(net.params[f"b{l}"]) if db is None else db
    return grads


# ------------------------------------------------------ 1. the dropout layer


def test_dropout_keeps_each_unit_with_probability_one_minus_p():
    H = np.ones((1000, 1000))
    for p in (0.2, 0.5, 0.8):
        out, M = layers.dropout_forward(H, p, np.random.default_rng(0))
        # 1e6 units: the kept fraction's std is below 5e-4, so 3e-3 is over 6 sigma.
        assert np.mean(out != 0) == pytest.approx(1 - p, abs=3e-3), p
        # Inverted: the mean is kept, so test time needs no scaling.
        assert out.mean() == pytest.approx(1.0, abs=3e-3 / (1 - p)), p


def test_dropout_scales_the_kept_units_by_one_over_one_minus_p_and_zeroes_the_rest():
    rng = np.random.default_rng(1)
    H = rng.standard_normal((50, 40)) + 5  # no zeros, so out == 0 marks the dropped units
    p = 0.3
    out, M = layers.dropout_forward(H, p, np.random.default_rng(2))
    kept = out != 0
    assert 0 < kept.sum() < H.size
    np.testing.assert_array_equal(out[kept], H[kept] * (1 / (1 - p)))
    np.testing.assert_array_equal(M[kept], 1 / (1 - p))
    np.testing.assert_array_equal(M[~kept], 0)


@pytest.mark.parametrize("rng", [None, "generator"])
def test_dropout_with_p_zero_is_the_identity_and_draws_nothing(rng):
    H = np.random.default_rng(3).standard_normal((20, 7))
    generator = np.random.default_rng(4) if rng else None
    out, cache = layers.dropout_forward(H, 0.0, generator)
    assert out is H and cache is None
    dout = np.random.default_rng(5).standard_normal((20, 7))
    assert layers.dropout_backward(dout, cache) is dout
    if generator is not None:
        assert generator.random() == np.random.default_rng(4).random()


def test_dropout_backward_uses_the_forward_mask():
    rng = np.random.default_rng(6)
    H = rng.standard_normal((30, 10)) + 5
    dout = rng.standard_normal((30, 10))
    p = 0.4
    out, cache = layers.dropout_forward(H, p, np.random.default_rng(7))
    dH = layers.dropout_backward(dout, cache)
    kept = out != 0
    np.testing.assert_array_equal(dH[~kept], 0)
    np.testing.assert_array_equal(dH[kept], dout[kept] * (1 / (1 - p)))


def test_dropout_mask_is_determined_by_the_seed():
    H = np.ones((40, 30))
    a = layers.dropout_forward(H, 0.5, np.random.default_rng(8))[1]
    b = layers.dropout_forward(H, 0.5, np.random.default_rng(8))[1]
    c = layers.dropout_forward(H, 0.5, np.random.default_rng(9))[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_keeps_float32():
    H = np.ones((10, 4), np.float32)
    out, M = layers.dropout_forward(H, 0.5, np.random.default_rng(0))
    assert out.dtype == M.dtype == np.float32
    assert layers.dropout_backward(H, M).dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_layer_refuses_a_probability_outside_zero_one(p):
    with pytest.raises(ConfigError, match="dropout"):
        layers.dropout_forward(np.ones((3, 2)), p, np.random.default_rng(0))


# ------------------------------------------- 2. the options in the network


def test_options_default_to_off_and_init_draws_the_same_weights():
    plain = init_network(FOUR_LAYERS, seed=3)
    assert (plain.dropout, plain.norm_place, plain.skips) == (0.0, "before", False)
    other = init_network(FOUR_LAYERS, seed=3, dropout=0.5, norm_place="after", skips=True)
    assert (other.dropout, other.norm_place, other.skips) == (0.5, "after", True)
    assert set(other.params) == set(plain.params) and set(other.running) == set(plain.running)
    for name in plain.params:
        np.testing.assert_array_equal(other.params[name], plain.params[name])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_with_the_options_off_forward_and_backward_are_bit_for_bit_the_old_ones(norm, dtype):
    net, X, y = make_problem(FOUR_LAYERS, norm, n=30, dtype=dtype)
    for name, r in net.running.items():
        r += 0.1  # test time must read them
    for training in (True, False):
        np.testing.assert_array_equal(forward(net, X, training)[0], old_forward(net, X, training)[0])
    old_S, old_caches = old_forward(net, X)
    loss, loss_cache = layers.cross_entropy_forward(old_S, y)
    old_grads = old_backward(net, layers.cross_entropy_backward(1.0, loss_cache), old_caches)
    # An rng passed to a network without dropout is not drawn from.
    rng = np.random.default_rng(0)
    total, new_loss, grads, batch_stats = forward_backward(net, X, y, 0.0, rng)
    assert new_loss == loss
    assert rng.random() == np.random.default_rng(0).random()
    assert list(grads) == list(old_grads)
    for name in grads:
        assert grads[name].dtype == dtype
        np.testing.assert_array_equal(grads[name], old_grads[name], err_msg=name)
    old_stats = [bn_cache[2:4] for _, bn_cache, _ in old_caches if bn_cache is not None]
    assert len(batch_stats) == len(old_stats) == (3 if norm == "batch" else 0)
    for (mu, var), (old_mu, old_var) in zip(batch_stats, old_stats):
        np.testing.assert_array_equal(mu, old_mu)
        np.testing.assert_array_equal(var, old_var)


@pytest.mark.parametrize(
    "kwargs, option",
    [
        pytest.param(dict(dropout=-0.1), "dropout", id="dropout-negative"),
        pytest.param(dict(dropout=1.0), "dropout", id="dropout-1"),
        pytest.param(dict(dropout=2), "dropout", id="dropout-2"),
        pytest.param(dict(dropout=float("nan")), "dropout", id="dropout-nan"),
        pytest.param(dict(norm="none", norm_place="after"), "norm_place", id="bn-after-relu-without-bn"),
        pytest.param(dict(dims=[12, 8, 6, K], skips=True), "skips", id="skips-unequal-widths"),
        pytest.param(dict(dims=[8, 8, K], skips=True), "skips", id="skips-one-hidden-layer"),
        pytest.param(dict(dims=[12, 8, K, K], skips=True), "skips", id="skips-only-to-the-scores"),
    ],
)
def test_bad_options_are_refused_naming_the_option(kwargs, option):
    kwargs = {"dims": THREE_LAYERS, **kwargs}
    with pytest.raises(ConfigError, match=option):
        init_network(**kwargs)


def test_skips_sit_on_hidden_layers_after_the_first_as_wide_as_the_one_before():
    net = init_network([8, 8, 8, 6, 6, 6, 6], skips=True)
    assert [l for l in range(1, net.n_layers + 1) if net.has_skip(l)] == [2, 4, 5]
    # Not on layer 1 (from the image), nor on layer k (to the scores), even of equal widths.
    assert not init_network([8, 8, 8, 6, 6, 6, 6], skips=False).has_skip(2)


def test_a_skip_adds_the_layers_input_to_its_output_before_the_dropout():
    net, X, y = make_problem(THREE_LAYERS, "batch", skips=True, dropout=0.5)
    S, caches = forward(net, X, rng=np.random.default_rng(0))
    H1 = caches[1][0][0]  # layer 2's input
    M2 = caches[1][3]
    H2 = caches[2][0][0]  # layer 3's input
    p = net.params
    S2 = H1 @ p["W2"]
    F2 = np.maximum(p["gamma2"] * (S2 - S2.mean(0)) / np.sqrt(S2.var(0) + BN_EPS) + p["beta2"], 0)
    np.testing.assert_allclose(H2, (F2 + H1) * M2, rtol=1e-13, atol=1e-15)


def test_batch_norm_after_relu_uses_the_bias_and_keeps_the_statistics_of_the_relu_output():
    net, X, y = make_problem(THREE_LAYERS, "batch", norm_place="after")
    p = net.params
    _, _, grads, batch_stats = forward_backward(net, X, y, 0.0)
    R1 = np.maximum(X @ p["W1"] + p["b1"], 0)
    np.testing.assert_allclose(batch_stats[0][0], R1.mean(0), rtol=1e-13)
    np.testing.assert_allclose(batch_stats[0][1], R1.var(0), rtol=1e-13)
    for l in (1, 2):
        assert np.max(np.abs(grads[f"b{l}"])) > 1e-3, f"b{l}"


@pytest.mark.parametrize("options", [dict(norm_place="after"), dict(norm_place="after", skips=True), dict(skips=True)])
def test_test_time_uses_the_running_averages_where_training_uses_the_batch_statistics(options):
    net, X, y = make_problem(FOUR_LAYERS, "batch", **options)
    _, train_loss, _, stats = forward_backward(net, X, y, 0.0)
    assert evaluate(net, X, y, 0.0)["loss"] != pytest.approx(train_loss, rel=1e-3)
    for l, (mu, var) in enumerate(stats, start=1):
        net.running[f"mu{l}"], net.running[f"var{l}"] = mu.copy(), var.copy()
    assert evaluate(net, X, y, 0.0)["loss"] == pytest.approx(train_loss, rel=1e-12)


def test_dropout_needs_an_rng_in_training_only():
    net, X, y = make_problem(THREE_LAYERS, "batch", dropout=0.5)
    for run in (lambda: forward(net, X), lambda: forward_backward(net, X, y, 0.0),
                lambda: cost_and_gradients(net, X, y, 0.0), lambda: cost(net, X, y, 0.0)):
        with pytest.raises(ConfigError, match="rng"):
            run()
    # Test time drops nothing: the network's predictions are those without dropout.
    plain = dataclasses.replace(net, dropout=0.0)
    np.testing.assert_array_equal(predict_proba(net, X), predict_proba(plain, X))
    assert evaluate(net, X, y, 0.01) == evaluate(plain, X, y, 0.01)


def test_dropout_draws_one_mask_per_hidden_layer_and_none_for_the_image_or_the_scores():
    net, X, y = make_problem(MIXED_WIDTHS, "none", n=25, dropout=0.5)
    rng = np.random.default_rng(11)
    S, caches = forward(net, X, rng=rng)
    # Exactly the draws of one (n, m_l) mask per hidden layer, layer 1 first.
    replay = np.random.default_rng(11)
    for l in range(1, net.n_layers):
        np.testing.assert_array_equal(caches[l - 1][3], (replay.random((25, net.dims[l])) >= 0.5) / 0.5)
    assert rng.random() == replay.random()
    assert caches[0][0][0] is X  # the image goes in whole
    H_last, W, _ = caches[-1][0]
    np.testing.assert_array_equal(S, H_last @ W + net.params[f"b{net.n_layers}"])  # the scores are not dropped
    assert caches[-1][3] is None


def test_dropout_masks_are_new_each_pass_and_the_same_for_the_same_seed():
    net, X, y = make_problem(THREE_LAYERS, "batch", dropout=0.5)
    rng = np.random.default_rng(0)
    first, second = cost(net, X, y, 0.0, rng), cost(net, X, y, 0.0, rng)
    assert first != second
    assert cost(net, X, y, 0.0, np.random.default_rng(0)) == first
    assert cost(net, X, y, 0.0, np.random.default_rng(0)) != cost(dataclasses.replace(net, dropout=0.0), X, y, 0.0)


@pytest.mark.parametrize("norm, options", OPTIONS)
def test_float32_network_with_options_stays_float32_and_agrees_with_float64(norm, options):
    net64, X64, y = make_problem(FOUR_LAYERS, norm, **options)
    net32, X32, _ = make_problem(FOUR_LAYERS, norm, dtype=np.float32, **options)
    cost64, grads64 = cost_and_gradients(net64, X64, y, 0.005, np.random.default_rng(0))
    cost32, grads32 = cost_and_gradients(net32, X32, y, 0.005, np.random.default_rng(0))
    assert cost32 == pytest.approx(cost64, rel=1e-4)
    for name, g in grads32.items():
        assert g.dtype == np.float32, name
        if name not in cancelled_biases(net64):
            assert relative_error(g, grads64[name]) <= 1e-4, name


# ------------------------------------------------- 3. against PyTorch autograd


@pytest.mark.parametrize("lam", [0.0, 0.005])
@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("norm, options", OPTIONS)
def test_cost_and_gradients_with_options_match_torch_autograd(norm, options, dims, lam):
    net, X, y = make_problem(dims, norm, n=30, **options)
    masks = dropout_masks(net, X, seed=5)
    assert any(M is not None for M in masks) == ("dropout" in options)

    cost_, grads = cost_and_gradients(net, X, y, lam, np.random.default_rng(5))
    t_cost, t_grads = torch_cost_and_gradients(net, X, y, lam, masks)

    assert cost_ == pytest.approx(t_cost, rel=1e-12)
    assert set(grads) == set(net.params)
    for name, g in grads.items():
        assert g.shape == net.params[name].shape and g.dtype == np.float64, name
        if name in cancelled_biases(net):
            assert np.max(np.abs(g - t_grads[name])) < 1e-10, name
        else:
            assert relative_error(g, t_grads[name]) <= 1e-10, name


# ------------------------------------------------ 4. the numerical gradient check


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("norm, options", OPTIONS)
def test_analytic_gradients_with_options_pass_the_check(norm, options, dims):
    net, X, y = make_problem(dims, norm, **options)
    report = check_gradients(net, X, y, lam=0.005, dropout_seed=3)
    assert set(report["errors"]) == set(net.params)
    assert report["max_relative_error"] < 1e-7, report["errors"]


@pytest.mark.parametrize("norm, options", OPTIONS)
def test_the_textbook_check_with_options_passes_and_agrees_with_the_fast_one(norm, options):
    net, X, y = make_problem(THREE_LAYERS, norm, n=10, **options)
    report = check_gradients(net, X, y, lam=0.005, method="textbook", dropout_seed=4)
    assert report["max_relative_error"] < 1e-7, report["errors"]
    fast = numerical_gradients(net, X, y, 0.005, h=1e-5, dropout_seed=4)
    slow = numerical_gradients_textbook(net, X, y, 0.005, h=1e-5, dropout_seed=4)
    for name in fast:
        np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=1e-8, err_msg=name)


def test_the_check_fails_when_the_numerical_gradients_see_another_mask():
    net, X, y = make_problem(FOUR_LAYERS, "batch", dropout=0.3, norm_place="after", skips=True)
    _, analytic = cost_and_gradients(net, X, y, 0.0, np.random.default_rng(0))
    numerical = numerical_gradients(net, X, y, 0.0, dropout_seed=1)
    assert max(relative_error(analytic[name], numerical[name]) for name in analytic) > 1e-2


def test_the_check_catches_a_backward_pass_that_forgets_the_skip():
    """The numerical gradients see the skip's direct path: a backward pass run
    as if there were no skips (on the caches of a forward pass with them) fails."""
    net, X, y = make_problem(FOUR_LAYERS, "none", skips=True)
    S, caches = forward(net, X)
    dS = layers.cross_entropy_backward(1.0, layers.cross_entropy_forward(S, y)[1])
    numerical = numerical_gradients(net, X, y, 0.0)
    right = backward(net, dS, caches)
    wrong = backward(dataclasses.replace(net, skips=False), dS, caches)
    assert relative_error(right["W1"], numerical["W1"]) < 1e-7
    assert relative_error(wrong["W1"], numerical["W1"]) > 1e-2
