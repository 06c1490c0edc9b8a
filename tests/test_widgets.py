import base64
import errno
import math
import re
from dataclasses import replace

import ipywidgets
import pytest

from helpers.report import cache, plots, widgets
from helpers import files
from helpers.errors import ConfigError, DivergedError
from helpers.core.config import TrainConfig
from helpers.core.network import NORMS
from helpers.experiments import run_experiment

TINY = TrainConfig(hidden=(8,), n_batch=10, n_s=2, cycles=1, evals_per_cycle=1)


def shown_png(explorer):
    """The PNG (base64) that the explorer's output area shows."""
    (output,) = explorer.output.outputs
    return output["data"]["image/png"]


def exported(folder):
    return sorted(path.name for path in folder.iterdir())


def test_the_sigma_slider_is_logarithmic_and_reports_on_release(cifar, tmp_path, trainings):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-3)
    slider, menu = explorer.controls.values()
    assert isinstance(slider, ipywidgets.FloatLogSlider) and slider.base == 10
    assert not slider.continuous_update
    assert (slider.min, slider.max) == (-5, 0)
    assert isinstance(menu, ipywidgets.Dropdown) and menu.value == "batch" and tuple(menu.options) == NORMS


def test_moving_the_sigma_slider_trains_redraws_and_moving_back_recalls(cifar, tmp_path, trainings):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-3, norm="batch")
    assert trainings == [replace(TINY, init=1e-3)]
    assert explorer.source == "trained"
    first_png, first_figure = shown_png(explorer), explorer.figure
    assert first_figure.axes[0].get_title() == "sigma = 1.0e-03, BN: cost"

    explorer.controls["sigma"].value = 1e-1  # what the browser does on release
    assert [c.init for c in trainings] == [1e-3, 1e-1]
    assert explorer.source == "trained"
    assert explorer.figure is not first_figure
    assert explorer.figure.axes[0].get_title() == "sigma = 1.0e-01, BN: cost"
    assert shown_png(explorer) != first_png
    assert "trained in" in explorer.status.value

    explorer.controls["sigma"].value = 1e-3
    assert len(trainings) == 2  # recalled, not trained
    assert explorer.source == "cache"
    assert "recalled from the cache" in explorer.status.value
    assert shown_png(explorer) == first_png


def test_the_normalization_menu_trains_the_other_network(cifar, tmp_path, trainings):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-2)
    explorer.controls["norm"].value = "none"
    assert [c.norm for c in trainings] == ["batch", "none"]
    assert explorer.figure.axes[0].get_title() == "sigma = 1.0e-02, no BN: cost"
    explorer.controls["norm"].value = "batch"
    assert len(trainings) == 2 and explorer.source == "cache"


def test_a_run_in_the_cache_is_shown_without_training(cifar, tmp_path, trainings):
    cache.cached_experiment(TINY, cifar, tmp_path)  # lambda 0.005, as the explorer's start
    explorer = widgets.lambda_explorer(cifar, TINY, tmp_path, lam=TINY.lam)
    assert len(trainings) == 1
    assert explorer.source == "cache"
    assert "test accuracy" in explorer.status.value


def test_the_lambda_slider_trains_and_recalls(cifar, tmp_path, trainings):
    explorer = widgets.lambda_explorer(cifar, TINY, tmp_path, lam=1e-3)
    slider = explorer.controls["lam"]
    assert isinstance(slider, ipywidgets.FloatLogSlider) and not slider.continuous_update
    before = shown_png(explorer)
    slider.value = 1e-2
    assert [c.lam for c in trainings] == [1e-3, 1e-2]
    assert explorer.figure.axes[0].get_title() == "lambda = 1.00e-02: cost"
    assert shown_png(explorer) != before
    slider.value = 1e-3
    assert len(trainings) == 2 and explorer.source == "cache"


def test_a_run_that_fails_says_so_and_clears_the_figure(cifar, tmp_path, monkeypatch):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-3)

    def diverging(config, cifar, progress=True):
        raise DivergedError("Training diverged: the cost became nan at step 3.")

    monkeypatch.setattr(cache, "run_experiment", diverging)
    explorer.controls["sigma"].value = 1.0
    assert "failed" in explorer.status.value and "diverged" in explorer.status.value
    assert explorer.output.outputs == () and explorer.figure is None


def test_an_explorer_displays_as_its_widgets_and_as_a_png_of_its_figure(cifar, tmp_path):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path)
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.box.model_id
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert bundle["image/png"] == shown_png(explorer)
    explorer.controls["norm"].value = "none"
    assert explorer._repr_mimebundle_()["image/png"] == shown_png(explorer) != bundle["image/png"]


