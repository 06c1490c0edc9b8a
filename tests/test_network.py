"""Tests of helpers.core.network: gradients against PyTorch autograd, precision,
initialization, and test-time (running-average) batch normalization."""

import numpy as np
import pytest
import torch

from helpers.core import layers, network
from helpers.core.gradcheck import relative_error
from helpers.errors import ConfigError
from helpers.core.network import (
    BN_EPS,
    accuracy,
    cost_and_gradients,
    evaluate,
    forward_backward,
    init_network,
    predict_proba,
    update_running_stats,
)

K = 10
NINE_LAYERS = [3072, 50, 30, 20, 20, 10, 10, 10, 10, 10]

# (dims, norm, n): the networks whose gradients are checked.
NETWORKS = [
    pytest.param([20, 10], "none", 30, id="1-layer"),
    pytest.param([30, 16, 10], "none", 40, id="2-layer"),
    pytest.param([30, 16, 10], "batch", 40, id="2-layer-bn"),
    pytest.param([3072, 50, 50, 10], "batch", 100, id="3-layer-bn"),
    pytest.param(NINE_LAYERS, "batch", 100, id="9-layer-bn"),
]
LAMBDAS = [0.0, 0.005]


# ----------------------------------------------------------------- helpers


def random_batch(d, n, seed=1, dtype=np.float64):
    """Standard normal inputs X: (n, d) and labels y: (n,) in 0..K-1."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, K, size=n)
    return X, y


def perturb_bn_params(net, seed=2):
    """Move gamma and beta away from 1 and 0, so their gradients matter."""
    rng = np.random.default_rng(seed)
    for name, p in net.params.items():
        if name.startswith("gamma"):
            p[...] = 1 + 0.3 * rng.standard_normal(p.shape)
        elif name.startswith("beta"):
            p[...] = 0.3 * rng.standard_normal(p.shape)


def make_net(dims, norm, dtype=np.float64, seed=0, init="he"):
    net = init_network(dims, norm=norm, init=init, seed=seed, dtype=dtype)
    perturb_bn_params(net)
    return net


def bn_cancelled_biases(net):
    """Names of the biases that batch normalization subtracts right back out.

    Their true gradient is 0, so both implementations return rounding noise
    (~1e-17) and a relative error is meaningless: they are checked absolutely.
    """
    if not net.norm == "batch":
        return set()
    return {f"b{l}" for l in range(1, net.n_layers)}


def torch_cost_and_gradients(net, X, y, lam):
    """The same cost built functionally in PyTorch (float64), and its autograd gradients."""
    P = {name: torch.tensor(p, dtype=torch.float64, requires_grad=True) for name, p in net.params.items()}
    H = torch.tensor(X, dtype=torch.float64)
    k = net.n_layers
    for l in range(1, k + 1):
        S = H @ P[f"W{l}"] + P[f"b{l}"]
        if l == k:
            break
        if net.norm == "batch":
            mu = S.mean(dim=0)
            var = S.var(dim=0, correction=0)
            S = P[f"gamma{l}"] * (S - mu) / torch.sqrt(var + BN_EPS) + P[f"beta{l}"]
        H = torch.relu(S)
    loss = torch.nn.functional.cross_entropy(S, torch.tensor(y, dtype=torch.int64))
    cost = loss + lam * sum((P[f"W{l}"] ** 2).sum() for l in range(1, k + 1))
    cost.backward()
    return cost.item(), {name: t.grad.numpy() for name, t in P.items()}


def numpy_test_time_proba(net, X):
    """Test-time forward pass written out by hand from net.params and net.running."""
    H = X.astype(np.float64)
    k = net.n_layers
    for l in range(1, k + 1):
        S = H @ net.params[f"W{l}"] + net.params[f"b{l}"]
        if l == k:
            break
        if net.norm == "batch":
            mu, var = net.running[f"mu{l}"], net.running[f"var{l}"]
            S = net.params[f"gamma{l}"] * (S - mu) / np.sqrt(var + BN_EPS) + net.params[f"beta{l}"]
        H = np.maximum(S, 0)
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# ---------------------------------------------- 1. gradients against PyTorch


@pytest.mark.parametrize("lam", LAMBDAS)
@pytest.mark.parametrize("dims, norm, n", NETWORKS)
def test_cost_and_gradients_match_torch_autograd(dims, norm, n, lam):
    net = make_net(dims, norm)
    X, y = random_batch(dims[0], n)

    cost, grads = cost_and_gradients(net, X, y, lam)
    t_cost, t_grads = torch_cost_and_gradients(net, X, y, lam)

    assert cost == pytest.approx(t_cost, rel=1e-12)
    assert set(grads) == set(net.params)
    cancelled = bn_cancelled_biases(net)
    for name, g in grads.items():
        assert g.shape == net.params[name].shape, name
        assert g.dtype == np.float64, name
        if name in cancelled:
            assert np.max(np.abs(g - t_grads[name])) < 1e-10, name
        else:
            assert relative_error(g, t_grads[name]) <= 1e-10, name


def test_regularization_term_covers_every_weight_matrix_only():
    net = make_net([30, 16, 10], norm="batch")
    X, y = random_batch(30, 20)
    lam = 0.01
    cost0, grads0 = cost_and_gradients(net, X, y, 0.0)
    cost1, grads1 = cost_and_gradients(net, X, y, lam)

    squared_W = sum(np.sum(net.params[f"W{l}"] ** 2) for l in (1, 2))
    assert cost1 - cost0 == pytest.approx(lam * squared_W, rel=1e-10)
    for name in net.params:
        expected = 2 * lam * net.params[name] if name.startswith("W") else 0
        np.testing.assert_allclose(grads1[name] - grads0[name], expected, atol=1e-12)


def test_forward_backward_returns_cost_loss_and_one_stat_pair_per_bn_layer():
    net = make_net([30, 16, 12, 10], norm="batch")
    X, y = random_batch(30, 25)
    lam = 0.005
    cost, loss, grads, batch_stats = forward_backward(net, X, y, lam)

    assert cost == pytest.approx(cost_and_gradients(net, X, y, lam)[0], rel=1e-14)
    assert cost > loss > 0
    assert len(batch_stats) == 2
    # The first layer's statistics are those of X W1 + b1 over the batch.
    S1 = X @ net.params["W1"] + net.params["b1"]
    np.testing.assert_allclose(batch_stats[0][0], S1.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(batch_stats[0][1], S1.var(axis=0), rtol=1e-12)


@pytest.mark.parametrize("lam", LAMBDAS)
def test_gradients_match_torch_with_tiny_sigma_init(lam):
    """sigma = 1e-4 (the sensitivity experiment): hidden scores have variance
    ~1e-7, so BN divides by a small std and the eps must still be BN_EPS."""
    net = make_net([30, 20, 20, 10], norm="batch", init=1e-4)
    X, y = random_batch(30, 50)
    cost, grads = cost_and_gradients(net, X, y, lam)
    t_cost, t_grads = torch_cost_and_gradients(net, X, y, lam)

    assert cost == pytest.approx(t_cost, rel=1e-12)
    for name in set(grads) - bn_cancelled_biases(net):
        assert relative_error(grads[name], t_grads[name]) <= 1e-10, name


def test_bn_eps_is_the_layers_constant_and_small():
    assert BN_EPS == layers.BN_EPS
    assert 0 < BN_EPS <= 1e-10


# ------------------------------------------------------ 2. float32 precision


@pytest.mark.parametrize("dims, norm, n", NETWORKS)
def test_float32_network_stays_float32_and_agrees_with_float64(dims, norm, n):
    net64 = make_net(dims, norm, dtype=np.float64)
    net32 = make_net(dims, norm, dtype=np.float32)
    X64, y = random_batch(dims[0], n)
    X32 = X64.astype(np.float32)
    lam = 0.005

    cost32, grads32 = cost_and_gradients(net32, X32, y, lam)
    cost64, grads64 = cost_and_gradients(net64, X64, y, lam)

    assert isinstance(cost32, float)
    assert cost32 == pytest.approx(cost64, rel=1e-4)
    cancelled = bn_cancelled_biases(net64)
    for name, g in grads32.items():
        assert g.dtype == np.float32, name
        assert g.shape == net32.params[name].shape, name
        if name in cancelled:
            # The exact gradient is 0; float32 leaves noise at its own rounding level.
            assert np.max(np.abs(g)) < 1e-5, name
        else:
            assert relative_error(g, grads64[name]) <= 1e-4, name


def test_float32_network_keeps_float32_running_stats_and_probabilities():
    net = make_net([30, 16, 10], norm="batch", dtype=np.float32)
    X, y = random_batch(30, 40, dtype=np.float32)
    _, _, _, batch_stats = forward_backward(net, X, y, 0.0)
    update_running_stats(net, batch_stats)

    for name, r in net.running.items():
        assert r.dtype == np.float32, name
    assert predict_proba(net, X).dtype == np.float32


# ----------------------------------------------------------- 3. init


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_init_shapes_dtypes_and_constant_parameters(norm, dtype):
    dims = [30, 16, 12, 10]
    net = init_network(dims, norm=norm, dtype=dtype)
    k = len(dims) - 1

    expected = {f"W{l}" for l in range(1, k + 1)} | {f"b{l}" for l in range(1, k + 1)}
    if norm == "batch":
        expected |= {f"gamma{l}" for l in range(1, k)} | {f"beta{l}" for l in range(1, k)}
    assert set(net.params) == expected
    assert net.n_layers == k
    assert net.dtype == dtype
    for l in range(1, k + 1):
        assert net.params[f"W{l}"].shape == (dims[l - 1], dims[l])
        np.testing.assert_array_equal(net.params[f"b{l}"], np.zeros(dims[l]))
    for name, p in net.params.items():
        assert p.dtype == dtype, name
    if norm == "batch":
        assert set(net.running) == {f"{s}{l}" for s in ("mu", "var") for l in range(1, k)}
        for l in range(1, k):
            np.testing.assert_array_equal(net.params[f"gamma{l}"], np.ones(dims[l]))
            np.testing.assert_array_equal(net.params[f"beta{l}"], np.zeros(dims[l]))
            np.testing.assert_array_equal(net.running[f"mu{l}"], np.zeros(dims[l]))
            np.testing.assert_array_equal(net.running[f"var{l}"], np.ones(dims[l]))
            assert net.running[f"mu{l}"].dtype == dtype
    else:
        assert net.running == {}


@pytest.mark.parametrize(
    "init, sigma_of",
    [
        ("he", lambda d_in: np.sqrt(2 / d_in)),
        ("xavier", lambda d_in: np.sqrt(1 / d_in)),
        (1e-3, lambda d_in: 1e-3),
        (0.1, lambda d_in: 0.1),
    ],
)
def test_init_weight_standard_deviation(init, sigma_of):
    dims = [3072, 50, 400, 10]
    net = init_network(dims, init=init, dtype=np.float64)
    for l in range(1, len(dims)):
        W = net.params[f"W{l}"]
        # Every matrix has >= 4000 entries: the sample std is within ~3% of sigma.
        assert W.std() == pytest.approx(sigma_of(dims[l - 1]), rel=0.05), f"W{l}"
        assert abs(W.mean()) < 0.1 * sigma_of(dims[l - 1]), f"W{l}"


def test_init_same_seed_same_weights_different_seed_different_weights():
    dims = [30, 16, 10]
    a = init_network(dims, seed=3)
    b = init_network(dims, seed=3)
    c = init_network(dims, seed=4)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    for name in ("W1", "W2"):
        assert not np.array_equal(a.params[name], c.params[name])


def test_init_float32_and_float64_hold_the_same_numbers():
    dims = [30, 16, 10]
    n32 = init_network(dims, seed=5, dtype=np.float32)
    n64 = init_network(dims, seed=5, dtype=np.float64)
    for name in n64.params:
        np.testing.assert_array_equal(n32.params[name], n64.params[name].astype(np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"dims": [30, 0, 10]}, id="width-0"),
        pytest.param({"dims": [30, 16, 0]}, id="output-width-0"),
        pytest.param({"dims": [30, -4, 10]}, id="negative-width"),
        pytest.param({"dims": [30, 2.5, 10]}, id="fractional-width"),
        pytest.param({"dims": [30]}, id="dims-length-1"),
        pytest.param({"dims": []}, id="dims-empty"),
        pytest.param({"dims": [30, 10], "init": "gaussian"}, id="unknown-init"),
        pytest.param({"dims": [30, 10], "init": 0.0}, id="sigma-0"),
        pytest.param({"dims": [30, 10], "init": -0.1}, id="sigma-negative"),
        pytest.param({"dims": [30, 10], "init": float("nan")}, id="sigma-nan"),
        pytest.param({"dims": [30, 10], "alpha": 1.0}, id="alpha-1"),
    ],
)
def test_init_rejects_bad_config(kwargs):
    with pytest.raises(ConfigError):
        init_network(**kwargs)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        init_network([30, 0, 10])


# -------------------------------------------------- 4. test-time behaviour


def test_update_running_stats_is_an_exponential_moving_average():
    net = make_net([30, 16, 12, 10], norm="batch")
    X, y = random_batch(30, 50)
    _, _, _, stats = forward_backward(net, X, y, 0.0)

    update_running_stats(net, stats)
    for l, (mu, var) in enumerate(stats, start=1):
        np.testing.assert_allclose(net.running[f"mu{l}"], 0.1 * mu, rtol=1e-14)
        np.testing.assert_allclose(net.running[f"var{l}"], 0.9 + 0.1 * var, rtol=1e-14)

    update_running_stats(net, stats)
    for l, (mu, var) in enumerate(stats, start=1):
        np.testing.assert_allclose(net.running[f"mu{l}"], 0.19 * mu, rtol=1e-14)
        np.testing.assert_allclose(net.running[f"var{l}"], 0.81 + 0.19 * var, rtol=1e-14)


def test_test_time_uses_the_running_averages():
    net = make_net([30, 16, 12, 10], norm="batch")
    X, y = random_batch(30, 50)
    X_test, y_test = random_batch(30, 60, seed=7)
    lam = 0.005
    _, _, _, stats = forward_backward(net, X, y, lam)
    update_running_stats(net, stats)

    expected_P = numpy_test_time_proba(net, X_test)
    P = predict_proba(net, X_test)
    np.testing.assert_allclose(P, expected_P, rtol=1e-12, atol=1e-15)

    rows = np.arange(len(y_test))
    expected_loss = -np.mean(np.log(expected_P[rows, y_test]))
    squared_W = sum(np.sum(net.params[f"W{l}"] ** 2) for l in (1, 2, 3))
    result = evaluate(net, X_test, y_test, lam)
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-12)
    assert result["cost"] == pytest.approx(expected_loss + lam * squared_W, rel=1e-12)
    assert result["accuracy"] == np.mean(expected_P.argmax(axis=1) == y_test)


def test_test_time_differs_from_training_mode_until_running_stats_equal_the_batch():
    net = make_net([30, 16, 12, 10], norm="batch")
    X, y = random_batch(30, 50)
    train_loss = forward_backward(net, X, y, 0.0)[1]
    _, _, _, stats = forward_backward(net, X, y, 0.0)

    update_running_stats(net, stats)  # only 10% of the way to the batch statistics
    assert evaluate(net, X, y, 0.0)["loss"] != pytest.approx(train_loss, rel=1e-3)

    for l, (mu, var) in enumerate(stats, start=1):
        net.running[f"mu{l}"], net.running[f"var{l}"] = mu.copy(), var.copy()
    assert evaluate(net, X, y, 0.0)["loss"] == pytest.approx(train_loss, rel=1e-12)


def test_test_time_without_batch_norm_equals_training_mode():
    net = make_net([30, 16, 10], norm="none")
    X, y = random_batch(30, 50)
    train_loss = forward_backward(net, X, y, 0.0)[1]
    assert evaluate(net, X, y, 0.0)["loss"] == pytest.approx(train_loss, rel=1e-14)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_predict_proba_rows_are_distributions_and_accuracy_matches_argmax(norm):
    net = make_net([30, 16, 10], norm=norm)
    X, y = random_batch(30, 200)
    _, _, _, stats = forward_backward(net, X, y, 0.0)
    update_running_stats(net, stats)

    P = predict_proba(net, X)
    assert P.shape == (200, K)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)

    acc = accuracy(net, X, y)
    assert 0.0 <= acc <= 1.0
    assert acc == np.mean(P.argmax(axis=1) == y)
    assert evaluate(net, X, y, 0.0)["accuracy"] == acc
    # Labels equal to the predictions give accuracy 1.
    assert accuracy(net, X, P.argmax(axis=1)) == 1.0


def test_test_time_is_the_same_in_chunks(monkeypatch):
    net = make_net([30, 16, 10], norm="batch")
    X, y = random_batch(30, 53)
    update_running_stats(net, forward_backward(net, X, y, 0.0)[3])
    whole = predict_proba(net, X)

    monkeypatch.setattr(network, "EVAL_CHUNK", 8)
    np.testing.assert_allclose(predict_proba(net, X), whole, rtol=1e-13, atol=1e-16)
    assert evaluate(net, X, y, 0.0)["loss"] == pytest.approx(
        -np.mean(np.log(whole[np.arange(53), y])), rel=1e-12
    )


def test_predict_proba_survives_huge_scores():
    net = make_net([30, 10], norm="none")
    net.params["W1"] *= 1e4
    X, y = random_batch(30, 20)
    P = predict_proba(net, X)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.isfinite(evaluate(net, X, y, 0.0)["loss"])


# ---------------------------------------------- 5. BN cancels the bias


@pytest.mark.parametrize("dims", [[30, 16, 10], [3072, 50, 50, 10], NINE_LAYERS])
def test_bias_gradient_of_a_batch_normalized_layer_is_zero(dims):
    net = make_net(dims, norm="batch")
    X, y = random_batch(dims[0], 100)
    _, grads = cost_and_gradients(net, X, y, 0.005)
    k = net.n_layers
    for l in range(1, k):
        assert np.max(np.abs(grads[f"b{l}"])) < 1e-10, f"b{l}"
    # The last layer has no batch normalization: its bias does get a gradient.
    assert np.max(np.abs(grads[f"b{k}"])) > 1e-4
