"""Layer normalization: the layer against PyTorch and centered differences, and in the network (norm="layer")."""

import numpy as np
import pytest
import torch

from helpers.checkpoint import load_network, save_network
from helpers.core import fast, layers
from helpers.core.data import Split
from helpers.core.gradcheck import check_gradients, numerical_gradients_textbook, relative_error
from helpers.core.network import BN_EPS, cost_and_gradients, forward, forward_backward, init_network
from helpers.core.probe import layer_stats
from helpers.core.config import TrainConfig, check_config
from helpers.core.training import make_step, train
from helpers.errors import ConfigError
from helpers.report.bn_layer import numerical_gradients

K = 5


def random_layer(n=6, d=7, seed=0):
    """Inputs S: (n, d) off-centre and of uneven scales, gamma, beta: (d,), an upstream gradient: (n, d)."""
    rng = np.random.default_rng(seed)
    S = 3 + rng.standard_normal((n, d)) * rng.uniform(0.5, 4, d)
    gamma, beta = 1 + 0.3 * rng.standard_normal(d), 0.3 * rng.standard_normal(d)
    return S, gamma, beta, rng.standard_normal((n, d))


def problem(dims, norm_place="before", n=12, seed=0, **options):
    """A float64 LN network with gamma and beta away from 1 and 0, and a batch."""
    net = init_network(dims, norm="layer", seed=seed, dtype=np.float64, norm_place=norm_place, **options)
    rng = np.random.default_rng(seed + 1)
    for name, p in net.params.items():
        if name.startswith(("gamma", "beta", "b")):
            p[...] = (name.startswith("gamma")) + 0.3 * rng.standard_normal(p.shape)
    X = rng.standard_normal((n, dims[0]))
    return net, X, rng.integers(0, dims[-1], n)


# ------------------------------------------------------------- the layer


def test_every_sample_is_normalized_over_its_own_features():
    S, _, _, _ = random_layer()
    d = S.shape[1]
    out, (_, S_hat, mu, var, _) = layers.layernorm_forward(S, np.ones(d), np.zeros(d))
    np.testing.assert_array_equal(out, S_hat)
    np.testing.assert_allclose(S_hat.mean(axis=1), 0, atol=1e-13)
    np.testing.assert_allclose(S_hat.var(axis=1), 1, rtol=1e-10)
    assert mu.shape == var.shape == (S.shape[0], 1)
    # A sample alone is normalized exactly as within the batch: no statistic crosses the samples.
    np.testing.assert_array_equal(layers.layernorm_forward(S[2:3], np.ones(d), np.zeros(d))[0], out[2:3])