def test_an_explorer_whose_run_failed_displays_as_its_widgets_alone(cifar, tmp_path, monkeypatch):
    def diverging(config, cifar, progress=True):
        raise DivergedError("Training diverged: the cost became nan at step 3.")

    monkeypatch.setattr(cache, "run_experiment", diverging)
    bundle = widgets.sigma_explorer(cifar, TINY, tmp_path)._repr_mimebundle_()
    assert "image/png" not in bundle and "application/vnd.jupyter.widget-view+json" in bundle


# ------------------------------------------------------------------ titles


def test_the_title_names_the_network_its_settings_and_the_accuracy_shown(cifar, tmp_path):
    explorer = widgets.sigma_explorer(cifar, replace(TINY, hidden=(8, 6)), tmp_path, sigma=1e-2, norm="none")
    title = explorer.figure.get_suptitle()
    accuracy = re.search(r"test accuracy ([0-9.]+ %)", explorer.status.value).group(1)
    assert title == f"3-layer [8, 6], no BN, sigma 1.0e-02, lambda 5.00e-03, 1 cycle: test accuracy {accuracy}"

    explorer = widgets.lambda_explorer(cifar, replace(TINY, cycles=2), tmp_path, lam=2e-3)
    assert explorer.figure.get_suptitle().startswith("2-layer [8], BN, He init, lambda 2.00e-03, 2 cycles: ")


# ------------------------------------------------------------------ export


def test_the_export_button_writes_the_figure_shown_as_png_and_pdf_named_by_its_settings(cifar, tmp_path):
    figures = tmp_path / "figures"
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path / "cache", figures, sigma=1e-3)
    assert explorer.button in explorer.box.children[0].children
    explorer.button.click()
    png, pdf = figures / "slider_2-layer_sigma-1.0e-03_bn.png", figures / "slider_2-layer_sigma-1.0e-03_bn.pdf"
    assert exported(figures) == [pdf.name, png.name]
    assert png.read_bytes() == base64.b64decode(shown_png(explorer))  # the figure shown, to the byte
    assert pdf.read_bytes().startswith(b"%PDF")
    assert f"<code>{png}</code>" in explorer.status.value  # outside the repository: the whole path
    assert "test accuracy" in explorer.status.value  # what is shown is still said

    explorer.controls["norm"].value = "none"
    assert "Exported" not in explorer.status.value  # the note was about the figure before
    explorer.button.click()
    assert len(exported(figures)) == 4 and (figures / "slider_2-layer_sigma-1.0e-03_no-bn.pdf").exists()


def test_exported_names_never_take_a_report_figure_name(cifar, tmp_path):
    figures = tmp_path / "figures"
    for explorer in (widgets.sigma_explorer(cifar, TINY, tmp_path, figures, sigma=1e-5),
                     widgets.lambda_explorer(cifar, TINY, tmp_path, figures, lam=0.02)):
        explorer.button.click()
    assert exported(figures) == ["slider_2-layer_lambda-2.00e-02.pdf", "slider_2-layer_lambda-2.00e-02.png",
                                 "slider_2-layer_sigma-1.0e-05_bn.pdf", "slider_2-layer_sigma-1.0e-05_bn.png"]
    assert not any(re.match(r"\d\d_", name) for name in exported(figures))


def test_the_export_says_where_it_wrote_relative_to_the_repository(cifar, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "REPO", tmp_path.resolve())
    explorer = widgets.lambda_explorer(cifar, TINY, tmp_path / "cache", tmp_path / "figures" / "new", lam=1e-3)
    explorer.button.click()
    assert "Exported to <code>figures/new/slider_2-layer_lambda-1.00e-03.png</code> and <code>.pdf</code>" \
        in explorer.status.value
    assert (tmp_path / "figures" / "new" / "slider_2-layer_lambda-1.00e-03.pdf").exists()


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_exporting_into_a_bad_folder_says_so_in_the_status(cifar, tmp_path, where):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    folder = blocker if where == "a file" else blocker / "figures"
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path / "cache", folder)
    explorer.button.click()  # raises nothing: a traceback would hide the widget's message
    assert "Export failed" in explorer.status.value and "is a file, not a folder" in explorer.status.value
    assert "test accuracy" in explorer.status.value
    assert blocker.read_text() == "a file, not a folder" and not list(tmp_path.rglob("slider_*"))


def test_a_write_that_fails_midway_says_so_in_the_status(cifar, tmp_path, monkeypatch):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path / "cache", tmp_path / "figures")

    def full_disk(fig, name, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plots, "save_figure", full_disk)
    explorer.button.click()
    assert "Export failed" in explorer.status.value and "No space left on device" in explorer.status.value


