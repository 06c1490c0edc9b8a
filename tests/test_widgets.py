from dataclasses import replace

import ipywidgets
import pytest

from helpers.report import cache, widgets
from helpers.errors import DivergedError
from helpers.core.training import TrainConfig

TINY = TrainConfig(hidden=(8,), n_batch=10, n_s=2, cycles=1, evals_per_cycle=1)




def shown_png(explorer):
    """The PNG (base64) that the explorer's output area shows."""
    (output,) = explorer.output.outputs
    return output["data"]["image/png"]


def test_the_sigma_slider_is_logarithmic_and_reports_on_release(cifar, tmp_path, trainings):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-3)
    slider, toggle = explorer.controls.values()
    assert isinstance(slider, ipywidgets.FloatLogSlider) and slider.base == 10
    assert not slider.continuous_update
    assert (slider.min, slider.max) == (-5, 0)
    assert isinstance(toggle, ipywidgets.Checkbox) and toggle.value is True


def test_moving_the_sigma_slider_trains_redraws_and_moving_back_recalls(cifar, tmp_path, trainings):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-3, batch_norm=True)
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


def test_the_batch_norm_toggle_trains_the_other_network(cifar, tmp_path, trainings):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path, sigma=1e-2)
    explorer.controls["batch_norm"].value = False
    assert [c.batch_norm for c in trainings] == [True, False]
    assert explorer.figure.axes[0].get_title() == "sigma = 1.0e-02, no BN: cost"
    explorer.controls["batch_norm"].value = True
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
    assert explorer.output.outputs == ()


def test_an_explorer_displays_as_its_widgets(cifar, tmp_path):
    explorer = widgets.sigma_explorer(cifar, TINY, tmp_path)
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.box.model_id
