"""The report's figures, drawn from run summaries, and saved reproducibly.

Every function returns a matplotlib Figure made without pyplot, so nothing is
shown, or kept alive, behind the caller's back: a notebook shows a figure by
ending a cell with it, and save_figure writes it to figures/ as PNG and PDF.

Saving a figure twice gives the same bytes, so a re-run of the report changes
a committed figure only where its content changed: the resolution is fixed,
the PNG carries no "Software" entry and the PDF no creation date.
"""

import textwrap
from io import BytesIO
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, LogLocator, NullFormatter

from ..files import write_atomically
from ..search import field_label, neutral_summary, values_label
from ..seeds import seed_runs
from .summary import format_spread
from .verdicts import learners

DPI = 150
PAGE_WIDTH = 6.5
"""Inches: every figure is drawn at the width of a page's text, so that its fonts are read at their size."""
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "figure.titlesize": 9,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
}
PARTS = (("train", "training"), ("val", "validation"))
QUANTITIES = ("cost", "loss", "accuracy")
AXIS_LABELS = {"cost": "cost (loss + L2 term)", "loss": "loss (cross-entropy)", "accuracy": "accuracy (%)"}
"""The y-axis label of each quantity of a history: cost and loss have no unit, accuracies are in percent."""
FORMATS = {"png": {"Software": None}, "pdf": {"CreationDate": None}}
"""File formats written by save_figure, with the metadata that would change on every save removed."""


SETTING_WORDS = {
    "hidden": lambda v: f"hidden layers {list(v)}",
    "lam": lambda v: f"lambda {v:g}",
    "n_s": lambda v: f"{v:,} steps per half cycle",
    "cycles": lambda v: f"{v} cycles",
    "dropout": lambda v: f"dropout {v:g}",
    "flip": lambda v: "horizontal flips" if v else "no flips",
    "translate": lambda v: f"translations by up to {v} pixels",
    "tta": lambda v: "mirror TTA" if v else "no TTA",
    "zca": lambda v: f"ZCA whitening (eps {v:g})" if v else "no whitening",
}
"""How a title says a TrainConfig setting in words; any other setting is written "name = value"."""


def settings_words(settings):
    """settings [(TrainConfig field, value), ...] in words, e.g. "lambda 0.002", "horizontal flips"."""
    return [SETTING_WORDS[name](value) if name in SETTING_WORDS else f"{name} = {value}" for name, value in settings]


def settings_title(lead, settings):
    """A figure title: lead, then settings [(TrainConfig field, value), ...] in words, wrapped to a page's width."""
    return textwrap.fill(f"{lead}: {', '.join(settings_words(settings))}", width=95)


def curve(history, part, quantity):
    """One curve of a run's history: accuracies in %, other quantities as they are.

    history: the "history" of a run summary; part: "train" or "val".
    Returns steps (m,), values (m,).
    """
    values = np.asarray(history[f"{part}_{quantity}"], dtype=float)
    return np.asarray(history["step"]), 100 * values if quantity == "accuracy" else values


def plot_with_band(ax, runs, part, quantity, label):
    """The curve of the first seed, and the band from the lowest to the highest curve of all the seeds.

    runs: a list of summaries of the same configuration (same evaluation
    steps), one per seed. A single run gets no band.
    """
    steps, first = curve(runs[0]["history"], part, quantity)
    (line,) = ax.plot(steps, first, label=label)
    if len(runs) > 1:
        values = np.array([curve(run["history"], part, quantity)[1] for run in runs])
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.25,
                        linewidth=0)


def seeds_note(runs):
    return f"seed {runs[0]['config']['seed']}, band: min to max of {len(runs)} seeds" if len(runs) > 1 else ""


