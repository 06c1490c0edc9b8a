"""Figures of what each layer does as the network trains, from runs trained with TrainConfig.layer_stats.

The statistics are those of history["layers"] (helpers.core.probe, measured
on a fixed probe batch at every evaluation). Like plots.py, every function
returns a matplotlib Figure made without pyplot; plots.save_figure writes it.
"""

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..core.probe import LOG_STATS, STATS
from ..errors import ConfigError
from .plots import PAGE_WIDTH, STYLE

PANEL_COLUMNS = 3
"""Panels per row of layer_curves_figure; more runs wrap onto further rows."""


def layer_histories(runs):
    """{label: history["layers"]} of runs, {label: summary}; a clear error for a run without them."""
    if not runs:
        raise ConfigError("No runs to plot: give at least one {label: summary}.")
    for label, summary in runs.items():
        if "layers" not in summary["history"]:
            raise ConfigError(f"Run {label!r} has no per-layer statistics: train it with"
                              " TrainConfig(layer_stats=True).")
    return {label: summary["history"]["layers"] for label, summary in runs.items()}


LAYER_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
"""The tab10 colours but grey (C7), which the grid and reference lines use: one per layer of the 9-layer network."""
LAYER_DASHES = ("-", "--", "-.", ":")


def layer_styles(n):
    """n (colour, line style) pairs, one per layer, all different: the colours differ up to 9 layers, and
    the line styles cycle too, so that neighbouring layers differ in both and a grey print still tells them apart."""
    return [(LAYER_COLORS[j % len(LAYER_COLORS)], LAYER_DASHES[j % len(LAYER_DASHES)]) for j in range(n)]


def layer_curves_figure(runs, stat, title=None):
    """One statistic of every layer against the update step: a panel per run, a line per layer.

    runs: {label: a summary of helpers.experiments.run_experiment (or of the
    cache) of a run trained with layer_stats}; stat: a name of
    helpers.core.probe.STATS. The panels share their y-axis, so that they
    compare; it is logarithmic for the statistics of probe.LOG_STATS. A run
    without BN has no post_mean or post_std: its panel says so. The update
    ratio starts at the first evaluation after step 0.
    """
    if stat not in STATS:
        raise ConfigError(f"Unknown statistic {stat!r}: use one of {', '.join(STATS)}.")
    histories = layer_histories(runs)
    columns = min(len(runs), PANEL_COLUMNS)
    rows = math.ceil(len(runs) / columns)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 2.0 * rows + 1.1), layout="constrained")
        first = legend_from = None
        for i, (label, layers) in enumerate(histories.items()):
            ax = fig.add_subplot(rows, columns, i + 1, sharey=first)
            if first is None:
                first = ax
            ax.set_title(label)
            ax.set_xlabel("update step")
            if stat in LOG_STATS:
                ax.set_yscale("log", nonpositive="mask")  # a dead layer's std of 0 leaves a gap
            measured = [values for values in layers[stat] if values is not None]
            if not measured:
                ax.set_axis_off()  # the title stays: the run, and why it has nothing to show
                ax.text(0.5, 0.5, "no batch normalization", transform=ax.transAxes, ha="center", va="center")
                continue
            # None (no step before step 0) becomes NaN: a gap in the line.
            n_layers = len(measured[0])
            values = np.array([[np.nan] * n_layers if v is None else v for v in layers[stat]], dtype=float)
            for j, (color, dashes) in enumerate(layer_styles(n_layers)):
                ax.plot(layers["step"], values[:, j], color=color, linestyle=dashes, label=f"layer {j + 1}")
            legend_from = ax
        fig.supylabel(STATS[stat], fontsize=8)  # one label: the panels share their y-axis
        if legend_from is not None:  # under the panels, never over a curve
            handles, labels = legend_from.get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), handlelength=2.5)
        fig.suptitle(title or f"{STATS[stat]}, per layer, on the probe batch")
    return fig


def histogram_figure(runs, index, title=None):
    """Every hidden layer's histogram at one evaluation: a column per run, a row per hidden layer.

    runs: {label: a summary of a run trained with layer_stats}; index: which
    evaluation, into history["layers"]["step"] (negative counts from the
    end). The values are those at the ReLU's input, each histogram over its
    own range [-r, r], written in its panel (see helpers.core.probe). At
    most 8 hidden layers fit the height of a page.
    title: the figure's, instead of a description of what it shows.
    """
    histories = layer_histories(runs)
    for label, layers in histories.items():
        n = len(layers["step"])
        if not -n <= index < n:
            raise ConfigError(f"Evaluation index {index} is out of range: run {label!r} has {n} evaluations"
                              f" (0 to {n - 1}).")
    rows = max(len(layers["hist_counts"][index]) for layers in histories.values())
    columns = len(runs)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 0.85 * rows + 1.0), layout="constrained")
        for l in range(rows):
            for c, (label, layers) in enumerate(histories.items()):
                if l >= len(layers["hist_counts"][index]):
                    continue  # a shallower run: no panel
                counts, edges = layers["hist_counts"][index][l], layers["hist_edges"][index][l]
                ax = fig.add_subplot(rows, columns, l * columns + c + 1)
                ax.stairs(counts, edges, fill=True)
                ax.set_xlim(edges[0], edges[-1])
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
                ax.text(0.02, 0.95, f"r = {edges[-1]:.2g}", transform=ax.transAxes, va="top", fontsize=7)
                if l == 0:
                    ax.set_title(f"{label}: step {layers['step'][index]}")
                if c == 0:
                    ax.set_ylabel(f"layer {l + 1}")
        fig.supxlabel("value at the ReLU's input (each panel over its own range [-r, r])", fontsize=8)
        fig.supylabel("number of values (probe images × units)", fontsize=8)
        fig.suptitle(title or "Each hidden layer's values at the ReLU's input")
    return fig
