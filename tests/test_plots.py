import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers.report import plots


def fake_run(test_accuracy=0.5, steps=(0, 10, 20), shift=0.0):
    """A run summary with just what the figures read."""
    n = len(steps)
    history = {"step": list(steps)}
    for part in ("train", "val"):
        history[f"{part}_cost"] = list(np.linspace(3, 2, n) + shift)
        history[f"{part}_loss"] = list(np.linspace(2.5, 1.5, n) + shift)
        history[f"{part}_accuracy"] = list(np.linspace(0.1, 0.5, n))
    return {"test_accuracy": test_accuracy, "history": history}


def test_curves_figure_has_a_row_of_cost_loss_accuracy_per_run():
    runs = {"no BN": fake_run(0.5337), "BN": fake_run(0.4971, shift=0.1)}
    fig = plots.curves_figure(runs, "3-layer")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["no BN: cost", "no BN: loss", "no BN: accuracy"]
    assert [t.get_text() for t in axes[5].get_legend().get_texts()] == ["test: 49.71 %"]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["training", "validation", "test, the final network"]
    train, val = axes[4].get_lines()
    np.testing.assert_allclose(train.get_ydata(), runs["BN"]["history"]["train_loss"])
    np.testing.assert_allclose(axes[2].get_lines()[1].get_ydata(), [10, 30, 50])  # accuracies in percent
    np.testing.assert_allclose(axes[2].get_lines()[2].get_ydata(), [53.37, 53.37])
    assert fig.get_suptitle() == "3-layer"


def test_the_test_line_of_runs_measured_with_mirror_tta_says_so():
    runs = [{**fake_run(0.6), "config": {"tta": True, "seed": 0}}, {**fake_run(0.62), "config": {"tta": True, "seed": 1}}]
    (legend,) = plots.curves_figure({"best": runs}).legends
    assert legend.get_texts()[-1].get_text() == "test, the final network with mirror TTA"
    runs[1]["config"]["tta"] = False
    (legend,) = plots.curves_figure({"best": runs}).legends
    assert legend.get_texts()[-1].get_text() == "test, the final network"


def test_the_rows_of_the_curves_figure_share_the_y_axis_of_each_quantity_and_every_axis_is_labelled():
    runs = {"no BN": fake_run(), "BN": fake_run(shift=1.0)}  # BN's cost and loss 1 higher: its own limits would differ
    top, bottom = np.array(plots.curves_figure(runs).axes).reshape(2, 3)
    for above, below in zip(top, bottom):
        assert above.get_ylim() == below.get_ylim()
        assert above.get_shared_y_axes().joined(above, below)
    assert top[1].get_ylim() != top[2].get_ylim()  # loss and accuracy are not on one axis
    assert [ax.get_ylabel() for ax in top] == [ax.get_ylabel() for ax in bottom] == [
        "cost (loss + L2 term)", "loss (cross-entropy)", "accuracy (%)"]
    assert [ax.get_xlabel() for ax in bottom] == ["update step"] * 3


def test_a_cost_that_starts_far_above_where_it_ends_can_go_on_a_log_axis_that_says_so():
    run = fake_run(steps=(0, 10, 20, 30))
    run["history"]["train_cost"][0] = run["history"]["val_cost"][0] = 10.0  # as notebook 06's wide layers
    cost, loss, accuracy = plots.curves_figure({"best": run}, log_cost=True).axes
    assert cost.get_yscale() == "log" and cost.get_ylabel().endswith("log scale")
    assert loss.get_yscale() == accuracy.get_yscale() == "linear"
    assert plots.curves_figure({"best": run}).axes[0].get_yscale() == "linear"


def seeds(*tests):
    """Fake runs of one configuration over seeds 0, 1, ...: the curves shifted by 0.1 per seed."""
    return [{**fake_run(test, shift=0.1 * i), "config": {"seed": i}} for i, test in enumerate(tests)]