def curves_figure(runs, title=None, log_cost=False):
    """Training and validation cost, loss and accuracy against the update step.

    runs: {label: a summary of helpers.experiments.run_experiment, or a list
    of them, one per seed}; one row of three panels per label, the panels of
    a column on the same y-axis, so that the rows compare. Over several
    seeds each panel shows the first seed's curves with a band from the
    lowest to the highest seed, and the accuracy panel the mean final test
    accuracy, dashed. log_cost: the cost on a log axis, for a network whose
    cost starts several times higher than it ends (notebook 06's wide
    layers: their L2 term takes thousands of steps to fall from 10 to 1.2),
    which would squash every later value into a sliver of a linear axis.
    """
    rows = {label: seed_runs(seeded) for label, seeded in runs.items()}
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 1.9 * len(rows) + 0.9), layout="constrained")
        axes = fig.subplots(len(rows), len(QUANTITIES), squeeze=False, sharex=True, sharey="col")
        for row, (label, seeded) in zip(axes, rows.items()):
            for ax, quantity in zip(row, QUANTITIES):
                for part, name in PARTS:
                    plot_with_band(ax, seeded, part, quantity, name)
                ax.set_title(f"{label}: {quantity}")
                ax.set_ylabel(AXIS_LABELS[quantity])
            tests = [run["test_accuracy"] for run in seeded]
            row[-1].axhline(100 * np.mean(tests), color="gray", linestyle="--", linewidth=0.8,
                            label=f"test: {format_spread(tests)}")
            row[-1].legend(handles=row[-1].lines[-1:], loc="lower right", handlelength=1.5)
        for ax in axes[-1]:
            ax.set_xlabel("update step")
        if log_cost:
            for ax in axes[:, 0]:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(LogFormatter())  # 1 and 10 written as the numbers between them
                ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 1)))
                ax.set_ylabel(f"{AXIS_LABELS['cost']}, log scale")
        handles = axes[0, -1].lines
        # The curves are measured without TTA; a test line measured with it says so.
        mirrored = all(run.get("config", {}).get("tta") for seeded in rows.values() for run in seeded)
        fig.legend(handles, ["training", "validation", "test, the final network" + (" with mirror TTA" * mirrored)],
                   loc="outside lower center", ncols=3, title=seeds_note(next(iter(rows.values()))) or None)
        if title:
            fig.suptitle(title)
    return fig


def sensitivity_figure(runs):
    """Training and validation loss of every seed, for each initial sigma, without and with BN.

    runs: {(sigma, batch_norm): a summary, or a list of them, one per seed};
    one row per sigma (largest first), one column per batch_norm (False,
    True), every panel on the same axes. Every seed is a line of its own, so
    that a seed which stays at chance while the others learn shows as one;
    each title gives the test accuracy over the seeds and how many learned.
    """
    sigmas = sorted({sigma for sigma, _ in runs}, reverse=True)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 2.0 * len(sigmas) + 0.9), layout="constrained")
        axes = fig.subplots(len(sigmas), 2, squeeze=False, sharex=True, sharey=True)
        for row, sigma in zip(axes, sigmas):
            for ax, batch_norm in zip(row, (False, True)):
                seeded = runs.get((sigma, batch_norm))
                if seeded is None:
                    ax.set_axis_off()
                    continue
                seeded = seed_runs(seeded)
                for i, run in enumerate(seeded):
                    for (part, name), color in zip(PARTS, ("C0", "C1")):
                        ax.plot(*curve(run["history"], part, "loss"), color=color, linewidth=0.9, alpha=0.8,
                                label=name if i == 0 else None)
                tests = [run["test_accuracy"] for run in seeded]
                learned = f"; {learners(tests)} of {len(tests)} seeds learn" if len(tests) > 1 else ""
                ax.set_title(f"sigma = {sigma:g}, {'BN' if batch_norm else 'no BN'}\n"
                             f"test {format_spread(tests)}{learned}")
                ax.set_ylabel(AXIS_LABELS["loss"])
        for ax in axes[-1]:
            ax.set_xlabel("update step")
        first = next(ax for ax in axes.flat if ax.lines)
        seeds = len(seed_runs(next(iter(runs.values()))))
        fig.legend(*first.get_legend_handles_labels(), loc="outside lower center", ncols=2,
                   title=f"one line per seed, {seeds} seeds" if seeds > 1 else None)
        fig.suptitle("Sensitivity to the initial sigma of every layer's weights")
    return fig


