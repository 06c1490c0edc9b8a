"""Notebook 07's package code: the accuracy with batch statistics, the studies and figures."""

from dataclasses import replace

import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers.core.data import load_cifar10
from helpers.core.layers import BN_EPS
from helpers.core.network import accuracy, init_network
from helpers.core.config import TrainConfig
from helpers.core.training import train
from helpers.errors import DivergedError
from helpers.experiments import batch_stats_accuracy, run_experiment
from helpers.report import inside, inside_plots, verdicts

TINY = TrainConfig(hidden=(8,), n_batch=10, n_s=2, cycles=1, evals_per_cycle=1)


# ---------------------------------------------------------------- accuracy with batch statistics


def by_hand(net, X, y, n_batch):
    """The BN network in training mode, batch by batch, written out layer by layer."""
    correct = 0
    k = net.n_layers
    for i in range(0, len(X), n_batch):
        H = X[i : i + n_batch].astype(np.float64)
        for l in range(1, k):
            S = H @ net.params[f"W{l}"]
            mu, var = S.mean(axis=0), S.var(axis=0)  # the batch's own, biased
            S = net.params[f"gamma{l}"] * (S - mu) / np.sqrt(var + BN_EPS) + net.params[f"beta{l}"]
            H = np.maximum(S, 0)
        scores = H @ net.params[f"W{k}"] + net.params[f"b{k}"]
        correct += int(np.sum(scores.argmax(axis=1) == y[i : i + n_batch]))
    return correct / len(X)


def bn_network_with_moved_statistics(seed=0):
    """A small BN network whose gamma, beta and running averages are far from their initial values."""
    rng = np.random.default_rng(seed)
    net = init_network([12, 7, 6, 4], norm="batch", init="he", seed=seed, dtype=np.float64)
    for l in (1, 2):
        net.params[f"gamma{l}"][:] = rng.uniform(0.5, 2, net.dims[l])
        net.params[f"beta{l}"][:] = rng.normal(0, 1, net.dims[l])
        net.running[f"mu{l}"][:] = rng.normal(0, 2, net.dims[l])
        net.running[f"var{l}"][:] = rng.uniform(0.1, 5, net.dims[l])
    return net


@pytest.mark.parametrize("n_batch", [1, 4, 5, 20, 64])
def test_the_batch_statistics_accuracy_is_the_network_in_training_mode_batch_by_batch(n_batch):
    net = bn_network_with_moved_statistics()
    rng = np.random.default_rng(1)
    X, y = rng.normal(0, 1, (20, 12)) + rng.normal(0, 3, 12), rng.integers(0, 4, 20)
    running = {name: a.copy() for name, a in net.running.items()}
    found = batch_stats_accuracy(net, X, y, n_batch)
    assert found == by_hand(net, X, y, n_batch)
    assert all(np.array_equal(net.running[name], a) for name, a in running.items())  # nothing updated


def test_the_batch_statistics_accuracy_differs_from_the_running_averages():
    """So that the comparison of the notebook measures something: here the running averages are far off."""
    net = bn_network_with_moved_statistics()
    rng = np.random.default_rng(2)
    X, y = rng.normal(0, 1, (200, 12)), rng.integers(0, 4, 200)
    assert batch_stats_accuracy(net, X, y, 50) != accuracy(net, X, y)


def test_the_summary_has_the_batch_statistics_accuracy_of_bn_networks_only(cifar):
    bn, result = run_experiment(TINY, cifar, progress=False)
    assert bn["batch_stats_test_accuracy"] == batch_stats_accuracy(result.net, cifar.test.X, cifar.test.y, 10)
    plain, _ = run_experiment(replace(TINY, norm="none"), cifar, progress=False)
    assert plain["batch_stats_test_accuracy"] is None


# ---------------------------------------------------------------- the studies' configurations


