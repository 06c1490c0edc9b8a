import json

import numpy as np
import pytest

from helpers.cli import main
from helpers.core import gradcheck
from helpers.core.gradcheck import (
    as_float64,
    check_gradients,
    error_table,
    numerical_gradients,
    numerical_gradients_textbook,
    relative_error,
)
from helpers.core.network import cost, cost_and_gradients, init_network


def forward_differences_one_at_a_time(net, X, y, lam, h):
    """The textbook check with forward differences, (J(theta + h) - J(theta)) / h."""
    base = cost(net, X, y, lam)
    grads = {}
    for name, p in net.params.items():
        g = np.empty_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            g[i] = (cost(net, X, y, lam) - base) / h
            p[i] = old
        grads[name] = g
    return grads


def small_problem(dims, norm, n=12, seed=0):
    rng = np.random.default_rng(seed)
    net = init_network(dims, norm=norm, seed=seed, dtype=np.float64)
    for name, p in net.params.items():
        if name.startswith(("gamma", "beta")):
            p += 0.3 * rng.standard_normal(p.shape)
    X = rng.standard_normal((n, dims[0]))
    y = rng.integers(0, dims[-1], n)
    return net, X, y


@pytest.mark.parametrize("method", ["centered", "forward"])
@pytest.mark.parametrize(
    "dims, norm",
    [([7, 5], "none"), ([7, 6, 5], "none"), ([7, 6, 5], "batch"), ([7, 6, 4, 6, 5], "batch"), ([7, 6, 5], "layer"),
     ([7, 6, 4, 6, 5], "layer")],
)
def test_fast_numerical_gradients_equal_the_textbook_ones(dims, norm, method):
    net, X, y = small_problem(dims, norm)
    h = 1e-5
    fast = numerical_gradients(net, X, y, 0.01, h, method)
    if method == "centered":
        slow = numerical_gradients_textbook(net, X, y, 0.01, h)
    else:
        slow = forward_differences_one_at_a_time(net, X, y, 0.01, h)
    assert fast.keys() == slow.keys()
    for name in fast:
        assert fast[name].shape == net.params[name].shape
        # Both are finite differences of the same cost; they differ only by rounding.
        np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_the_batched_check_gives_the_same_numbers_in_chunks_of_one_copy(norm, monkeypatch):
    net, X, y = small_problem([7, 6, 4, 5], norm)
    whole = numerical_gradients(net, X, y, 0.01, 1e-5)
    monkeypatch.setattr(gradcheck, "CHUNK_BYTES", 1)  # n_per_chunk: one perturbed copy per chunk
    chunked = numerical_gradients(net, X, y, 0.01, 1e-5)
    for name in whole:
        # The same differences; a chunk's matrix products may round in another order.
        np.testing.assert_allclose(chunked[name], whole[name], rtol=0, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_textbook_check_passes_the_analytic_gradients(norm):
    net, X, y = small_problem([6, 5, 4], norm, n=8)
    report = check_gradients(net, X, y, lam=0.005, method="textbook")
    assert report["max_relative_error"] < 1e-7
    assert set(report["errors"]) == set(net.params)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_analytic_gradients_pass_the_check(norm):
    net, X, y = small_problem([10, 8, 8, 4], norm, n=20)
    report = check_gradients(net, X, y, lam=0.005)
    assert report["max_relative_error"] < 1e-7
    assert set(report["errors"]) == set(net.params)


def test_the_check_catches_a_wrong_gradient():
    net, X, y = small_problem([10, 8, 4], "batch", n=20)
    numerical = numerical_gradients(net, X, y, 0.0)
    wrong = dict(numerical)
    wrong["gamma1"] = numerical["gamma1"] * 1.01
    assert relative_error(wrong["gamma1"], numerical["gamma1"]) > 1e-3


def test_forward_differences_are_less_precise_than_centered():
    net, X, y = small_problem([10, 8, 4], "none", n=20)
    centered = check_gradients(net, X, y, 0.0, h=1e-4, method="centered")["max_relative_error"]
    forward_ = check_gradients(net, X, y, 0.0, h=1e-4, method="forward")["max_relative_error"]
    assert centered < forward_ / 10


def test_relative_error_is_scaled_by_the_largest_entries():
    a = np.array([1.0, 1e-9])
    n = np.array([1.0, 2e-9])
    assert relative_error(a, n) == pytest.approx(1e-9 / 2, rel=1e-6)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_error_table_has_a_row_per_layer_and_dashes_for_missing_parameters():
    table = error_table({"W1": 1e-9, "b1": 0.0, "gamma1": 2e-9, "beta1": 3e-9, "W2": 4e-9, "b2": 5e-9})
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "W", "b", "gamma", "beta"]
    assert lines[1].split() == ["1", "1.00e-09", "0.00e+00", "2.00e-09", "3.00e-09"]
    assert lines[2].split() == ["2", "4.00e-09", "5.00e-09", "-", "-"]


