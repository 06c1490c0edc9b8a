"""The batch normalization layer on its own (helpers.report.bn_layer, notebook 00)."""

import numpy as np
import pytest

from helpers.core.layers import batchnorm_backward, batchnorm_backward_folded
from helpers.report import bn_layer, plots

MEANS, STDS = [5.0, -2.0, 1000.0, 0.0], [1.0, 1e-3, 300.0, 1.0]


def test_every_feature_comes_out_with_mean_0_and_std_1_whatever_its_scale():
    S = bn_layer.sample_batch(MEANS, STDS, n=200)
    before_mean, before_std = bn_layer.normalization_statistics(S, np.ones(4), np.zeros(4))["before"]
    np.testing.assert_allclose(before_mean, MEANS, rtol=0.2, atol=0.2)
    np.testing.assert_allclose(before_std, STDS, rtol=0.2)
    mean, std = bn_layer.normalization_statistics(S, np.ones(4), np.zeros(4))["normalized"]
    assert np.all(np.abs(mean) < 1e-9)
    assert np.all(np.abs(std - 1) < 1e-6)


def test_gamma_and_beta_then_set_the_standard_deviation_and_the_mean():
    S = bn_layer.sample_batch(MEANS, STDS, n=200)
    gamma, beta = np.array([2.0, 0.5, 1.0, -3.0]), np.array([1.0, -3.0, 0.0, 7.0])
    mean, std = bn_layer.normalization_statistics(S, gamma, beta)["output"]
    np.testing.assert_allclose(mean, beta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(std, np.abs(gamma), rtol=1e-6)


def test_the_normalization_table_has_a_row_per_feature():
    S = bn_layer.sample_batch(MEANS[:2], STDS[:2], n=50)
    table = bn_layer.normalization_table(S, np.array([2.0, 0.5]), np.array([1.0, -3.0]))
    assert table.header[0] == "feature" and len(table.header) == 9
    assert [row[0] for row in table.rows] == [1, 2]
    assert table.rows[0][4] == "1" and table.rows[0][5:] == ["2", "1", "1", "2"]
    assert "50 samples" in table.caption


def test_the_running_averages_follow_the_moving_average_from_0_and_1():
    warmup = bn_layer.warm_up([3.0, -1.0], [2.0, 0.5], batches=5, batch_size=10, alpha=0.9)
    assert warmup["batch_mean"].shape == warmup["batch_var"].shape == (5, 2)
    assert warmup["running_mean"].shape == warmup["running_var"].shape == (6, 2)
    np.testing.assert_array_equal(warmup["running_mean"][0], [0, 0])
    np.testing.assert_array_equal(warmup["running_var"][0], [1, 1])
    for stat in ("mean", "var"):
        running, batch = warmup[f"running_{stat}"], warmup[f"batch_{stat}"]
        np.testing.assert_allclose(running[1:], 0.9 * running[:-1] + 0.1 * batch, rtol=1e-12)


def test_after_the_warm_up_the_running_averages_are_near_the_true_statistics():
    means, stds = np.array([3.0, -1.0]), np.array([2.0, 0.5])
    warmup = bn_layer.warm_up(means, stds, batches=60, batch_size=100)
    # The start (0 and 1) is forgotten by now (0.9^60 = 0.2 %); what is left
    # is the noise of the batches, about 0.02 std for the mean.
    assert np.all(np.abs(warmup["running_mean"][-1] - means) < 0.1 * stds)
    assert np.all(np.abs(warmup["running_var"][-1] / stds**2 - 1) < 0.15)
    # Before the warm-up they were far off.
    assert np.any(np.abs(warmup["running_mean"][0] - means) > stds)
    table = bn_layer.running_averages_table(warmup)
    assert table.rows[0][:2] == [1, "3"] and table.rows[1][3] == "0.25"
    assert "60 batches of 100" in table.caption


def test_in_test_mode_one_sample_comes_out_as_it_would_in_a_large_batch():
    warmup = bn_layer.warm_up([3.0, -1.0], [2.0, 0.5])
    outputs = bn_layer.one_sample(warmup)
    np.testing.assert_allclose(outputs["large_batch"], (outputs["sample"] - [3.0, -1.0]) / [2.0, 0.5], atol=0.05)
    np.testing.assert_allclose(outputs["test_mode"], outputs["large_batch"], atol=0.1)
    # Alone in training mode, a sample is its batch's mean: nothing is left of it.
    np.testing.assert_array_equal(outputs["alone"], [0, 0])
    table = bn_layer.one_sample_table(warmup)
    assert [row[0].split(",")[0] for row in table.rows] == ["the sample", "training mode", "test mode", "training mode"]
    assert table.rows[-1][1:] == ["0", "0"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_folded], ids=lambda f: f.__name__)
def test_the_layer_backward_passes_agree_with_centered_differences(backward, seed):
    errors = bn_layer.backward_errors(backward, *bn_layer.small_input(seed=seed))
    assert set(errors) == {"S", "gamma", "beta"}
    assert max(errors.values()) < 1e-8


def test_the_check_catches_a_backward_that_holds_the_batch_statistics_constant():
    errors = bn_layer.backward_errors(bn_layer.backward_with_constant_statistics, *bn_layer.small_input())
    assert errors["S"] > 1e-2
    assert errors["gamma"] < 1e-8 and errors["beta"] < 1e-8


def test_the_numerical_gradient_of_beta_is_the_sum_of_dout():
    S, gamma, beta, dout = bn_layer.small_input()
    grads = bn_layer.numerical_gradients(S, gamma, beta, dout)
    np.testing.assert_allclose(grads["beta"], dout.sum(axis=0), rtol=1e-8)
    # The output does not move when every sample moves together: the mean subtraction takes it away.
    np.testing.assert_allclose(grads["S"].sum(axis=0), 0, atol=1e-8)


def test_the_backward_check_table_has_a_row_per_backward():
    table = bn_layer.backward_check_table(
        {"graph": batchnorm_backward, "wrong": bn_layer.backward_with_constant_statistics},
        *bn_layer.small_input(n=4, d=2),
    )
    assert table.header == ["backward", "dS", "dgamma", "dbeta"]
    assert [row[0] for row in table.rows] == ["graph", "wrong"]
    assert float(table.rows[0][1]) < 1e-8 < 1e-2 < float(table.rows[1][1])
    assert "4 samples, 2 features" in table.caption


def test_the_running_averages_figure_draws_each_feature_against_its_true_value():
    warmup = bn_layer.warm_up([3.0, -1.0], [2.0, 0.5], batches=8, batch_size=10)
    fig = plots.running_averages_figure(warmup)
    mean_ax, var_ax = fig.axes
    assert [ax.get_ylabel() for ax in fig.axes] == ["mean", "variance"]
    dots, running, true = var_ax.get_lines()[3:6]  # feature 2
    np.testing.assert_array_equal(dots.get_ydata(), warmup["batch_var"][:, 1])
    np.testing.assert_array_equal(running.get_xdata(), np.arange(9))
    np.testing.assert_array_equal(running.get_ydata(), warmup["running_var"][:, 1])
    assert true.get_ydata()[0] == 0.25
    assert "alpha = 0.9" in fig.get_suptitle()
