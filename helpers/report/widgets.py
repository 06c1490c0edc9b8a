"""Sliders that train a model, or recall it from the cache, and plot its curves;
a slider that scrubs through the histograms of runs already made; and, beside
each slider, a button that exports the figure shown.

An Explorer is a row of controls, a status line, an area for the progress
bar and one for the figure. When a control is released (continuous_update is
off, so dragging does not start a run per pixel), `update` builds the
TrainConfig of the chosen values, recalls its run from helpers.report.cache or
trains it, showing the progress bar meanwhile, and draws the run's curves.

update and export are plain methods, and the figure is put into its output
area as a PNG by setting the area's outputs: the same code runs in a kernel
and in a test, where setting a slider's value calls update, and
button.click() calls export, just as the browser does.

A slider displays as its widgets in a live kernel and, beside them, as a PNG
of its figure (see SliderFigure._repr_mimebundle_): a notebook saved without
the widgets' state, opened without a kernel, shows that image instead.
"""

import base64
import html
import math
import re
from dataclasses import replace
from pathlib import Path

import ipywidgets as widgets

from . import cache
from . import layer_plots
from . import plots
from .settings import FIGURES_DIR
from ..core.network import NORM_LABELS, NORMS
from ..errors import ConfigError, HelpersError
from ..files import check_writable_folder, shown_path

EXPORT_PREFIX = "slider_"
"""Exported figures are named slider_<settings>, never NN_<name> as the report's own figures in figures/."""


class SliderFigure:
    """What every slider here shares: a button that exports the figure shown, a status line, the figure.

    figures: the folder the button writes into. A subclass has a box (the
    widgets it displays as), sets figure (a Figure, or None when there is
    nothing to show) with show, and names its file with export_name().
    """

    def __init__(self, figures):
        self.figures = Path(figures)
        self.button = widgets.Button(description="export PNG + PDF", icon="download", layout={"width": "auto"},
                                     tooltip="Write the figure shown into the figures folder, as PNG and PDF")
        self.button.on_click(self.export)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.figure = None
        self.said = ""  # the status of the figure shown, to which an export adds a line

    def show(self, fig, said):
        """Show fig (a Figure, or None to clear the area) and say said (HTML) in the status line."""
        self.figure, self.said = fig, said
        self.status.value = said
        if fig is None:
            self.output.outputs = ()
        else:
            # Constrained layout may place a figure's panels a little differently on each of its first draws:
            # lay it out once and keep that layout, so that the PNG shown and the files exported are the same.
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
            self.output.outputs = ({"output_type": "display_data", "data": png_bundle(fig), "metadata": {}},)

    def export(self, button=None):
        """Write the figure shown to figures/<export_name()>.png and .pdf; say where, or why not, in the status.

        button: from on_click, unused. A folder that cannot be written is
        refused before anything is written, in words, in the status line.
        """
        if self.figure is None:
            said = "Nothing to export: no figure is shown."
        else:
            try:
                check_writable_folder(self.figures, "The figures folder (the notebook's FIGURES)")
                png, _ = plots.save_figure(self.figure, self.export_name(), self.figures)
            except ConfigError as err:
                said = f"<b>Export failed</b>: {html.escape(str(err))}"
            except OSError as err:  # e.g. the disk filled up between the check and the write
                said = (f"<b>Export failed</b>: could not write into {html.escape(shown_path(self.figures))}: "
                        f"{html.escape(err.strerror or str(err))}.")
            else:
                said = f"Exported to <code>{html.escape(shown_path(png))}</code> and <code>.pdf</code>."
        self.status.value = f"{self.said}<br>{said}" if self.said else said

    def _repr_mimebundle_(self, **kwargs):
        """The widgets' view, and a PNG of the figure shown for a reader of the notebook without a kernel."""
        bundle = self.box._repr_mimebundle_(**kwargs)
        if self.figure is not None:
            bundle["image/png"] = png_bundle(self.figure)["image/png"]
        return bundle