def search_figure(search, title=None):
    """Validation accuracy against the value searched, one colour per stage, a star on each stage's best.

    search: the summary of helpers.search.run_search, of any age (see
    neutral_summary). Each value is one point, in the order drawn, on a log
    or linear axis as the search drew it; judged on several seeds, its point
    is their mean, with a bar of +- one standard deviation.
    """
    search = neutral_summary(search)
    seeds = search["config"]["seeds"]
    name, log = field_label(search["param"]), search["scale"] == "log"
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 3.4), layout="constrained")
        ax = fig.subplots()
        for stage in search["stages"]:
            judged = [j for j in search["per_value"] if j["stage"] == stage["stage"]]
            values = [j["value"] for j in judged]
            accuracies = [100 * j["val_accuracy"] for j in judged]
            low, high = stage["range"]
            bounds = f"[{low:.1e}, {high:.1e}]" if log else f"[{low:.3g}, {high:.3g}]"
            label = f"stage {stage['stage']}: {len(judged)} {values_label(search['param'])} in {bounds}"
            if seeds > 1:
                bars = ax.errorbar(values, accuracies, yerr=[100 * j["val_accuracy_std"] for j in judged], fmt="o",
                                   markersize=4, capsize=2, label=label)
                color = bars.lines[0].get_color()
            else:
                color = ax.scatter(values, accuracies, s=18, label=label).get_facecolor()[0]
            best = stage["best"]
            ax.scatter([best["value"]], [100 * best["val_accuracy"]], s=120, marker="*",
                       color=color, edgecolor="black", linewidth=0.6, zorder=3)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labels at 2, 3, 4 ... x 10^k would overlap
        ax.set_xlabel(name)
        ax.set_ylabel("validation accuracy (%)" if seeds == 1 else f"validation accuracy, mean of {seeds} seeds (%)")
        ax.set_title(title or f"Random search of {name}, coarse to fine (stars: the best of each stage)")
        ax.legend()
    return fig


def gradcheck_figure(results):
    """Relative error of every parameter, centered and forward differences, as dots on a shared log axis.

    results: from helpers.report.checks.run_case, one panel per case. Dots,
    not bars: on a log axis a bar's length depends on where the axis starts,
    and means nothing. The parameters the network leaves out
    (result["unused"]) are left out too. The times are left to the tables:
    they change from run to run, and the figure would change with them.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 1.5 * len(results) + 0.9), layout="constrained")
        axes = fig.subplots(len(results), 1, squeeze=False, sharey=True)[:, 0]
        for ax, result in zip(axes, results):
            errors = result["errors"]
            names = [name for name in errors["centered"] if name not in result["unused"]]
            x = np.arange(len(names))
            for method, marker in (("centered", "o"), ("forward", "s")):
                ax.plot(x, [errors[method][n] for n in names], marker, markersize=5, label=f"{method} differences")
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(numticks=20))  # a tick at every power of ten
            ax.set_xticks(x, names)
            ax.set_xlim(-0.5, len(names) - 0.5)
            ax.set_ylabel("relative error")
            ax.set_title(result["title"])
        axes[-1].set_xlabel("parameter")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
        fig.suptitle("Analytic against numerical gradients: relative error of each parameter")
    return fig


def figure_bytes(fig, fmt):
    """The figure as a PNG or PDF file, in bytes, with fixed resolution and no timestamps."""
    buffer = BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=FORMATS[fmt])
    return buffer.getvalue()


def save_figure(fig, name, folder):
    """Write fig to folder/name.png and folder/name.pdf; return the two paths.

    Each file is written atomically, so an interrupted save leaves the old
    figure in place.
    """
    paths = []
    for fmt in FORMATS:
        path = Path(folder) / f"{name}.{fmt}"
        write_atomically(path, figure_bytes(fig, fmt))
        paths.append(path)
    return paths


def running_averages_figure(warmup):
    """The running mean and variance of batch normalization over the warm-up batches, against the true ones.

    warmup: from helpers.report.bn_layer.warm_up. Two panels, mean and
    variance against the batch number; per feature, each batch's own
    statistic as dots, the running average as a line from its starting value
    (batch 0), and the distribution's value dashed.
    """
    batches = np.arange(len(warmup["batch_mean"]) + 1)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 3.4), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, stat, name in zip(axes, ("mean", "var"), ("mean", "variance")):
            for j in range(warmup[stat].shape[0]):
                color = f"C{j}"
                ax.plot(batches[1:], warmup[f"batch_{stat}"][:, j], ".", color=color, alpha=0.35, markersize=4,
                        label=f"feature {j + 1}: the batch's")
                ax.plot(batches, warmup[f"running_{stat}"][:, j], color=color, label=f"feature {j + 1}: running")
                ax.axhline(warmup[stat][j], color=color, linestyle="--", linewidth=0.8,
                           label=f"feature {j + 1}: true")
            ax.set_xlabel("training batch")
            ax.set_ylabel(name)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
        fig.suptitle(f"Batch normalization's running averages (alpha = {warmup['alpha']:g})\n"
                     f"over training batches of {warmup['batch_size']} images")
    return fig
