"""TrainConfig.layer_stats: the per-layer statistics of helpers.core.probe, their figures and their slider."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import ipywidgets
import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers import cli
from helpers.core import layers, probe, training
from helpers.core.network import cost_and_gradients, forward_backward, init_network
from helpers.core.config import TrainConfig
from helpers.core.training import train
from helpers.errors import ConfigError
from helpers.experiments import run_experiment
from helpers.report import cache, layer_plots, widgets
from conftest import WorkStarted

ROOT = Path(__file__).resolve().parent.parent
TOY = dict(hidden=(16, 16), n_batch=20, n_s=50, cycles=1, evals_per_cycle=5)
TINY = TrainConfig(hidden=(8, 8), n_batch=10, n_s=2, cycles=1, evals_per_cycle=2, layer_stats=True)


def blobs(n, d=20, k=4, seed=0, dtype=np.float32):
    """A learnable toy problem: k Gaussian clusters in d dimensions."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((k, d)) * 2
    y = rng.integers(0, k, n)
    return SimpleNamespace(X=(centers[y] + rng.standard_normal((n, d))).astype(dtype), y=y)


def direct_stats(net, X):
    """The statistics of every hidden layer, computed afresh with the layers of layers.py."""
    out = {name: [] for name in ("pre_mean", "pre_std", "post_mean", "post_std", "act_std", "dead", "hist")}
    p, H = net.params, X
    for l in range(1, net.n_layers):
        S, _ = layers.linear_forward(H, p[f"W{l}"], p[f"b{l}"])
        out["pre_mean"].append(S.mean())
        out["pre_std"].append(S.std())
        relu_input = S
        if net.norm == "batch":
            relu_input, _ = layers.batchnorm_forward(S, p[f"gamma{l}"], p[f"beta{l}"])
            out["post_mean"].append(relu_input.mean())
            out["post_std"].append(relu_input.std())
        H, _ = layers.relu_forward(relu_input)
        out["act_std"].append(H.std())
        out["dead"].append(np.mean([not H[:, j].any() for j in range(H.shape[1])]))
        r = np.abs(relu_input).max()
        out["hist"].append(np.histogram(relu_input, bins=40, range=(-r, r)))
    return out


DEPTHS = {3: [12, 10, 9, 4], 9: [12, 10, 9, 8, 8, 7, 7, 6, 6, 4]}


@pytest.mark.parametrize("depth", sorted(DEPTHS))
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_the_statistics_are_those_of_the_layers_computed_directly(depth, norm):
    rng = np.random.default_rng(1)
    net = init_network(DEPTHS[depth], norm, seed=2, dtype=np.float64)
    for name, value in net.params.items():  # every parameter away from its initial value, biases included
        if not name.startswith("W"):
            value += 0.3 * rng.standard_normal(value.shape)
    X, y = rng.standard_normal((30, 12)), rng.integers(0, 4, 30)
    if norm == "batch":  # BN leaves the hidden biases out, and so does its reference
        for l in range(1, depth):
            net.params[f"b{l}"][...] = 0
    stats = probe.layer_stats(net, X, y, lam=0.01)
    expected = direct_stats(net, X)
    for name in ("pre_mean", "pre_std", "act_std", "dead"):
        assert stats[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-15), name
    if norm == "batch":
        assert stats["post_mean"] == pytest.approx(expected["post_mean"], rel=1e-12, abs=1e-15)
        assert stats["post_std"] == pytest.approx(expected["post_std"], rel=1e-12)
    else:
        assert stats["post_mean"] is None and stats["post_std"] is None
    for counts, edges, (want_counts, want_edges) in zip(stats["hist_counts"], stats["hist_edges"], expected["hist"]):
        assert counts == want_counts.tolist()
        assert edges == pytest.approx(want_edges.tolist(), rel=1e-12)
        assert len(counts) == probe.HISTOGRAM_BINS
    # Each range holds its layer's every value: n images x m_l units.
    assert [sum(counts) for counts in stats["hist_counts"]] == [30 * m for m in DEPTHS[depth][1:-1]]
    _, grads = cost_and_gradients(net, X, y, 0.01)
    assert stats["grad_norm"] == pytest.approx([np.linalg.norm(grads[f"W{l}"]) for l in range(1, depth + 1)],
                                               rel=1e-12)
    assert len(stats["pre_mean"]) == depth - 1 and len(stats["grad_norm"]) == depth
    assert stats["update_ratio"] is None  # no step was made


