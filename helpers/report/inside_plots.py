"""Notebook 07's figures: the weight-scale sweep, the batch-size study (no BN, BN, LN), and what the network learned.

Like helpers.report.plots, every function returns a matplotlib Figure made
without pyplot, in the same style, for plots.save_figure to write.
"""

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .inside import batch_size_rows, tests
from .plots import PAGE_WIDTH, STYLE
from .verdicts import CHANCE


def mean_and_std(values):
    """Accuracies (seeds,) as fractions -> (mean, std) in percent; std 0 for one seed."""
    values = 100 * np.asarray(values, dtype=float)
    return values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0


def sweep_figure(runs, note):
    """Test accuracy against sigma, one line per network and BN, mean ± std of the seeds as error bars.

    runs: {(network, sigma or "he", batch_norm): [summary] * seeds}, as from
    inside.sweep_configs; note: how the runs were trained, for the title.
    He initialization, which has no single sigma, gets a narrow panel of its
    own on the same y-axis: a point per network and BN, at the network's
    name, in the marker of its line (open without BN, filled with BN).
    """
    seeds = len(next(iter(runs.values())))
    series = list(dict.fromkeys((name, bn) for name, _, bn in runs))
    networks = list(dict.fromkeys(name for name, _ in series))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 3.9), layout="constrained")
        ax, he = fig.subplots(1, 2, sharey=True, width_ratios=(5, 1))
        handles = []
        for name, batch_norm in series:
            sigmas = np.array([init for (n, init, bn) in runs if (n, bn) == (name, batch_norm) and init != "he"],
                              dtype=float)
            stats = np.array([mean_and_std(tests(runs[name, s, batch_norm])) for s in sigmas])
            i = networks.index(name)
            style = {"color": f"C{i}", "marker": "o", "markersize": 4.5, "capsize": 3,
                     "markerfacecolor": f"C{i}" if batch_norm else "white"}
            handles.append(ax.errorbar(sigmas, stats[:, 0], yerr=stats[:, 1], linestyle="-" if batch_norm else ":",
                                       label=f"{name}, {'BN' if batch_norm else 'no BN'}", **style))
            if (name, "he", batch_norm) in runs:
                mean, std = mean_and_std(tests(runs[name, "he", batch_norm]))
                he.errorbar([i + (0.15 if batch_norm else -0.15)], [mean], yerr=[std], linestyle="none", **style)
        handles.append(ax.axhline(100 * CHANCE, color="gray", linewidth=0.8, label="chance, 10 %"))
        he.axhline(100 * CHANCE, color="gray", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("sigma of every layer's initial weights")
        ax.set_ylabel(f"test accuracy, mean ± std of {seeds} seeds (%)")
        ax.set_title("Each layer's weights drawn with one sigma")
        he.set_xticks(range(len(networks)), networks)
        he.set_xlim(-0.6, len(networks) - 0.4)
        he.set_xlabel("network")
        he.set_title("He init.")
        steps = next(iter(runs.values()))[0]["steps"]
        fig.legend(handles=handles, loc="outside lower center", ncols=3)
        fig.suptitle(f"Test accuracy against the initial weight scale\n{note} ({steps:,} steps)")
    return fig


BATCH_SIZE_SERIES = (("none", "no BN", ":"), ("batch", "BN, running averages", "-"),
                     ("batch_stats", "BN, each test batch's statistics", "--"), ("layer", "LN", "-."))
"""The batch-size figure's lines: (key of inside.batch_size_rows, legend label, line style), colours C0 to C3."""


def batch_size_figure(runs, note):
    """Accuracy against n_batch without normalization, with BN and with LN, and BN's accuracy with batch statistics.

    runs: {(n_batch, norm): [summary] * seeds}, as from
    inside.batch_size_configs. Left: test accuracy, mean ± std of the seeds,
    a line per BATCH_SIZE_SERIES; right: the BN network's accuracy with each
    test batch's statistics minus that with the running averages, per seed,
    mean ± std, in points.
    """
    rows = batch_size_rows(runs)
    n_batch = [row["n_batch"] for row in rows]
    seeds = len(rows[0]["batch"])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 3.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        for i, (key, label, style) in enumerate(BATCH_SIZE_SERIES):
            stats = np.array([mean_and_std(row[key]) for row in rows])
            left.errorbar(n_batch, stats[:, 0], yerr=stats[:, 1], color=f"C{i}", linestyle=style, marker="o",
                          markersize=4, capsize=3, label=label)
        left.set_ylabel(f"test accuracy, mean ± std of {seeds} seeds (%)")
        left.set_title("Test accuracy")
        left.legend()
        gaps = np.array([mean_and_std(row["gap"]) for row in rows])
        right.errorbar(n_batch, gaps[:, 0], yerr=gaps[:, 1], color="C2", marker="o", markersize=4, capsize=3)
        right.axhline(0, color="gray", linewidth=0.8)
        right.set_ylabel("difference in test accuracy (percentage points)")
        right.set_title("BN at test time: each batch's statistics\nminus the running averages")
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_xticks(n_batch, [str(n) for n in n_batch])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("batch size n_batch (training and test)")
        fig.suptitle(f"3-layer [50, 50], He init., the report's learning rates\nevery n_batch trained for {note}")
    return fig


def image_grid(images, titles, columns, title):
    """A grid of images (n, 32, 32, 3) in [0, 1], each with its title, no axes, columns of them across a page."""
    rows = -(-len(images) // columns)
    size = PAGE_WIDTH / columns
    title_lines = max(caption.count("\n") + 1 for caption in titles)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, (size + 0.12 * title_lines) * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, image, caption in zip(axes.flat, images, titles):
            ax.imshow(image, interpolation="nearest")
            ax.set_title(caption, fontsize=7)
        fig.suptitle(title)
    return fig


def weights_figure(images):
    """The first layer's weight vectors as images: images (m, 32, 32, 3), from inside.weight_images."""
    return image_grid(images, [f"unit {j + 1}" for j in range(len(images))], 10,
                      "The first layer's weights, one image per hidden unit\n(each stretched to its own range)")


def mistakes_figure(images, y, predicted, confidence, class_names):
    """Test images with their true class, the predicted one and its probability.

    images: (n, 32, 32, 3) in [0, 1]; y, predicted: (n,) classes; confidence: (n,) probabilities.
    """
    titles = [f"{class_names[t]}\ntaken for {class_names[p]}\n{100 * c:.0f} %"
              for t, p, c in zip(y, predicted, confidence)]
    return image_grid(images, titles, 6, "The test images the network gets wrong most confidently\n"
                                         "(true class, predicted class, its probability)")


def confusion_figure(matrix, class_names):
    """The confusion matrix, rows the true class, columns the predicted one, each cell its count.

    matrix: (K, K) counts (inside.confusion_matrix); the colour is the
    fraction of the row, so that the classes compare whatever their sizes.
    """
    fractions = matrix / matrix.sum(axis=1, keepdims=True)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = Figure(figsize=(PAGE_WIDTH, 5.6), layout="constrained")
        ax = fig.subplots()
        shown = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if fractions[i, j] > 0.5 else "black")
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"Confusion matrix on the {matrix.sum():,} test images (colour: fraction of the row)")
        fig.colorbar(shown, ax=ax, shrink=0.8, label="fraction of the true class's images")
    return fig
