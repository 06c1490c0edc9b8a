"""Sliders that train a model, or recall it from the cache, and plot its curves;
and a slider that scrubs through the histograms of runs already made.

An Explorer is a row of controls, a status line, an area for the progress
bar and one for the figure. When a control is released (continuous_update is
off, so dragging does not start a run per pixel), `update` builds the
TrainConfig of the chosen values, recalls its run from helpers.report.cache or
trains it, showing the progress bar meanwhile, and draws the run's curves.

update is a plain method, and the figure is put into its output area as a
PNG by setting the area's outputs: the same code runs in a kernel and in a
test, where setting a slider's value calls update just as the browser does.
"""

import base64
from dataclasses import replace

import ipywidgets as widgets

from . import cache
from . import layer_plots
from . import plots
from ..errors import HelpersError


class Explorer:
    """Controls whose values define a run, and the curves of that run.

    controls: {name: widget}; make_config(**values) -> TrainConfig;
    label(**values) -> a short name of the run for titles.
    After each update: figure (the last Figure drawn), source ("cache" or
    "trained"), status (an HTML widget saying what was shown).
    """

    def __init__(self, controls, make_config, label, cifar, cache_dir=cache.DEFAULT_CACHE_DIR):
        self.controls = controls
        self.make_config, self.label = make_config, label
        self.cifar, self.cache_dir = cifar, cache_dir
        self.status = widgets.HTML()
        self.progress = widgets.Output()
        self.output = widgets.Output()
        self.figure = self.source = None
        self.box = widgets.VBox([widgets.HBox(list(controls.values())), self.status, self.progress, self.output])
        for control in controls.values():
            control.observe(self.update, names="value")
        self.update()

    def values(self):
        return {name: control.value for name, control in self.controls.items()}

    def update(self, change=None):
        """Recall or train the run of the controls' values, then draw it. change: from observe, unused."""
        values = self.values()
        config, label = self.make_config(**values), self.label(**values)
        summary = cache.lookup(config, self.cifar, self.cache_dir)
        self.progress.outputs = ()
        if summary is None:
            self.status.value = f"Training {label} ..."
            try:
                # tqdm.auto, in a kernel, shows its bar in the output area that is entered here.
                with self.progress:
                    summary = cache.cached_experiment(config, self.cifar, self.cache_dir, progress=True)
            except HelpersError as err:
                self.status.value = f"{label}: <b>failed</b>: {err}"
                self.output.outputs = ()
                return
            self.source, how = "trained", f"trained in {summary['train_seconds']:.1f} s"
        else:
            self.source, how = "cache", "recalled from the cache"
        self.figure = plots.curves_figure({label: summary})
        show_figure(self.output, self.figure)
        self.status.value = f"{label}: test accuracy <b>{100 * summary['test_accuracy']:.2f} %</b> ({how})"

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


def show_figure(output, fig):
    """Replace what the Output widget shows with fig, as a PNG."""
    png = base64.b64encode(plots.figure_bytes(fig, "png")).decode("ascii")
    output.outputs = ({"output_type": "display_data", "data": {"image/png": png, "text/plain": repr(fig)},
                       "metadata": {}},)


def log_slider(name, value, low, high, step):
    """A slider over [10^low, 10^high] in steps of 10^step, that reports only on release."""
    return widgets.FloatLogSlider(value=value, base=10, min=low, max=high, step=step, description=name,
                                  readout_format=".1e", continuous_update=False)


def sigma_explorer(cifar, base_config, cache_dir=cache.DEFAULT_CACHE_DIR, sigma=1e-3, batch_norm=True):
    """The network of base_config, initialized with the same sigma in every layer, with or without BN."""
    controls = {
        "sigma": log_slider("sigma", sigma, -5, 0, 0.25),
        "batch_norm": widgets.Checkbox(value=batch_norm, description="batch normalization"),
    }
    return Explorer(
        controls,
        lambda sigma, batch_norm: replace(base_config, init=sigma, batch_norm=batch_norm),
        lambda sigma, batch_norm: f"sigma = {sigma:.1e}, {'BN' if batch_norm else 'no BN'}",
        cifar,
        cache_dir,
    )


def lambda_explorer(cifar, base_config, cache_dir=cache.DEFAULT_CACHE_DIR, lam=1e-3):
    """The network of base_config, trained with the chosen L2 weight lambda."""
    return Explorer(
        {"lam": log_slider("lambda", lam, -5, -1, 0.1)},
        lambda lam: replace(base_config, lam=lam),
        lambda lam: f"lambda = {lam:.2e}",
        cifar,
        cache_dir,
    )


class HistogramScrubber:
    """A slider over the evaluations of runs trained with layer_stats, and their histograms at the chosen one.

    runs: {label: summary}, as layer_plots.histogram_figure takes them; the
    slider goes up to the last evaluation that every run has. After each
    update, figure is the last Figure drawn.
    """

    def __init__(self, runs):
        n = min(len(layers["step"]) for layers in layer_plots.layer_histories(runs).values())
        self.runs = runs
        self.slider = widgets.IntSlider(value=0, min=0, max=n - 1, description="evaluation", continuous_update=False)
        self.output = widgets.Output()
        self.figure = None
        self.box = widgets.VBox([self.slider, self.output])
        self.slider.observe(self.update, names="value")
        self.update()

    def update(self, change=None):
        """Draw the histograms of the slider's evaluation. change: from observe, unused."""
        self.figure = layer_plots.histogram_figure(self.runs, self.slider.value)
        show_figure(self.output, self.figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


def histogram_scrubber(runs):
    """Scrub through training: the histograms of runs ({label: summary with history["layers"]}) at each evaluation."""
    return HistogramScrubber(runs)