def test_with_bn_after_the_relu_the_statistics_after_bn_are_those_of_bn_of_the_relu_output():
    rng = np.random.default_rng(3)
    net = init_network([12, 10, 9, 4], seed=2, dtype=np.float64, norm_place="after")
    for name, value in net.params.items():
        if not name.startswith("W"):
            value += 0.3 * rng.standard_normal(value.shape)
    X, y = rng.standard_normal((30, 12)), rng.integers(0, 4, 30)
    stats = probe.layer_stats(net, X, y, lam=0.01)
    p, H = net.params, X
    for l in (1, 2):
        S, _ = layers.linear_forward(H, p[f"W{l}"], p[f"b{l}"])
        H, _ = layers.batchnorm_forward(np.maximum(S, 0), p[f"gamma{l}"], p[f"beta{l}"])
        assert stats["pre_std"][l - 1] == pytest.approx(S.std(), rel=1e-12)
        assert stats["post_mean"][l - 1] == pytest.approx(H.mean(), rel=1e-12)
        assert stats["post_std"][l - 1] == pytest.approx(H.std(), rel=1e-12)
        assert stats["act_std"][l - 1] == pytest.approx(H.std(), rel=1e-12)
        assert stats["hist_edges"][l - 1][-1] == pytest.approx(np.abs(S).max(), rel=1e-12)  # the ReLU's input: S


def test_a_unit_is_dead_only_if_it_is_zero_for_every_image():
    net = init_network([3, 4, 2], norm="none", dtype=np.float64)
    X = np.array([[5.0, 1.0, 1.0], [0.1, 1.0, 1.0], [0.2, 2.0, 1.0]])
    net.params["W1"][...] = np.array([[-1.0, 1.0, 0.0, 1.0],
                                      [-1.0, 1.0, 0.0, 0.0],
                                      [-1.0, 1.0, 0.0, 0.0]])
    # Unit 1 negative for every image; unit 2 positive; unit 3 exactly zero (the ReLU's output is 0 too);
    # unit 4 positive for the first image only, alive.
    net.params["b1"][...] = [0.0, 0.0, 0.0, -1.0]
    stats = probe.layer_stats(net, X, np.array([0, 1, 0]), lam=0.0)
    assert stats["dead"] == [0.5]


def test_layer_stats_are_off_by_default():
    assert TrainConfig().layer_stats is False
    result = train(TrainConfig(**TOY), blobs(300), blobs(100, seed=1), progress=False)
    assert "layers" not in result.history


@pytest.mark.parametrize("options", [
    {},  # the fast path
    {"textbook": True},
    {"dropout": 0.3, "optimizer": "adam", "eta_max": 0.01},  # the probe's dropout masks must not take the training's
    {"norm": "none"},
])
def test_training_is_bit_for_bit_the_same_with_layer_stats_on(options):
    runs = [train(TrainConfig(**TOY, **options, layer_stats=on), blobs(300), blobs(100, seed=1), progress=False)
            for on in (False, True)]
    off, on = runs
    layers_history = on.history.pop("layers")
    assert on.history == off.history
    assert np.array_equal(on.etas, off.etas)
    for name in off.net.params:
        assert np.array_equal(on.net.params[name], off.net.params[name]), name
    for name in off.net.running:
        assert np.array_equal(on.net.running[name], off.net.running[name]), name
    assert layers_history["step"] == off.history["step"] == [0, 20, 40, 60, 80, 100]