def test_over_seeds_the_first_seed_is_drawn_with_a_band_over_all_seeds():
    fig = plots.curves_figure({"BN": seeds(0.52, 0.53, 0.54)})
    loss = fig.axes[1]
    train = loss.get_lines()[0]
    np.testing.assert_allclose(train.get_ydata(), seeds(0.52)[0]["history"]["train_loss"])
    band = loss.collections[0].get_paths()[0].vertices[:, 1]
    lowest, highest = np.linspace(2.5, 1.5, 3), np.linspace(2.5, 1.5, 3) + 0.2
    assert np.isclose(band.min(), lowest.min()) and np.isclose(band.max(), highest.max())
    assert len(loss.collections) == 2  # one band for training, one for validation
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["test: 53.00 ± 1.00 %"]
    assert fig.legends[0].get_title().get_text() == "seed 0, band: min to max of 3 seeds"
    np.testing.assert_allclose(fig.axes[2].get_lines()[2].get_ydata(), [53.0, 53.0])


def test_a_single_run_has_no_band():
    fig = plots.curves_figure({"BN": fake_run()})
    assert all(not ax.collections for ax in fig.axes)
    assert fig.legends[0].get_title().get_text() == ""


def test_sensitivity_figure_draws_every_seed_and_counts_the_seeds_that_learn():
    stuck, learns = seeds(0.10)[0], {**fake_run(0.40, shift=-0.5), "config": {"seed": 1}}
    for part in ("train", "val"):
        stuck["history"][f"{part}_loss"] = [2.3026, 2.3031, 2.3024]  # at chance: the noise of one seed
    fig = plots.sensitivity_figure({(1e-3, False): [stuck, learns], (1e-3, True): seeds(0.53, 0.53)})
    no_bn, bn = fig.axes
    assert no_bn.get_title() == "sigma = 0.001, no BN\ntest 25.00 ± 21.21 %; 1 of 2 seeds learn"
    assert bn.get_title() == "sigma = 0.001, BN\ntest 53.00 ± 0.00 %; 2 of 2 seeds learn"
    assert len(no_bn.get_lines()) == 4  # training and validation of each seed
    drawn = [list(line.get_ydata()) for line in no_bn.get_lines()]
    assert stuck["history"]["val_loss"] in drawn and learns["history"]["val_loss"] in drawn
    assert not no_bn.collections  # lines, no band that hides which seed went where
    assert fig.legends[0].get_title().get_text() == "one line per seed, 2 seeds"


def test_every_panel_of_the_sensitivity_figure_is_on_the_same_y_axis():
    runs = {(s, bn): fake_run(0.5, shift=s + bn) for s in (1e-1, 1e-4) for bn in (False, True)}
    for part in ("train", "val"):
        runs[1e-4, False]["history"][f"{part}_loss"] = [2.3026, 2.3031, 2.3024]  # its own axis would magnify this
    fig = plots.sensitivity_figure(runs)
    limits = {ax.get_ylim() for ax in fig.axes}
    assert len(limits) == 1
    low, high = limits.pop()
    assert high - low > 1
    assert all(ax.get_ylabel() == "loss (cross-entropy)" for ax in fig.axes)
    assert [ax.get_xlabel() for ax in fig.axes[2:]] == ["update step"] * 2


def test_sensitivity_figure_is_a_grid_of_sigma_by_batch_norm():
    runs = {(s, bn): fake_run(0.1 if s < 0.01 and not bn else 0.5) for s in (1e-1, 1e-3, 1e-4) for bn in (False, True)}
    fig = plots.sensitivity_figure(runs)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["sigma = 0.1, no BN\ntest 50.00 %", "sigma = 0.1, BN\ntest 50.00 %"]
    assert titles[4] == "sigma = 0.0001, no BN\ntest 10.00 %"
    assert len(fig.axes) == 6