def test_the_sweep_trains_every_sigma_and_he_for_both_networks_on_one_short_cycle():
    configs = inside.sweep_configs(45000)
    for name in inside.NETWORKS:
        for batch_norm in (False, True):
            expected = {init for init in (*inside.SIGMAS, "he") if (name, init, batch_norm) not in inside.DIVERGES}
            assert {init for n, init, bn in configs if (n, bn) == (name, batch_norm)} == expected
    assert len(configs) == 4 * (len(inside.SIGMAS) + 1) - 1 and inside.DIVERGES == {("9-layer", 1.0, False)}
    for (name, init, batch_norm), config in configs.items():
        assert config == replace(TrainConfig(), hidden=inside.NETWORKS[name], init=init, norm="batch" if batch_norm else "none",
                                 n_s=450, cycles=1)


def test_the_batch_size_study_gives_every_n_batch_the_same_epochs():
    configs = inside.batch_size_configs(45000)
    assert list(configs) == [(n, norm) for n in inside.BATCH_SIZES for norm in ("none", "batch", "layer")]
    for (n_batch, norm), config in configs.items():
        assert config.n_batch == n_batch and config.norm == norm and config.hidden == (50, 50)
        assert config == replace(configs[n_batch, "batch"], norm=norm)  # the normalization is all that differs
        assert config.n_s * n_batch == 45000 * inside.HALF_CYCLE_EPOCHS and config.cycles == 1
        assert (config.eta_min, config.eta_max, config.init) == (1e-5, 1e-1, "he")
    assert inside.schedule_note(45000) == "one cycle of 2 epochs of 45,000 images"


def test_without_bn_sigma_1_diverges_for_the_9_layer_network_only(cifar_dir):
    """Why the sweep leaves out inside.DIVERGES: on the quick data, seeds 0 and 1, as in the notebook."""
    cifar = load_cifar10(cifar_dir, n_train=5000)
    for seed in (0, 1):
        config = inside.short_config(5000, hidden=inside.NETWORKS["9-layer"], init=1.0, norm="none", seed=seed)
        with pytest.warns(RuntimeWarning), pytest.raises(DivergedError):  # NumPy's warning of the overflow
            train(config, cifar.train, cifar.val, progress=False)
    config = inside.short_config(5000, hidden=inside.NETWORKS["3-layer"], init=1.0, norm="none")
    assert train(config, cifar.train, cifar.val, progress=False).steps == 2 * config.n_s  # to the end


# ---------------------------------------------------------------- what the network learned


def test_weight_images_put_each_column_in_cifar_order_and_stretch_it_to_0_1():
    W = np.stack([np.arange(3072.0), -2 * np.arange(3072.0)], axis=1)
    images = inside.weight_images(W)
    assert images.shape == (2, 32, 32, 3)
    red, green, blue = 0, 1024, 2048  # CIFAR-10's rows: 1024 red values, then green, then blue
    assert images[0, 3, 5, 1] == pytest.approx((green + 3 * 32 + 5) / 3071)
    assert images[0, 31, 31, 2] == 1.0 and images[0, 0, 0, 0] == red
    assert images[1, 0, 0, 0] == 1.0 and images[1, 31, 31, 2] == 0.0  # the second column falls


def test_to_images_undoes_the_normalization(cifar_dir):
    cifar = load_cifar10(cifar_dir, n_train=1000)
    images = inside.to_images(cifar.test.X[:3], cifar.mean, cifar.std)
    assert images.shape == (3, 32, 32, 3) and images.min() >= 0 and images.max() <= 1
    # Pixels were bytes / 255; the JPEG copy's too.
    np.testing.assert_allclose(images * 255, np.round(images * 255), atol=1e-3)
    np.testing.assert_allclose(images[0, :, :, 0].ravel(),
                               cifar.test.X[0, :1024] * cifar.std[:1024] + cifar.mean[:1024], atol=1e-6)


def test_the_confusion_matrix_counts_true_against_predicted():
    y = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 0, 0])
    matrix = inside.confusion_matrix(y, predicted, 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [2, 0, 1]])
    text = inside.confusion_text(matrix, ["a", "b", "c"])
    assert text.startswith("Test accuracy 50.00 %.")
    assert "The most frequent mistake: 2 of the 3 c images taken for a." in text