def test_the_history_holds_one_entry_per_evaluation_measured_on_the_first_n_batch_images():
    data = blobs(300, dtype=np.float64)
    config = TrainConfig(**TOY, layer_stats=True)
    first = init_network([20, 16, 16, 4], seed=config.seed, dtype=np.float64)  # what train() starts from
    result = train(config, data, blobs(100, seed=1, dtype=np.float64), progress=False)
    h = result.history["layers"]
    assert h["step"] == result.history["step"]
    assert set(h) == {"step", "hist_counts", "hist_edges", *probe.STATS}
    assert all(len(values) == len(h["step"]) for values in h.values())
    expected = probe.layer_stats(first, data.X[: config.n_batch], data.y[: config.n_batch], config.lam)
    assert {name: values[0] for name, values in h.items() if name != "step"} == expected
    final = probe.layer_stats(result.net, data.X[: config.n_batch], data.y[: config.n_batch], config.lam)
    assert h["pre_std"][-1] == final["pre_std"] and h["grad_norm"][-1] == final["grad_norm"]


@pytest.mark.parametrize("optimizer, eta_max, evals_per_cycle", [
    ("sgd", 0.1, 10),  # the fast path, an evaluation after every step
    ("sgd", 0.1, 3),  # evaluations every 3 steps: the ratio is of the last step only
    ("adam", 0.01, 10),
    ("momentum", 0.05, 3),
])
def test_the_update_ratio_is_the_weight_change_of_the_last_step(monkeypatch, optimizer, eta_max, evals_per_cycle):
    """The weights before every step are taken by a spy around the step, apart from the probe's own copies."""
    before_each_step = []
    real_make_step = training.make_step

    def spying_make_step(net, config):
        step = real_make_step(net, config)

        def spy(X, y, eta):
            before_each_step.append([net.params[f"W{l}"].copy() for l in range(1, net.n_layers + 1)])
            return step(X, y, eta)

        return spy

    monkeypatch.setattr(training, "make_step", spying_make_step)
    config = TrainConfig(hidden=(16, 16), n_batch=20, n_s=5, cycles=1, evals_per_cycle=evals_per_cycle,
                         optimizer=optimizer, eta_max=eta_max, layer_stats=True)
    result = train(config, blobs(300, dtype=np.float64), blobs(100, seed=1, dtype=np.float64), progress=False)
    after_last = [result.net.params[f"W{l}"] for l in range(1, 4)]
    h = result.history["layers"]
    assert h["update_ratio"][0] is None
    assert len(h["step"]) > 3
    for step, ratios in zip(h["step"][1:], h["update_ratio"][1:]):
        before = before_each_step[step - 1]
        after = before_each_step[step] if step < result.steps else after_last
        expected = [np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(after, before)]
        assert ratios == pytest.approx(expected, rel=1e-12)
        assert min(ratios) > 0


def test_the_histograms_of_a_network_without_bn_at_sigma_1e4_are_still_spread_over_their_bins():
    data = blobs(100, d=50, dtype=np.float32)
    net = init_network([50, 50, 30, 20, 20, 10, 10, 10, 10, 4], norm="none", init=1e-4, dtype=np.float32)
    stats = probe.layer_stats(net, data.X, data.y, lam=0.005)
    deepest = stats["hist_counts"][-1], stats["hist_edges"][-1]
    assert deepest[1][-1] < 1e-20  # the values have all but vanished ...
    # ... their squares underflow in float32, not in the statistics ...
    assert min(stats["pre_std"]) > 0 and min(stats["act_std"]) > 0 and min(stats["grad_norm"]) > 0
    last_input = data.X @ net.params["W1"]
    for l in range(2, 9):
        last_input = np.maximum(last_input, 0) @ net.params[f"W{l}"]
    assert stats["pre_std"][-1] == pytest.approx(last_input.astype(np.float64).std(), rel=1e-5)
    assert sum(count > 0 for count in deepest[0]) >= 5  # ... and still fill the bins of their own range
    assert deepest[1][0] == -deepest[1][-1]


def test_the_statistics_survive_the_summary_and_the_cache_as_json(cifar, tmp_path):
    summary, result = run_experiment(TINY, cifar, progress=False)
    layers_history = result.history["layers"]
    assert summary["history"]["layers"] == layers_history
    assert json.loads(json.dumps(summary, allow_nan=False))["history"]["layers"] == layers_history
    cache.cached_experiment(TINY, cifar, tmp_path, progress=False)  # trained again, and stored
    recalled = cache.lookup(TINY, cifar, tmp_path)
    assert recalled is not None and recalled["history"]["layers"] == layers_history