def test_there_is_nothing_to_export_after_a_failed_run(cifar, tmp_path, monkeypatch):
    def diverging(config, cifar, progress=True):
        raise DivergedError("Training diverged: the cost became nan at step 3.")

    monkeypatch.setattr(cache, "run_experiment", diverging)
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path / "cache", tmp_path / "figures")
    explorer.button.click()
    assert "Nothing to export" in explorer.status.value
    assert not (tmp_path / "figures").exists()


# ------------------------------------------------------------------ the lambda grid


def browser_value(slider, k):
    """The value a browser gives a FloatLogSlider at its k-th position: 10^(min + k step), in floating point."""
    return slider.base ** (slider.min + k * slider.step)


@pytest.mark.parametrize("lam", [0.00299, 0.000715, 1e-5, 0.1])
def test_the_lambda_slider_has_a_position_on_the_lambda_it_started_from(cifar, tmp_path, lam):
    slider = widgets.lambda_explorer(cifar, TINY, tmp_path, lam=lam).controls["lam"]
    position = (math.log10(lam) - slider.min) / slider.step
    assert position == pytest.approx(round(position), abs=1e-6)
    assert -5 - 1e-9 <= slider.min < -5 + slider.step and -1 - slider.step < slider.max <= -1 + 1e-9
    assert slider.value == lam


def test_the_lambda_slider_lands_again_on_the_run_it_started_from(cifar, tmp_path, trainings):
    best = 0.00299  # off the grid 10^(-5 + 0.1 k)
    explorer = widgets.lambda_explorer(cifar, TINY, tmp_path, lam=best)
    slider = explorer.controls["lam"]
    first_png = shown_png(explorer)
    k = round((math.log10(best) - slider.min) / slider.step)
    slider.value = browser_value(slider, k + 3)
    assert len(trainings) == 2 and trainings[1].lam == pytest.approx(best * 10**0.3)
    slider.value = browser_value(slider, k)  # a few ulps from best, as the browser computes it
    assert len(trainings) == 2 and explorer.source == "cache"
    assert explorer.values()["lam"] == best and shown_png(explorer) == first_png
    slider.value = browser_value(slider, k + 3)
    assert len(trainings) == 2 and explorer.source == "cache"


def test_a_slider_that_would_start_outside_its_range_is_refused(cifar, tmp_path, trainings):
    with pytest.raises(ConfigError, match=r"lambda slider starts at 0.5, outside its range \[1e-05, 0.1\]"):
        widgets.lambda_explorer(cifar, TINY, tmp_path, lam=0.5)
    assert trainings == []


# ------------------------------------------------------------------ the histogram scrubber


@pytest.fixture
def traced(cifar):
    """Two tiny runs with per-layer statistics, without and with BN.

    Three hidden layers: constrained layout places some of these figures'
    panels differently on the first draw than on the next ones.
    """
    config = replace(TINY, hidden=(8, 8, 8), evals_per_cycle=2, layer_stats=True)
    return {label: run_experiment(replace(config, norm=norm), cifar, progress=False)[0]
            for label, norm in (("2-hidden, no BN", "none"), ("2-hidden, BN", "batch"))}


def test_the_scrubber_names_its_runs_and_step_and_exports_what_it_shows(traced, tmp_path):
    scrubber = widgets.histogram_scrubber(traced, tmp_path / "figures")
    steps = traced["2-hidden, BN"]["history"]["layers"]["step"]
    scrubber.slider.value = 1
    title = scrubber.figure.get_suptitle()
    assert title.startswith(f"2-hidden, no BN and 2-hidden, BN: evaluation 1 (0 to {len(steps) - 1}), step {steps[1]}")
    assert f"step {steps[1]}" in scrubber.status.value
    scrubber.button.click()
    name = f"slider_histograms_2-hidden_no-bn_and_2-hidden_bn_step_{steps[1]}"
    assert exported(tmp_path / "figures") == [f"{name}.pdf", f"{name}.png"]
    assert (tmp_path / "figures" / f"{name}.png").read_bytes() == base64.b64decode(shown_png(scrubber))
    assert f"{name}.png</code>" in scrubber.status.value
    bundle = scrubber._repr_mimebundle_()
    assert bundle["image/png"] == shown_png(scrubber)
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == scrubber.box.model_id


def test_the_scrubber_exports_the_very_image_it_shows_at_every_evaluation(traced, tmp_path):
    scrubber = widgets.histogram_scrubber(traced, tmp_path)
    for index in range(scrubber.slider.max + 1):
        scrubber.slider.value = index
        scrubber.button.click()
        (png,) = [path for path in tmp_path.glob("*.png") if path.stem.endswith(f"_step_{scrubber.steps()[0]}")]
        assert png.read_bytes() == base64.b64decode(shown_png(scrubber)), f"evaluation {index}"
        assert scrubber._repr_mimebundle_()["image/png"] == shown_png(scrubber)