def test_the_confident_mistakes_are_the_wrong_answers_most_probable_first():
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.95, 0.05]])
    y = np.array([0, 0, 0, 1, 1])
    np.testing.assert_array_equal(inside.confident_mistakes(P, y, 5), [4, 1, 2])
    np.testing.assert_array_equal(inside.confident_mistakes(P, y, 2), [4, 1])


# ---------------------------------------------------------------- tables, texts and figures from fake runs


def fake(test, batch_stats=None, steps=900):
    return {"test_accuracy": test, "batch_stats_test_accuracy": batch_stats, "steps": steps}


def fake_sweep():
    """Two seeds per setting, but for inside.DIVERGES; without BN only sigma 0.1 and He train."""
    runs = {}
    for name in inside.NETWORKS:
        for init in (*inside.SIGMAS, "he"):
            if (name, init, False) not in inside.DIVERGES:
                trains = init in (0.1, "he")
                runs[name, init, False] = [fake(0.30 if trains else 0.10), fake(0.34 if trains else 0.10)]
            runs[name, init, True] = [fake(0.40), fake(0.42)]
    runs["3-layer", 1e-2, True] = [fake(0.45), fake(0.47)]
    return runs


def test_the_sweep_table_and_text_are_written_from_the_runs():
    runs = fake_sweep()
    table = inside.sweep_table(runs)
    assert table.header[2:] == ["sigma 1e-5", "sigma 1e-4", "sigma 1e-3", "sigma 1e-2", "sigma 1e-1", "sigma 1",
                                "sigma He"]
    assert table.rows[0][:3] == ["3-layer", "no BN", "10.00 ± 0.00 %"] and table.rows[0][7] == "10.00 ± 0.00 %"
    assert table.rows[2][:2] == ["9-layer", "no BN"] and table.rows[2][7] == "diverges"
    assert table.rows[1][5] == "46.00 ± 1.41 %"
    text = inside.sweep_text(runs)
    assert ("3-layer network's mean test accuracy over sigma from 1e-5 to 1 goes from 41.0 % (sigma 1e-5) to "
            "46.0 % (sigma 1e-2); with He initialization 41.00 ± 1.41 %") in text
    assert "stays at chance for sigma 1e-5, 1e-4, 1e-3, 1e-2, 1 and trains only for sigma 1e-1" in text
    assert "9-layer network's mean test accuracy over sigma from 1e-5 to 1 goes from 41.0 % (sigma 1e-5)" in text


def test_the_sweep_figure_has_a_line_per_network_and_bn_over_a_log_sigma_axis():
    fig = inside_plots.sweep_figure(fake_sweep(), "a note")
    assert isinstance(fig, Figure)
    ax, he = fig.axes
    assert ax.get_xscale() == "log" and fig.get_suptitle().endswith("\na note (900 steps)")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["3-layer, no BN", "3-layer, BN", "9-layer, no BN", "9-layer, BN", "chance, 10 %"]
    assert len(ax.containers) == 4  # one errorbar container per line
    bn_line = ax.containers[1].lines[0]
    np.testing.assert_allclose(bn_line.get_xdata(), inside.SIGMAS)
    np.testing.assert_allclose(bn_line.get_ydata(), [41, 41, 41, 46, 41, 41])
    assert len(ax.containers[0].lines[0].get_xdata()) == 6
    assert len(ax.containers[2].lines[0].get_xdata()) == 5  # the 9-layer network without BN: up to sigma 0.1
    assert ax.get_xlabel() and ax.get_ylabel() and he.get_xlabel()


