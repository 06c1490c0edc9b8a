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


def curves_figure(runs, title=None):
    """Training and validation cost, loss and accuracy against the update step.

    runs: {label: summary of helpers.experiments.run_experiment}; one row of
    three panels per run, the final test accuracy dashed on the accuracy panel.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 2.6 * len(runs) + 0.4), layout="constrained")
        axes = fig.subplots(len(runs), len(QUANTITIES), squeeze=False)
        for row, (label, summary) in zip(axes, runs.items()):
            for ax, quantity in zip(row, QUANTITIES):
                for part, name in PARTS:
                    ax.plot(*curve(summary["history"], part, quantity), label=name)
                ax.set_title(f"{label}: {quantity}")
                ax.set_xlabel("update step")
            test = 100 * summary["test_accuracy"]
            row[-1].axhline(test, color="gray", linestyle="--", linewidth=0.8, label=f"test, final: {test:.2f} %")
            row[-1].set_ylabel("accuracy (%)")
            row[-1].legend(loc="lower right")
        if title:
            fig.suptitle(title)
    return fig


def sensitivity_figure(runs):
    """Training and validation loss for each initial sigma, without and with BN.

    runs: {(sigma, batch_norm): summary}; one row per sigma (largest first),
    one column per batch_norm (False, True).
    """
    sigmas = sorted({sigma for sigma, _ in runs}, reverse=True)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 2.4 * len(sigmas) + 0.4), layout="constrained")
        axes = fig.subplots(len(sigmas), 2, squeeze=False, sharex=True)
        for row, sigma in zip(axes, sigmas):
            for ax, batch_norm in zip(row, (False, True)):
                summary = runs.get((sigma, batch_norm))
                if summary is None:
                    ax.set_axis_off()
                    continue
                for part, name in PARTS:
                    ax.plot(*curve(summary["history"], part, "loss"), label=name)
                ax.set_title(
                    f"sigma = {sigma:g}, {'BN' if batch_norm else 'no BN'}: "
                    f"test {100 * summary['test_accuracy']:.2f} %"
                )
                ax.set_ylabel("loss")
        for ax in axes[-1]:
            ax.set_xlabel("update step")
        next(ax for ax in axes.flat if ax.lines).legend()
        fig.suptitle("Sensitivity to the initial sigma of every layer")
    return fig


def search_figure(search, records):
    """Validation accuracy against lambda (log scale), one colour per stage, a star on each stage's best.

    search: the summary of helpers.search.run_search; records: the lines of
    its results file (dicts with "stage", "lam", "val_accuracy"). Only the
    records of the search's own runs are drawn, each once, in the order their
    lambdas were drawn: parallel runs finish, and are recorded, in any order,
    and the order of the points is written into the PDF.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7, 3.6), layout="constrained")
        ax = fig.subplots()
        for stage in search["stages"]:
            recorded = {r["lam"]: r for r in records if r["stage"] == stage["stage"]}
            runs = [recorded[lam] for lam in stage["lams"] if lam in recorded]
            low, high = stage["lam_range"]
            points = ax.scatter([r["lam"] for r in runs], [100 * r["val_accuracy"] for r in runs], s=18,
                                label=f"stage {stage['stage']}: {len(runs)} runs in [{low:.1e}, {high:.1e}]")
            best = stage["best"]
            ax.scatter([best["lam"]], [100 * best["val_accuracy"]], s=120, marker="*",
                       color=points.get_facecolor()[0], edgecolor="black", linewidth=0.6, zorder=3)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labels at 2, 3, 4 ... x 10^k would overlap
        ax.set_xlabel("lambda")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title("Random search of lambda, coarse to fine (stars: the best of each stage)")
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