def test_forward_and_backward_match_torch_autograd():
    S, gamma, beta, dout = random_layer()
    out, cache = layers.layernorm_forward(S, gamma, beta)
    dS, dgamma, dbeta = layers.layernorm_backward(dout, cache)

    t = {name: torch.tensor(a, requires_grad=True) for name, a in (("S", S), ("gamma", gamma), ("beta", beta))}
    t_out = torch.nn.functional.layer_norm(t["S"], (S.shape[1],), t["gamma"], t["beta"], eps=BN_EPS)
    (t_out * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    for ours, name in ((dS, "S"), (dgamma, "gamma"), (dbeta, "beta")):
        np.testing.assert_allclose(ours, t[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_backward_matches_centered_differences():
    S, gamma, beta, dout = random_layer(seed=3)
    dS, dgamma, dbeta = layers.layernorm_backward(dout, layers.layernorm_forward(S, gamma, beta)[1])
    numerical = numerical_gradients(S, gamma, beta, dout, forward=layers.layernorm_forward)
    for name, analytic in (("S", dS), ("gamma", dgamma), ("beta", dbeta)):
        assert relative_error(analytic, numerical[name]) < 1e-7, name


def test_the_forward_pass_broadcasts_over_leading_axes():
    S, gamma, beta, _ = random_layer()
    stacked = np.stack([S, 2 * S + 1])  # (2, n, d): each copy, each sample, normalized alone
    out = layers.layernorm_forward(stacked, gamma, beta)[0]
    np.testing.assert_allclose(out[0], layers.layernorm_forward(S, gamma, beta)[0], rtol=1e-13)
    np.testing.assert_allclose(out[1], out[0], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ in the network


def torch_cost_and_gradients(net, X, y, lam):
    """The cost of an LN network (before or after the ReLU) built in PyTorch, and its autograd gradients."""
    P = {name: torch.tensor(p, requires_grad=True) for name, p in net.params.items()}
    H, k = torch.tensor(X), net.n_layers
    ln = torch.nn.functional.layer_norm
    for l in range(1, k):
        S = H @ P[f"W{l}"] + P[f"b{l}"]
        shape, gamma, beta = (net.dims[l],), P[f"gamma{l}"], P[f"beta{l}"]
        if net.norm_place == "before":
            H = torch.relu(ln(S, shape, gamma, beta, eps=BN_EPS))
        else:
            H = ln(torch.relu(S), shape, gamma, beta, eps=BN_EPS)
    S = H @ P[f"W{k}"] + P[f"b{k}"]
    cost = torch.nn.functional.cross_entropy(S, torch.tensor(y)) + lam * sum(
        (P[f"W{l}"] ** 2).sum() for l in range(1, k + 1))
    cost.backward()
    return cost.item(), {name: t.grad.numpy() for name, t in P.items()}


@pytest.mark.parametrize("norm_place", ["before", "after"])
def test_an_ln_network_has_gamma_beta_and_its_biases_and_no_running_averages(norm_place):
    net = init_network([10, 8, 6, K], norm="layer", norm_place=norm_place)
    assert set(net.params) == {f"{kind}{l}" for l in (1, 2, 3) for kind in ("W", "b")} | {
        f"{kind}{l}" for l in (1, 2) for kind in ("gamma", "beta")}
    assert net.running == {}
    assert all(net.has_bias(l) for l in (1, 2, 3))  # LN subtracts each sample's mean, not each unit's


@pytest.mark.parametrize("norm_place", ["before", "after"])
@pytest.mark.parametrize("lam", [0.0, 0.01])
def test_cost_and_gradients_match_torch_autograd(norm_place, lam):
    net, X, y = problem([10, 8, 6, K], norm_place, n=20)
    cost, grads = cost_and_gradients(net, X, y, lam)
    torch_cost, torch_grads = torch_cost_and_gradients(net, X, y, lam)
    assert cost == pytest.approx(torch_cost, rel=1e-12)
    assert grads.keys() == torch_grads.keys()
    for name in grads:
        np.testing.assert_allclose(grads[name], torch_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("options", [dict(norm_place="before"), dict(norm_place="after"),
                                     dict(norm_place="before", skips=True, dropout=0.3)])
def test_an_ln_network_passes_the_gradient_check_and_the_batched_check_is_the_textbook_one(options):
    net, X, y = problem([6, 5, 5, K], n=8, **options)
    textbook = check_gradients(net, X, y, 0.01, method="textbook")
    assert textbook["max_relative_error"] < 1e-6, textbook["errors"]
    # The batched check continues the network's forward pass from the moved unit: with LN, a unit's
    # parameters move every unit of its layer, through the sample's statistics.
    batched = check_gradients(net, X, y, 0.01, method="centered")
    assert batched["max_relative_error"] < 1e-6, batched["errors"]
    for name, numerical in textbook["numerical"].items():
        np.testing.assert_allclose(batched["numerical"][name], numerical, rtol=0, atol=1e-8, err_msg=name)


def test_test_time_is_training_mode_and_one_sample_is_classified_alone():
    net, X, y = problem([10, 8, 6, K], n=20)
    np.testing.assert_array_equal(forward(net, X, training=False)[0], forward(net, X, training=True)[0])
    np.testing.assert_allclose(forward(net, X[:1], training=False)[0], forward(net, X, training=False)[0][:1],
                               rtol=1e-12)
    assert forward_backward(net, X, y, 0.0)[3] == []  # no batch statistics to average


# ---------------------------------------- the rest of the package, unchanged


def blobs(n, seed=0, d=12):
    """K Gaussian clusters around the same K random centres whatever the seed."""
    centres = 2 * np.random.default_rng(99).standard_normal((K, d))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    return Split((rng.standard_normal((n, d)) + centres[y]).astype(np.float32), y)


def test_an_ln_network_trains_on_the_textbook_path_and_learns():
    config = TrainConfig(hidden=(16, 16), norm="layer", n_batch=20, n_s=30, cycles=1, eta_max=0.05, seed=1,
                         layer_stats=True)
    net = init_network([12, 16, 16, K], norm="layer")
    assert not fast.trains(net)
    with pytest.raises(ConfigError, match="fast path"):
        fast.make_step(net, 0.0)
    make_step(net, config)  # takes the textbook step, no refusal
    result = train(config, blobs(400), blobs(200, seed=1), progress=False)
    assert result.history["val_accuracy"][-1] > 0.8  # chance: 0.2
    assert result.net.running == {}
    layers_history = result.history["layers"]
    assert layers_history["post_std"] is not None and len(layers_history["post_std"][0]) == 2


def test_precise_bn_is_refused_for_an_ln_network():
    with pytest.raises(ConfigError, match="precise_bn .* needs norm 'batch', got 'layer'"):
        check_config(TrainConfig(norm="layer", precise_bn=10))


def test_the_layer_statistics_show_the_normalized_scores():
    net, X, y = problem([10, 8, 6, K], n=20)
    stats = layer_stats(net, X, y, 0.0)
    S1 = X @ net.params["W1"] + net.params["b1"]
    post = layers.layernorm_forward(S1, net.params["gamma1"], net.params["beta1"])[0]
    assert stats["pre_std"][0] == pytest.approx(S1.std(), rel=1e-12)
    assert stats["post_std"][0] == pytest.approx(post.std(), rel=1e-12)


@pytest.mark.parametrize("norm_place", ["before", "after"])
def test_an_ln_network_is_saved_and_loaded(tmp_path, norm_place):
    net, X, _ = problem([10, 8, 6, K], norm_place)
    loaded, _ = load_network(save_network(net, tmp_path / "net.npz"))
    assert (loaded.norm, loaded.norm_place) == ("layer", norm_place)
    np.testing.assert_array_equal(forward(loaded, X, training=False)[0], forward(net, X, training=False)[0])


def test_the_textbook_check_catches_a_wrong_ln_backward(monkeypatch):
    net, X, y = problem([6, 5, 5, K], n=8)
    right = layers.layernorm_backward

    def statistics_held_constant(dS_tilde, cache):
        """A plausible mistake: S's paths through its row's mean and variance forgotten."""
        _, dgamma, dbeta = right(dS_tilde, cache)
        _, _, _, var, gamma = cache
        return dS_tilde * gamma / np.sqrt(var + BN_EPS), dgamma, dbeta

    monkeypatch.setattr("helpers.core.network.layernorm_backward", statistics_held_constant)
    numerical = numerical_gradients_textbook(net, X, y, 0.0)
    _, analytic = cost_and_gradients(net, X, y, 0.0)
    assert relative_error(analytic["W1"], numerical["W1"]) > 1e-3