def test_he_initialization_is_a_point_per_network_and_bn_that_tells_bn_from_no_bn():
    ax, he = inside_plots.sweep_figure(fake_sweep(), "a note").axes
    assert he.get_shared_y_axes().joined(ax, he) and he.get_title() == "He init."
    assert [t.get_text() for t in he.get_xticklabels()] == ["3-layer", "9-layer"]
    points = [container.lines[0] for container in he.containers]
    assert len(points) == 4
    no_bn, bn = points[:2]  # the 3-layer network's
    np.testing.assert_allclose([no_bn.get_ydata()[0], bn.get_ydata()[0]], [32, 41])
    assert no_bn.get_xdata()[0] != bn.get_xdata()[0]
    assert no_bn.get_markerfacecolor() != bn.get_markerfacecolor()  # open without BN, filled with BN
    lines = ax.containers
    assert lines[0].lines[0].get_linestyle() != lines[1].lines[0].get_linestyle()


def fake_batches():
    """BN loses 1 / n of its accuracy with batch statistics; LN 2 points above BN, no BN 5 below."""
    runs = {}
    for n in inside.BATCH_SIZES:
        runs[n, "none"] = [fake(0.40), fake(0.42)]
        runs[n, "batch"] = [fake(0.45, 0.45 - 1 / n), fake(0.47, 0.47 - 1 / n)]
        runs[n, "layer"] = [fake(0.47), fake(0.49)]
    return runs


def test_the_batch_size_table_text_and_figure_show_each_normalization_and_the_gap_of_batch_statistics():
    runs = fake_batches()
    runs[50, "layer"] = [fake(0.50), fake(0.52)]
    table = inside.batch_size_table(runs)
    assert table.header[2:5] == ["no BN", "BN, running averages", "LN"]
    assert table.rows[0] == [10, "900", "41.00 ± 1.41 %", "46.00 ± 1.41 %", "48.00 ± 1.41 %", "36.00 ± 1.41 %",
                             "-10.00 ± 0.00 points"]
    text = inside.batch_size_text(runs)
    assert text.startswith("For the same 2 epochs, the network without normalization at n_batch 10 (41.00 ± 1.41 %), "
                           "the BN network at n_batch 10 (46.00 ± 1.41 %) and the LN network at n_batch 50 "
                           "(51.00 ± 1.41 %) do best.")
    assert "by -10.00 ± 0.00 points at n_batch 10 and by -0.20 ± 0.00 points at n_batch 500" in text
    fig = inside_plots.batch_size_figure(runs, "a note")
    left, right = fig.axes
    assert left.get_xscale() == right.get_xscale() == "log"
    assert [t.get_text() for t in left.get_legend().get_texts()] == [
        "no BN", "BN, running averages", "BN, each test batch's statistics", "LN"]
    means = [container.lines[0].get_ydata() for container in left.containers]
    np.testing.assert_allclose(means[0], [41] * 6)
    np.testing.assert_allclose(means[3], [48, 48, 51, 48, 48, 48])  # LN, its own line
    bars = left.containers[3].lines[2][0].get_segments()  # LN's error bars: mean ± std of its seeds
    np.testing.assert_allclose([bars[0][0][1], bars[0][1][1]], [48 - np.sqrt(2), 48 + np.sqrt(2)])
    np.testing.assert_allclose(right.containers[0].lines[0].get_ydata(), [-100 / n for n in inside.BATCH_SIZES])
    assert "a note" in fig.get_suptitle()
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in (left, right))


def study(bn_small, ln_small):
    """Three seeds per setting, BN and LN at about 47 % but at n_batch 10, where they score bn_small, ln_small."""
    runs = {}
    for n in inside.BATCH_SIZES:
        small = n == inside.BATCH_SIZES[0]
        runs[n, "none"] = [fake(a) for a in ((0.455, 0.46, 0.465) if small else (0.465, 0.47, 0.475))]
        runs[n, "batch"] = [fake(a, a) for a in (bn_small if small else (0.465, 0.47, 0.475))]
        runs[n, "layer"] = [fake(a) for a in (ln_small if small else (0.465, 0.471, 0.477))]
    return runs