def test_sensitivity_figure_leaves_a_missing_run_blank():
    fig = plots.sensitivity_figure({(1e-1, True): fake_run()})
    no_bn, bn = fig.axes
    assert not no_bn.axison and bn.get_title().startswith("sigma = 0.1, BN")


def search_results(seeds=1):
    """A search summary with what the figure reads: the stages and every judged lambda, in the order drawn."""
    std = 0.01 if seeds > 1 else None
    per_lambda = [
        {"stage": 1, "lam": 1e-4, "val_accuracy": 0.40, "val_accuracy_std": std},
        {"stage": 1, "lam": 1e-2, "val_accuracy": 0.45, "val_accuracy_std": std},
        {"stage": 2, "lam": 5e-3, "val_accuracy": 0.47, "val_accuracy_std": std},
        {"stage": 2, "lam": 2e-2, "val_accuracy": 0.46, "val_accuracy_std": std},
    ]
    return {
        "config": {"seeds": seeds},
        "per_lambda": per_lambda,
        "stages": [
            {"stage": 1, "lam_range": [1e-5, 1e-1], "lams": [1e-4, 1e-2], "best": per_lambda[1]},
            {"stage": 2, "lam_range": [1e-3, 1e-1], "lams": [5e-3, 2e-2], "best": per_lambda[2]},
        ],
    }