def test_the_cli_flag_turns_the_statistics_on(fake_cifar, monkeypatch):
    configs = []

    def capture(config, cifar):
        configs.append(config)
        raise WorkStarted("run_experiment")

    monkeypatch.setattr(cli, "run_experiment", capture)
    for flag in ([], ["--layer-stats"]):
        with pytest.raises(WorkStarted):
            cli.main(["train", "--data-dir", str(fake_cifar), "--split", "small", "--n-batch", "10", *flag])
    assert [c.layer_stats for c in configs] == [False, True]


# ------------------------------------------------------------ figures and slider


@pytest.fixture
def runs(cifar):
    """Two tiny runs with statistics: with BN and without."""
    return {label: run_experiment(replace(TINY, norm=bn), cifar, progress=False)[0]
            for label, bn in (("BN", "batch"), ("no BN", "none"))}


@pytest.mark.parametrize("stat", list(probe.STATS))
def test_the_curves_figure_has_a_panel_per_run_and_a_line_per_layer(runs, stat):
    fig = layer_plots.layer_curves_figure(runs, stat, title="tiny")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    bn, no_bn = fig.axes
    assert bn.get_title() == "BN" and no_bn.get_title() == "no BN"
    layers_bn = 3 if stat in ("grad_norm", "update_ratio") else 2
    assert len(bn.lines) == layers_bn
    assert list(bn.lines[0].get_xdata()) == runs["BN"]["history"]["layers"]["step"]
    assert bn.get_yscale() == ("log" if stat in probe.LOG_STATS else "linear")
    assert bn.get_shared_y_axes().joined(bn, no_bn)
    assert fig.get_supylabel() == probe.STATS[stat]
    assert bn.get_xlabel() == no_bn.get_xlabel() == "update step"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [f"layer {j + 1}" for j in range(layers_bn)]
    if not stat.startswith("post"):
        assert len({(line.get_color(), line.get_linestyle()) for line in bn.lines}) == layers_bn
    if stat.startswith("post"):
        assert not no_bn.lines and "no batch normalization" in no_bn.texts[0].get_text()
    else:
        assert len(no_bn.lines) == layers_bn


def test_the_nine_layers_differ_in_colour_and_neighbours_in_line_style_too():
    styles = layer_plots.layer_styles(9)
    colors = [matplotlib.colors.to_hex(color) for color, _ in styles]
    assert len(set(colors)) == 9 and matplotlib.colors.to_hex("C7") not in colors  # grey is the grid's
    assert all(a[1] != b[1] for a, b in zip(styles, styles[1:]))


def test_the_curves_figure_refuses_an_unknown_statistic_or_a_run_without_statistics(runs):
    with pytest.raises(ConfigError, match="hist_counts.*one of"):
        layer_plots.layer_curves_figure(runs, "hist_counts")
    plain = {**runs["BN"], "history": {k: v for k, v in runs["BN"]["history"].items() if k != "layers"}}
    with pytest.raises(ConfigError, match="'plain'.*layer_stats"):
        layer_plots.layer_curves_figure({"plain": plain}, "act_std")


def test_the_histogram_figure_has_a_column_per_run_and_a_row_per_hidden_layer(runs):
    fig = layer_plots.histogram_figure(runs, 1)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 2
    step = runs["BN"]["history"]["layers"]["step"][1]
    assert f"step {step}" in fig.axes[0].get_title()
    assert fig.axes[0].get_title().startswith("BN") and fig.axes[1].get_title().startswith("no BN")
    edges = runs["BN"]["history"]["layers"]["hist_edges"][1][0]
    assert fig.axes[0].patches  # the histogram, drawn as one patch
    assert fig.axes[0].get_xlim() == pytest.approx((edges[0], edges[-1]))
    assert "ReLU's input" in fig.get_supxlabel() and "number of values" in fig.get_supylabel()
    assert fig.axes[0].get_ylabel() == "layer 1"