def test_the_layer_norm_verdict_follows_the_welch_tests_of_the_runs():
    keeps = inside.layer_norm_text(study(bn_small=(0.44, 0.445, 0.45), ln_small=(0.465, 0.47, 0.475)))
    assert ("At n_batch 10 the LN network reaches 47.00 ± 0.50 % against BN's 44.50 ± 0.50 % (+2.50 points, "
            "p = 0.0036: a real difference); at n_batch 100, the report's, 47.10 ± 0.60 % against 47.00 ± 0.50 % "
            "(+0.10 points, p = 0.84: within the seeds' noise).") in keeps
    assert ("From n_batch 100 down to 10, BN's accuracy changes by -2.50 points, p = 0.0036, LN's by -0.10 points, "
            "p = 0.84, and without normalization by -1.00 points, p = 0.07.") in keeps
    assert keeps.endswith("So LN keeps its accuracy at n_batch 10 (no loss the seeds can tell), where BN loses it.")
    loses = inside.layer_norm_text(study(bn_small=(0.44, 0.445, 0.45), ln_small=(0.43, 0.435, 0.44)))
    assert "43.50 ± 0.50 % against BN's 44.50 ± 0.50 % (-1.00 points, p = 0.07: within the seeds' noise)" in loses
    assert "LN's by -3.60 points, p = 0.0015" in loses
    assert loses.endswith("So LN loses accuracy at n_batch 10 too; it does not keep what BN loses.")
    same = inside.layer_norm_text(study(bn_small=(0.455, 0.465, 0.475), ln_small=(0.43, 0.435, 0.44)))
    assert "BN's accuracy changes by -0.50 points, p = 0.5," in same
    assert same.endswith("So BN loses no accuracy at n_batch 10 that the seeds can tell, and there is no loss here "
                         "for LN to avoid.")
    # The tests are the verdicts' own: the difference and p of verdicts.welch.
    test = verdicts.welch([0.465, 0.47, 0.475], [0.44, 0.445, 0.45])
    assert f"{100 * test['difference']:+.2f} points, {verdicts.format_p(test['p'])}" == "+2.50 points, p = 0.0036"


def test_the_image_figures_have_an_image_per_unit_and_per_mistake():
    weights = inside_plots.weights_figure(inside.weight_images(np.random.default_rng(0).normal(size=(3072, 50))))
    shown = [ax for ax in weights.axes if ax.images]
    assert len(shown) == 50 and shown[49].get_title() == "unit 50"
    names = [f"class {i}" for i in range(10)]
    images = np.zeros((3, 32, 32, 3))
    mistakes = inside_plots.mistakes_figure(images, [0, 1, 2], [3, 4, 5], [0.99, 0.9, 0.8], names)
    titles = [ax.get_title() for ax in mistakes.axes if ax.images]
    assert titles == ["class 0\ntaken for class 3\n99 %", "class 1\ntaken for class 4\n90 %",
                      "class 2\ntaken for class 5\n80 %"]


def test_the_confusion_figure_writes_every_count_in_its_cell():
    matrix = np.arange(100).reshape(10, 10)
    fig = inside_plots.confusion_figure(matrix, [f"c{i}" for i in range(10)])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(n) for n in range(100)]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"c{i}" for i in range(10)]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


# ---------------------------------------------------------------- each layer during training


def test_the_followed_runs_are_the_report_sigmas_and_the_9_layer_network_with_layer_stats():
    configs = inside.layer_stats_configs(45000)
    assert list(configs) == [("3-layer", s, bn) for bn in (False, True) for s in (1e-1, 1e-3, 1e-4)] + [
        ("9-layer", "he", False), ("9-layer", "he", True)]
    for (name, init, batch_norm), config in configs.items():
        assert config == inside.short_config(45000, hidden=inside.NETWORKS[name], init=init, norm="batch" if batch_norm else "none",
                                             layer_stats=True)
    runs = {key: [{"seed": 0}, {"seed": 1}] for key in configs}
    assert inside.traced_runs(runs, "9-layer") == {"9-layer, He, no BN": {"seed": 0}, "9-layer, He, BN": {"seed": 0}}
    assert list(inside.traced_runs(runs, "3-layer"))[:2] == ["3-layer, sigma 1e-1, no BN", "3-layer, sigma 1e-3, no BN"]