def test_search_figure_draws_each_stage_and_stars_its_best():
    fig = plots.search_figure(search_results())
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    points = [c.get_offsets() for c in ax.collections]
    assert len(points) == 4  # per stage: its lambdas, then its star
    np.testing.assert_allclose(points[0], [[1e-4, 40], [1e-2, 45]])
    np.testing.assert_allclose(points[1], [[1e-2, 45]])
    np.testing.assert_allclose(points[2], [[5e-3, 47], [2e-2, 46]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "stage 1: 2 lambdas in [1.0e-05, 1.0e-01]", "stage 2: 2 lambdas in [1.0e-03, 1.0e-01]"]
    assert ax.get_ylabel() == "validation accuracy (%)"


def test_a_search_over_seeds_draws_means_with_bars_of_one_std():
    fig = plots.search_figure(search_results(seeds=3), "averaged")
    (ax,) = fig.axes
    first, second = ax.containers  # one errorbar per stage
    means, _, (bars,) = first
    np.testing.assert_allclose(np.asarray(means.get_ydata(), dtype=float), [40, 45])
    np.testing.assert_allclose([segment[:, 1] for segment in bars.get_segments()], [[39, 41], [44, 46]])
    np.testing.assert_allclose(np.asarray(second[0].get_ydata(), dtype=float), [47, 46])
    assert ax.get_ylabel() == "validation accuracy, mean of 3 seeds (%)" and ax.get_title() == "averaged"


def test_gradcheck_figure_draws_dots_on_a_shared_log_axis_and_leaves_out_the_unused_parameters():
    errors = {"W1": 1e-9, "b1": 0.0, "gamma1": 2e-9, "beta1": 3e-9, "W2": 1e-9, "b2": 1e-9}
    result = {"title": "case", "errors": {"centered": errors, "forward": {k: 1e3 * v for k, v in errors.items()}},
              "seconds": {"centered": 1.0, "forward": 0.5}, "unused": ["b1"]}
    fig = plots.gradcheck_figure([result, {**result, "errors": {m: {k: 10 * v for k, v in e.items()}
                                                              for m, e in result["errors"].items()}}])
    ax, other = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["W1", "gamma1", "beta1", "W2", "b2"]
    assert ax.get_yscale() == "log" and ax.get_ylim() == other.get_ylim()
    assert not ax.patches and not ax.containers  # no bars: on a log axis their length means nothing
    centered, forward = ax.get_lines()
    assert centered.get_linestyle() == "None" and centered.get_marker() == "o"
    np.testing.assert_allclose(forward.get_ydata(), [1e-6, 2e-6, 3e-6, 1e-6, 1e-6])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["centered differences", "forward differences"]
    assert ax.get_ylabel() == "relative error" and other.get_xlabel() == "parameter"
    faster = {**result, "seconds": {"centered": 0.1, "forward": 0.05}}
    assert plots.figure_bytes(plots.gradcheck_figure([faster]), "pdf") == plots.figure_bytes(
        plots.gradcheck_figure([result]), "pdf")


def test_a_title_says_the_settings_in_words_and_fits_a_page():
    title = plots.settings_title("The best model", [("hidden", (1024, 512, 256)), ("lam", 0.002), ("n_s", 4500),
                                                    ("cycles", 4), ("dropout", 0.2), ("flip", True),
                                                    ("translate", 2), ("tta", True), ("precise_bn", 20)])
    assert title.replace("\n", " ") == (
        "The best model: hidden layers [1024, 512, 256], lambda 0.002, 4,500 steps per half cycle, 4 cycles,"
        " dropout 0.2, horizontal flips, translations by up to 2 pixels, mirror TTA, precise_bn = 20")
    assert all(len(line) <= 95 for line in title.split("\n"))


@pytest.mark.parametrize("make", [
    lambda: plots.curves_figure({"no BN": fake_run(), "BN": fake_run()}, "title"),
    lambda: plots.sensitivity_figure({(1e-3, False): fake_run(), (1e-3, True): fake_run()}),
    lambda: plots.search_figure(search_results()),
])
def test_every_figure_is_drawn_at_the_width_of_a_page(make):
    width, height = make().get_size_inches()
    assert width == plots.PAGE_WIDTH and height < 9


def figures():
    return {
        "curves": lambda: plots.curves_figure({"BN": fake_run()}, "title"),
        "sensitivity": lambda: plots.sensitivity_figure({(1e-3, False): fake_run(), (1e-3, True): fake_run()}),
        "search": lambda: plots.search_figure(search_results()),
        "search over seeds": lambda: plots.search_figure(search_results(seeds=2)),
    }


@pytest.mark.parametrize("kind", ["curves", "sensitivity", "search", "search over seeds"])
def test_saving_gives_the_same_bytes_every_time(kind, tmp_path):
    make = figures()[kind]
    png, pdf = plots.save_figure(make(), "figure", tmp_path / "a")
    first = png.read_bytes(), pdf.read_bytes()
    plots.save_figure(make(), "figure", tmp_path / "b")  # a new figure with the same content
    fig = make()
    plots.save_figure(fig, "figure", tmp_path / "a")  # overwriting
    plots.save_figure(fig, "figure", tmp_path / "a")  # the same figure again
    for folder in ("a", "b"):
        assert (tmp_path / folder / "figure.png").read_bytes() == first[0]
        assert (tmp_path / folder / "figure.pdf").read_bytes() == first[1]
    assert first[0].startswith(b"\x89PNG") and first[1].startswith(b"%PDF")
    assert b"Software" not in first[0] and b"CreationDate" not in first[1]


def test_save_figure_names_the_files_after_the_figure(tmp_path):
    paths = plots.save_figure(plots.curves_figure({"BN": fake_run()}), "02_three_layer_curves", tmp_path / "new")
    assert [p.name for p in paths] == ["02_three_layer_curves.png", "02_three_layer_curves.pdf"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["02_three_layer_curves.pdf",
                                                                     "02_three_layer_curves.png"]


def test_different_content_gives_different_bytes():
    a = plots.figure_bytes(plots.curves_figure({"BN": fake_run(0.5)}), "png")
    b = plots.figure_bytes(plots.curves_figure({"BN": fake_run(0.6)}), "png")
    assert a != b


def test_the_style_does_not_leak_into_global_settings():
    import matplotlib

    before = dict(matplotlib.rcParams)
    plots.curves_figure({"BN": fake_run()})
    assert dict(matplotlib.rcParams) == before