def test_the_histograms_of_eight_hidden_layers_fit_a_page():
    layers = {"step": [0], "hist_counts": [[np.ones(10)] * 8], "hist_edges": [[np.linspace(-1, 1, 11)] * 8]}
    run = {"history": {"layers": layers}}
    fig = layer_plots.histogram_figure({"no BN": run, "BN": run}, 0)
    assert len(fig.axes) == 16
    width, height = fig.get_size_inches()
    assert width <= 6.5 and height <= 9


def test_the_histogram_figure_refuses_an_index_out_of_range(runs):
    n = len(runs["BN"]["history"]["layers"]["step"])
    layer_plots.histogram_figure(runs, -1)  # the last evaluation, as Python counts
    with pytest.raises(ConfigError, match=f"index {n}.*{n} evaluations"):
        layer_plots.histogram_figure(runs, n)


def shown_png(scrubber):
    (output,) = scrubber.output.outputs
    return output["data"]["image/png"]


def test_the_scrubber_redraws_the_histograms_when_the_slider_moves(runs):
    scrubber = widgets.histogram_scrubber(runs)
    slider = scrubber.slider
    assert isinstance(slider, ipywidgets.IntSlider) and slider.description == "evaluation"
    steps = runs["BN"]["history"]["layers"]["step"]
    assert (slider.min, slider.max, slider.value) == (0, len(steps) - 1, 0)
    first_png, first_figure = shown_png(scrubber), scrubber.figure
    assert f"step {steps[0]}" in first_figure.axes[0].get_title()
    slider.value = len(steps) - 1  # what the browser does on release
    assert scrubber.figure is not first_figure
    assert f"step {steps[-1]}" in scrubber.figure.axes[0].get_title()
    assert shown_png(scrubber) != first_png
    bundle = scrubber._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == scrubber.box.model_id


# ------------------------------------------------------------------ benchmark


def test_the_layer_stats_benchmark_runs_and_its_ratios_add_up(cifar_dir, tmp_path):
    out = tmp_path / "layer_stats.json"
    args = [sys.executable, "benchmarks/layer_stats.py", "--steps", "20", "--rounds", "2", "--split", "small",
            "--data-dir", str(cifar_dir), "--out", str(out)]
    printed = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600).stdout
    results = json.loads(out.read_text())
    assert results["blas"] and "BLAS" in printed
    assert set(results["networks"]) == {"3-layer BN", "9-layer BN"}
    for name, row in results["networks"].items():
        assert name in printed
        assert len(row["seconds_without"]) == len(row["seconds_with"]) == 2
        assert min(row["seconds_without"] + row["seconds_with"]) > 0
        assert row["ratio"] == pytest.approx(np.median(row["seconds_with"]) / np.median(row["seconds_without"]))
        assert row["best_ratio"] == pytest.approx(min(row["seconds_with"]) / min(row["seconds_without"]))
        assert row["stats_alone_ms_per_evaluation"] > 0
        assert row["stats_alone_share"] == pytest.approx(
            row["evaluations"] * row["stats_alone_ms_per_evaluation"] / (1000 * min(row["seconds_without"])))
        assert row["evaluations"] == 11
        assert f"ratio {row['ratio']:.3f}" in printed


def test_the_gradient_norms_are_of_the_loss_the_run_trains_on_label_smoothing_included():
    net = init_network([12, 8, 6, 5], "batch", seed=1, dtype=np.float64)
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((30, 12)), rng.integers(0, 5, 30)
    smoothed = probe.layer_stats(net, X, y, 0.01, smoothing=0.2)["grad_norm"]
    _, _, grads, _ = forward_backward(net, X, y, 0.01, smoothing=0.2)
    assert smoothed == pytest.approx([np.linalg.norm(grads[f"W{l}"]) for l in range(1, 4)], rel=1e-12)
    assert smoothed != pytest.approx(probe.layer_stats(net, X, y, 0.01)["grad_norm"], rel=1e-6)