def test_gradcheck_accepts_a_float32_network_and_checks_in_float64():
    net, X, y = small_problem([6, 5, 3], "batch")
    net32 = init_network([6, 5, 3], norm="batch", seed=0, dtype=np.float32)
    report = check_gradients(net32, X.astype(np.float32), y, 0.0)
    assert all(g.dtype == np.float64 for g in report["numerical"].values())
    assert report["max_relative_error"] < 1e-7


def test_command_line_gradcheck_on_cifar(cifar_dir, tmp_path, capsys):
    out = tmp_path / "gc.json"
    code = main(["gradcheck", "--data-dir", str(cifar_dir), "--dim", "50", "--n", "20",
                 "--hidden", "10", "10", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "layer" in printed and "max relative error" in printed
    result = json.loads(out.read_text())
    assert result["max_relative_error"] <= 1e-7
    assert set(result["errors"]) == {"W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"}
    assert result["seconds"] > 0


def test_command_line_gradcheck_of_the_networks_options(cifar_dir, tmp_path, capsys):
    out = tmp_path / "gc.json"
    code = main(["gradcheck", "--data-dir", str(cifar_dir), "--dim", "30", "--n", "20", "--hidden", "10", "10",
                 "--dropout", "0.3", "--bn-after-relu", "--skips", "--json", str(out)])
    assert code == 0
    assert "dropout 0.3, norm_place after, skips True" in capsys.readouterr().out
    assert json.loads(out.read_text())["max_relative_error"] <= 1e-7


def test_a_relu_kink_within_reach_of_the_step_is_handled():
    """A ReLU input 3e-7 from zero: a step of 1e-6 crosses the kink, so the
    check must shrink the step for the entries that do, and still agree."""
    net, X, y = small_problem([10, 8, 6, 4], "batch", n=20)
    from helpers.core.network import forward as run

    _, caches = run(net, X)
    S_hat = caches[1][1][1]  # layer 2's normalized scores, from its batch-norm cache
    # Move beta2[0] so that sample 0's ReLU input sits just above the kink.
    net.params["beta2"][0] = 3e-7 - net.params["gamma2"][0] * S_hat[0, 0]
    report = check_gradients(net, X, y, 0.0, h=1e-6)
    assert report["max_relative_error"] < 1e-6
    naive = numerical_gradients_textbook(net, X, y, 0.0, 1e-6)
    assert relative_error(report["analytic"]["beta2"], naive["beta2"]) > 1e-3


def test_forward_differences_give_exactly_zero_for_the_bias_that_batch_norm_cancels():
    net, X, y = small_problem([10, 8, 6, 4], "batch", n=20)
    report = check_gradients(net, X, y, 0.005, method="forward")
    for name in ("b1", "b2"):
        assert np.all(report["numerical"][name] == 0) and report["errors"][name] == 0


def test_a_float32_network_is_checked_with_its_options():
    """as_float64 keeps dropout, norm_place and skips: the check must check the network it is given."""
    net32 = init_network([6, 5, 5, 3], norm="batch", seed=0, dtype=np.float32,
                         dropout=0.3, norm_place="after", skips=True)
    net64 = as_float64(net32)
    assert (net64.dropout, net64.norm_place, net64.skips) == (0.3, "after", True)
    assert net64.dtype == np.float64 and net64.dims == net32.dims
    _, X, y = small_problem([6, 5, 5, 3], "batch")
    X32 = X.astype(np.float32)
    report = check_gradients(net32, X32, y, 0.0, dropout_seed=2)
    _, expected = cost_and_gradients(net64, X32.astype(np.float64), y, 0.0, np.random.default_rng(2))
    for name, g in report["analytic"].items():
        np.testing.assert_array_equal(g, expected[name], err_msg=name)
    assert report["max_relative_error"] < 1e-7