def png_bundle(fig):
    """fig as a mime bundle: its PNG (base64, as Jupyter stores images) and a plain-text stand-in."""
    png = base64.b64encode(plots.figure_bytes(fig, "png")).decode("ascii")
    return {"image/png": png, "text/plain": repr(fig)}


def slug(text):
    """A label as a file name's part: "9-layer, He, no BN" -> "9-layer_he_no-bn"; "sigma = 1.0e-03" -> "sigma-1.0e-03"."""
    return "_".join("-".join(re.findall(r"[a-z0-9.+-]+", part)) for part in text.lower().split(","))


def network_label(config):
    """A TrainConfig's network and settings in words: "3-layer [50, 50], BN, He init, lambda 5.00e-03, 2 cycles"."""
    init = "He init" if config.init == "he" else f"sigma {config.init:.1e}"
    return (f"{len(config.hidden) + 1}-layer {list(config.hidden)}, {NORM_LABELS[config.norm]}, "
            f"{init}, lambda {config.lam:.2e}, {config.cycles} cycle{'s' if config.cycles > 1 else ''}")


class Explorer(SliderFigure):
    """Controls whose values define a run, and the curves of that run.

    controls: {name: widget}; make_config(**values) -> TrainConfig;
    label(**values) -> a short name of the run for titles and file names.
    A FloatLogSlider's value is taken on its grid, anchored at the value it
    started from (see on_grid), so that moving back to it recalls the same run.
    After each update: figure (the last Figure drawn, None if the run
    failed), source ("cache" or "trained"), status (an HTML widget saying
    what was shown).
    """

    def __init__(self, controls, make_config, label, cifar, cache_dir=cache.DEFAULT_CACHE_DIR, figures=FIGURES_DIR):
        super().__init__(figures)
        self.controls = controls
        self.anchors = {name: control.value for name, control in controls.items()
                        if isinstance(control, widgets.FloatLogSlider)}
        self.make_config, self.label = make_config, label
        self.cifar, self.cache_dir = cifar, cache_dir
        self.progress = widgets.Output()
        self.source = None
        self.box = widgets.VBox([widgets.HBox([*controls.values(), self.button]), self.status, self.progress,
                                 self.output])
        for control in controls.values():
            control.observe(self.update, names="value")
        self.update()

    def values(self):
        """{name: value} of the controls, a log slider's value on its grid."""
        return {name: on_grid(control.value, self.anchors[name], control.step) if name in self.anchors
                else control.value for name, control in self.controls.items()}

    def export_name(self):
        values = self.values()
        network = self.make_config(**values).hidden
        return EXPORT_PREFIX + slug(f"{len(network) + 1}-layer, {self.label(**values)}")

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
                self.show(None, f"{label}: <b>failed</b>: {html.escape(str(err))}")
                return
            self.source, how = "trained", f"trained in {summary['train_seconds']:.1f} s"
        else:
            self.source, how = "cache", "recalled from the cache"
        accuracy = f"test accuracy {100 * summary['test_accuracy']:.2f} %"
        fig = plots.curves_figure({label: summary}, f"{network_label(config)}: {accuracy}")
        self.show(fig, f"{label}: <b>{accuracy}</b> ({how})")


def log_slider(name, value, low, high, step):
    """A slider over [10^low, 10^high] in steps of 10^step, through value, that reports only on release.

    Its grid of exponents is anchored at log10(value) and goes as far towards
    low and high as whole steps stay inside them, so that value itself is a
    position of the slider: the user can move away and land on it again.
    """
    if not 10**low <= value <= 10**high:
        raise ConfigError(f"The {name} slider starts at {value:.3g}, outside its range [{10**low:g}, {10**high:g}]:"
                          " start it inside the range.")
    anchor = math.log10(value)
    below, above = (math.floor(span / step + 1e-9) for span in (anchor - low, high - anchor))
    return widgets.FloatLogSlider(value=value, base=10, min=anchor - below * step, max=anchor + above * step,
                                  step=step, description=name, readout_format=".1e", continuous_update=False)


