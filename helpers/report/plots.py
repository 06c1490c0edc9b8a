"""The report's figures, drawn from run summaries, and saved reproducibly.

Every function returns a matplotlib Figure made without pyplot, so nothing is
shown, or kept alive, behind the caller's back: a notebook shows a figure by
ending a cell with it, and save_figure writes it to figures/ as PNG and PDF.

Saving a figure twice gives the same bytes, so a re-run of the report changes
a committed figure only where its content changed: the resolution is fixed,
the PNG carries no "Software" entry and the PDF no creation date.
"""

from io import BytesIO
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..files import write_atomically
from ..search import field_label, neutral_summary, values_label
from ..seeds import seed_runs
from .summary import format_spread

DPI = 120
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
}
PARTS = (("train", "training"), ("val", "validation"))
QUANTITIES = ("cost", "loss", "accuracy")
FORMATS = {"png": {"Software": None}, "pdf": {"CreationDate": None}}
"""File formats written by save_figure, with the metadata that would change on every save removed."""


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


def curves_figure(runs, title=None):
    """Training and validation cost, loss and accuracy against the update step.

    runs: {label: a summary of helpers.experiments.run_experiment, or a list
    of them, one per seed}; one row of three panels per label. Over several
    seeds each panel shows the first seed's curves with a band from the
    lowest to the highest seed, and the accuracy panel the mean final test
    accuracy, dashed.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 2.6 * len(runs) + 0.4), layout="constrained")
        axes = fig.subplots(len(runs), len(QUANTITIES), squeeze=False)
        for row, (label, seeded) in zip(axes, runs.items()):
            seeded = seed_runs(seeded)
            for ax, quantity in zip(row, QUANTITIES):
                for part, name in PARTS:
                    plot_with_band(ax, seeded, part, quantity, name)
                ax.set_title(f"{label}: {quantity}")
                ax.set_xlabel("update step")
            tests = [run["test_accuracy"] for run in seeded]
            row[-1].axhline(100 * np.mean(tests), color="gray", linestyle="--", linewidth=0.8,
                            label=f"test, final: {format_spread(tests)}")
            row[-1].set_ylabel("accuracy (%)")
            row[-1].legend(loc="lower right", title=seeds_note(seeded) or None, title_fontsize=7)
        if title:
            fig.suptitle(title)
    return fig


def sensitivity_figure(runs):
    """Training and validation loss for each initial sigma, without and with BN.

    runs: {(sigma, batch_norm): a summary, or a list of them, one per seed};
    one row per sigma (largest first), one column per batch_norm (False,
    True). Over several seeds, the first seed's curves with a band from the
    lowest to the highest seed, and the mean test accuracy.
    """
    sigmas = sorted({sigma for sigma, _ in runs}, reverse=True)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 2.4 * len(sigmas) + 0.4), layout="constrained")
        axes = fig.subplots(len(sigmas), 2, squeeze=False, sharex=True)
        for row, sigma in zip(axes, sigmas):
            for ax, batch_norm in zip(row, (False, True)):
                seeded = runs.get((sigma, batch_norm))
                if seeded is None:
                    ax.set_axis_off()
                    continue
                seeded = seed_runs(seeded)
                for part, name in PARTS:
                    plot_with_band(ax, seeded, part, "loss", name)
                test = np.mean([100 * run["test_accuracy"] for run in seeded])
                mean = "mean " if len(seeded) > 1 else ""
                ax.set_title(f"sigma = {sigma:g}, {'BN' if batch_norm else 'no BN'}: test {mean}{test:.2f} %")
                ax.set_ylabel("loss")
        for ax in axes[-1]:
            ax.set_xlabel("update step")
        first = next(ax for ax in axes.flat if ax.lines)
        first.legend(title=seeds_note(seed_runs(next(iter(runs.values())))) or None, title_fontsize=7)
        fig.suptitle("Sensitivity to the initial sigma of every layer")
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
        fig = Figure(figsize=(7, 3.6), layout="constrained")
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
    """Relative error of every parameter, centered and forward differences side by side.

    results: from helpers.report.checks.run_case, one panel per case. The
    parameters the network leaves out (result["unused"]) are left out too.
    The times are left to the tables: they change from run to run, and the
    figure would change with them.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 2.4 * len(results) + 0.4), layout="constrained")
        axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
        for ax, result in zip(axes, results):
            errors = result["errors"]
            names = [name for name in errors["centered"] if name not in result["unused"]]
            x = np.arange(len(names))
            for offset, method in ((-0.2, "centered"), (0.2, "forward")):
                ax.bar(x + offset, [errors[method][n] for n in names], width=0.4, label=method)
            ax.set_yscale("log")
            ax.set_xticks(x, names)
            ax.set_ylabel("relative error")
            ax.set_title(result["title"])
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, never over them
        fig.suptitle("Analytic against numerical gradients")
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
        fig = Figure(figsize=(10, 3.4), layout="constrained")
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
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.suptitle(f"Batch normalization's running averages (alpha = {warmup['alpha']:g}) "
                     f"over training batches of {warmup['batch_size']}")
    return fig