def test_the_gain_of_a_layer_at_initialization_is_measured_by_a_forward_pass():
    """sigma sqrt(d_in / 2): the ratio of the stds of two layers' outputs, on Gaussian inputs and wide layers."""
    rng = np.random.default_rng(0)
    hidden = (400, 400)
    net = init_network([300, *hidden, 10], norm="none", init=1e-2, seed=0, dtype=np.float64)
    H1 = np.maximum(rng.normal(size=(2000, 300)) @ net.params["W1"], 0)
    H2 = np.maximum(H1 @ net.params["W2"], 0)
    assert H2.std() / H1.std() == pytest.approx(inside.fan_in_gain(hidden, 1e-2, 2), rel=0.1)


def fake_traced(sigma=1e-3):
    """Layer statistics of the 3-layer runs at sigma, as TrainConfig.layer_stats records them."""
    def run(act, grads, updates, test):
        layers = {"step": [0, 90, 180], "act_std": [act, act, act], "grad_norm": [grads, grads, grads],
                  "update_ratio": [None, updates, updates]}
        return [{"history": {"layers": layers, "eta": [0.02] * 180}, "config": {"lam": 0.005, "seed": 0},
                 "test_accuracy": test}]
    return {("3-layer", sigma, False): run([4e-2, 2e-4], [4e-3, 5e-4, 3e-4], [2.1e-4, 2e-4, 2.2e-4], 0.1),
            ("3-layer", sigma, True): run([0.59, 0.6], [0.6, 0.5, 0.5], [0.05, 0.2, 0.3], 0.48)}


def test_why_text_is_written_from_the_layer_statistics():
    text = inside.why_text(fake_traced())
    assert "standard deviations 4.0e-02, 2.0e-04 at step 0" in text
    assert "multiplies the scale of its input by 5.0e-03 (sigma sqrt(d_in / 2) = 5.0e-03" in text
    assert "the gradients' norms are 4.0e-03, 5.0e-04, 3.0e-04 (layers 1 to 3), against 6.0e-01, 5.0e-01" in text
    assert "Step 90 changed each weight matrix by 2.1e-04, 2.0e-04, 2.2e-04 of its norm" in text
    assert "about the L2 term's own pull towards zero, 2 eta lambda = 2.0e-04" in text
    assert "this short run (seed 0, one cycle of 2 epochs) ends at 10.00 %" in text and "standard deviations 0.59, 0.60 from step 0" in text and "48.00 %" in text
    assert "With BN the gradients" not in text  # no run at sigma 1e-1 to compare with
    runs = {**fake_traced(), **{key: value for key, value in fake_traced(1e-1).items() if key[2]}}
    runs["3-layer", 1e-1, True][0]["history"]["layers"]["update_ratio"][1] = [3e-4, 2e-3, 5e-3]
    assert inside.why_text(runs).endswith(
        "With BN the gradients at sigma 1e-3 are about those at sigma 1e-1 (6.0e-01, 5.0e-01, 5.0e-01), on weights "
        "100 times smaller: step 90 changed them by 5.0e-02, 2.0e-01, 3.0e-01 of their norm, against 3.0e-04, "
        "2.0e-03, 5.0e-03 at sigma 1e-1: the small weights can grow to a working scale within the first steps.")
    far = fake_traced()
    far["3-layer", 1e-3, False][0]["history"]["layers"]["update_ratio"][1] = [1e-2, 1e-2, 1e-2]
    assert "The L2 term's pull towards zero alone is 2 eta lambda = 2.0e-04" in inside.why_text(far)


def test_the_layer_table_has_a_row_per_followed_run():
    table = inside.layer_table(fake_traced())
    assert [row[0] for row in table.rows] == ["3-layer, sigma 1e-3, no BN", "3-layer, sigma 1e-3, BN"]
    assert table.rows[0][1:] == ["4.0e-02, 2.0e-04", "4.0e-03, 5.0e-04, 3.0e-04",
                                 "2.1e-04, 2.0e-04, 2.2e-04 (step 90)", "10.00 %"]