def on_grid(value, anchor, step):
    """The point of the log grid anchor * 10^(step k) nearest to value.

    The browser computes a slider's value as 10^(min + k step), a few ulps
    away from the value the slider started from; the cache key would miss
    that run. Here the anchor's own position gives the anchor exactly
    (anchor * 10^0), and each other position always the same number.
    """
    return anchor * 10 ** (step * round(math.log10(value / anchor) / step))


def sigma_explorer(cifar, base_config, cache_dir=cache.DEFAULT_CACHE_DIR, figures=FIGURES_DIR, sigma=1e-3,
                   norm="batch"):
    """The network of base_config, initialized with the same sigma in every layer, with each normalization of NORMS.

    figures: the folder its export button writes into (the notebook's FIGURES).
    """
    controls = {
        "sigma": log_slider("sigma", sigma, -5, 0, 0.25),
        "norm": widgets.Dropdown(options=NORMS, value=norm, description="normalization"),
    }
    return Explorer(
        controls,
        lambda sigma, norm: replace(base_config, init=sigma, norm=norm),
        lambda sigma, norm: f"sigma = {sigma:.1e}, {NORM_LABELS[norm]}",
        cifar,
        cache_dir,
        figures,
    )


def lambda_explorer(cifar, base_config, cache_dir=cache.DEFAULT_CACHE_DIR, figures=FIGURES_DIR, lam=1e-3):
    """The network of base_config, trained with the chosen L2 weight lambda, on a grid through lam.

    figures: the folder its export button writes into (the notebook's FIGURES).
    """
    return Explorer(
        {"lam": log_slider("lambda", lam, -5, -1, 0.1)},
        lambda lam: replace(base_config, lam=lam),
        lambda lam: f"lambda = {lam:.2e}",
        cifar,
        cache_dir,
        figures,
    )


class HistogramScrubber(SliderFigure):
    """A slider over the evaluations of runs trained with layer_stats, and their histograms at the chosen one.

    runs: {label: summary}, as layer_plots.histogram_figure takes them; the
    slider goes up to the last evaluation that every run has. figures: the
    folder the export button writes into. After each update, figure is the
    last Figure drawn.
    """

    def __init__(self, runs, figures=FIGURES_DIR):
        super().__init__(figures)
        self.n = min(len(layers["step"]) for layers in layer_plots.layer_histories(runs).values())
        self.runs = runs
        self.slider = widgets.IntSlider(value=0, min=0, max=self.n - 1, description="evaluation",
                                        continuous_update=False)
        self.box = widgets.VBox([widgets.HBox([self.slider, self.button]), self.status, self.output])
        self.slider.observe(self.update, names="value")
        self.update()

    def steps(self):
        """The update steps of the slider's evaluation, one per run that differs: [1000], or [1000, 1200]."""
        return sorted({summary["history"]["layers"]["step"][self.slider.value] for summary in self.runs.values()})

    def export_name(self):
        runs = "_and_".join(slug(label) for label in self.runs)
        return f"{EXPORT_PREFIX}histograms_{runs}_step_{'-'.join(str(step) for step in self.steps())}"

    def update(self, change=None):
        """Draw the histograms of the slider's evaluation. change: from observe, unused."""
        steps = ", ".join(str(step) for step in self.steps())
        where = f"evaluation {self.slider.value} (0 to {self.n - 1}), step {steps}"
        title = (f"{' and '.join(self.runs)}: {where}\n"
                 "Each hidden layer's values at the ReLU's input, over their own range [-r, r]")
        self.show(layer_plots.histogram_figure(self.runs, self.slider.value, title), where)


def histogram_scrubber(runs, figures=FIGURES_DIR):
    """Scrub through training: the histograms of runs ({label: summary with history["layers"]}) at each evaluation.

    figures: the folder its export button writes into (the notebook's FIGURES).
    """
    return HistogramScrubber(runs, figures)
