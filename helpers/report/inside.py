"""Notebook 07: inside the network as it trains, and why batch normalization helps.

Four studies, trained through helpers.report.cache:

- the weight-scale sweep: test accuracy against the sigma of every layer's
  initial weights, from 1e-5 to 1, for the 3- and the 9-layer network,
  without and with BN (sweep_configs);
- normalization and the batch size: accuracy against n_batch, the same
  number of epochs for each, without normalization, with BN and with layer
  normalization (LN), and for BN the accuracy with each test batch's own
  statistics against the running averages (batch_size_configs); whether LN
  keeps its accuracy where BN loses it, by Welch's t-tests
  (layer_norm_text);
- what the report's 3-layer BN network learned: its first layer's weights
  as images, its confusion matrix and its most confident mistakes, from the
  trained network itself (helpers.report.cache.cached_network);
- each layer during training (TrainConfig.layer_stats, helpers.core.probe):
  the 3-layer network at sigma 1e-1, 1e-3 and 1e-4 and the 9-layer one with
  He initialization, without and with BN, one seed each
  (layer_stats_configs), and why_text, the paragraph on why a small sigma
  fails without BN, written from their statistics.

Both sweeps train short runs, one cycle of 2 * HALF_CYCLE_EPOCHS epochs
(short_config), so that the notebook fits in the main job's time: their
accuracies are below those of the report's schedule, and comparable with
each other only. The *_text functions write each section's conclusion from
the measured runs, so that no number in the notebook is typed in by hand.
"""

import numpy as np

from ..core.augment import CHANNELS, SIDE
from ..core.network import NORMS
from ..core.config import TrainConfig
from .summary import format_spread
from .tables import Table
from .verdicts import ALPHA, gain_and_p, learners, welch

SIGMAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""The sweep's sigmas, a log grid; "he" (sigma = sqrt(2 / d_in), per layer) is trained as a reference."""
DIVERGES = {("9-layer", 1.0, False)}
"""Settings left out of the sweep: without BN, the 9-layer network's scores at sigma 1 overflow float32
within a few steps, and training stops with a DivergedError (seeds 0 and 1, tests/test_inside.py)."""
NETWORKS = {"3-layer": (50, 50), "9-layer": (50, 30, 20, 20, 10, 10, 10, 10)}
BATCH_SIZES = (10, 20, 50, 100, 200, 500)
HALF_CYCLE_EPOCHS = 1
"""n_s of the short runs, in epochs: one cycle is two epochs (the report's runs: 2 cycles of 10 epochs)."""


def short_config(n_train, n_batch=100, **fields):
    """A TrainConfig of one cyclical cycle of 2 * HALF_CYCLE_EPOCHS epochs of n_train images, whatever n_batch.

    fields: any other TrainConfig setting. n_s is HALF_CYCLE_EPOCHS epochs in
    steps, so a run of n_batch 10 takes 50 times as many steps as one of
    n_batch 500, and every run sees every image equally often.
    """
    return TrainConfig(n_batch=n_batch, n_s=max(1, HALF_CYCLE_EPOCHS * n_train // n_batch), cycles=1, **fields)


def schedule_note(n_train):
    """How the short runs were trained, for titles: "one cycle of 2 epochs of 45,000 images"."""
    return f"one cycle of {2 * HALF_CYCLE_EPOCHS} epochs of {n_train:,} images"


def sweep_configs(n_train):
    """The weight-scale sweep: {(network name, sigma or "he", batch_norm): TrainConfig}.

    Every sigma of SIGMAS and He initialization, for each network of
    NETWORKS, without and with BN, on the short schedule, except the
    settings of DIVERGES.
    """
    return {
        (name, init, batch_norm): short_config(n_train, hidden=hidden, init=init, norm="batch" if batch_norm else "none")
        for name, hidden in NETWORKS.items()
        for init in (*SIGMAS, "he")
        for batch_norm in (False, True)
        if (name, init, batch_norm) not in DIVERGES
    }


def batch_size_configs(n_train, hidden=NETWORKS["3-layer"]):
    """Normalization and the batch size: {(n_batch, norm): TrainConfig}, smallest batches (longest runs) first.

    The network of hidden with He initialization, each n_batch of
    BATCH_SIZES on the short schedule, with each normalization of NORMS
    ("none", "batch", "layer"): the same epochs, so n_s scales as
    1 / n_batch. The learning rates are the report's for every n_batch.
    """
    return {(n_batch, norm): short_config(n_train, n_batch, hidden=hidden, norm=norm)
            for n_batch in BATCH_SIZES for norm in NORMS}


def tests(seeded, key="test_accuracy"):
    """One accuracy of each seed's summary: (seeds,) floats."""
    return np.array([run[key] for run in seeded], dtype=float)


def sigma_label(init):
    """A sigma as the tables write it: 1e-5, 0.1 as 1e-1, 1, and "he" as He."""
    if init == "he":
        return "He"
    return f"{init:.0e}".replace("e-0", "e-").replace("e+00", "")


def sweep_table(runs):
    """Test accuracy, mean ± std over the seeds, one row per network and BN, one column per sigma and He.

    runs: {(network, init, batch_norm): [summary] * seeds}, as from sweep_configs.
    """
    inits = list(dict.fromkeys(init for _, init, _ in runs))
    rows = []
    for name, batch_norm in dict.fromkeys((name, bn) for name, _, bn in runs):
        rows.append([name, "BN" if batch_norm else "no BN"]
                    + [format_spread(tests(runs[name, init, batch_norm]).tolist())
                       if (name, init, batch_norm) in runs else "diverges" for init in inits])
    seeds = len(next(iter(runs.values())))
    return Table(["network", "BN"] + [f"sigma {sigma_label(init)}" for init in inits], rows,
                 f"Test accuracy, mean ± std over {seeds} seeds:")


def at_chance(seeded):
    """Whether no seed learned: every one within 2 points of chance (helpers.report.verdicts.learners)."""
    return learners(tests(seeded)) == 0


def sweep_text(runs):
    """The sweep's conclusion, written from the runs: for each network, which sigmas train, with and without BN."""
    sentences = []
    for name in dict.fromkeys(name for name, _, _ in runs):
        sigmas = [init for (n, init, bn) in runs if n == name and init != "he" and bn]
        without = [init for (n, init, bn) in runs if n == name and init != "he" and not bn]
        with_bn = {s: float(np.mean(tests(runs[name, s, True]))) for s in sigmas}
        low, high = min(with_bn, key=with_bn.get), max(with_bn, key=with_bn.get)
        failed = [s for s in without if at_chance(runs[name, s, False])]
        trained = [s for s in without if s not in failed]
        text = (f"With BN, the {name} network's mean test accuracy over sigma from {sigma_label(sigmas[0])} to "
                f"{sigma_label(sigmas[-1])} goes from {100 * with_bn[low]:.1f} % (sigma {sigma_label(low)}) to "
                f"{100 * with_bn[high]:.1f} % (sigma {sigma_label(high)})")
        if (name, "he", True) in runs:
            text += f"; with He initialization {format_spread(tests(runs[name, 'he', True]).tolist())}"
        text += "."
        if failed:
            text += f" Without BN it stays at chance for sigma {', '.join(sigma_label(s) for s in failed)}"
            if trained:
                best = max(trained, key=lambda s: float(np.mean(tests(runs[name, s, False]))))
                text += (f" and trains only for sigma {', '.join(sigma_label(s) for s in trained)}, best at "
                         f"{sigma_label(best)} ({format_spread(tests(runs[name, best, False]).tolist())})")
            text += "."
        else:
            text += f" Without BN it trains for every sigma up to {sigma_label(without[-1])} too."
        sentences.append(text)
    return " ".join(sentences)


NETWORK_NAMES = {"none": "the network without normalization", "batch": "the BN network", "layer": "the LN network"}
"""How the batch-size study's sentences name the network of each normalization."""
REPORT_N_BATCH = TrainConfig().n_batch
"""The report's batch size, where layer_norm_text compares LN with BN beside the smallest batch."""


def batch_size_rows(runs):
    """Per n_batch: {"n_batch", "steps", each norm of runs, "batch_stats", "gap"}, each accuracy (seeds,) fractions.

    runs: {(n_batch, norm): [summary] * seeds}, as from batch_size_configs,
    every norm of NORMS at every n_batch; each norm gives the test accuracies
    of its network. batch_stats: the BN network's test accuracy with each test
    batch's own statistics; gap: per seed, that minus its accuracy with the
    running averages.
    """
    rows = []
    for n_batch in dict.fromkeys(n for n, _ in runs):
        bn = runs[n_batch, "batch"]
        rows.append({
            "n_batch": n_batch,
            "steps": bn[0]["steps"],
            **{norm: tests(runs[n_batch, norm]) for norm in NORMS},
            "batch_stats": tests(bn, "batch_stats_test_accuracy"),
            "gap": tests(bn, "batch_stats_test_accuracy") - tests(bn),
        })
    return rows


def batch_size_table(runs):
    """The batch-size study as a table: mean ± std over the seeds of each accuracy and of BN's gap."""
    rows = [[row["n_batch"], f"{row['steps']:,}", format_spread(row["none"].tolist()),
             format_spread(row["batch"].tolist()), format_spread(row["layer"].tolist()),
             format_spread(row["batch_stats"].tolist()), format_points(row["gap"])]
            for row in batch_size_rows(runs)]
    seeds = len(next(iter(runs.values())))
    return Table(["n_batch", "update steps", "no BN", "BN, running averages", "LN", "BN, batch statistics",
                  "BN: batch statistics - running averages"], rows, f"Test accuracy, mean ± std over {seeds} seeds:")


def format_points(values):
    """Differences of accuracies (fractions) in percentage points: "-1.23 ± 0.40 points"."""
    spread = f" ± {100 * np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
    return f"{100 * np.mean(values):+.2f}{spread} points"


def batch_size_text(runs):
    """The batch-size study's conclusion on each network's best n_batch and on BN's test-time statistics."""
    rows = batch_size_rows(runs)
    smallest, largest = rows[0], rows[-1]
    best = []
    for norm in NORMS:
        top = max(rows, key=lambda row: row[norm].mean())
        best.append(f"{NETWORK_NAMES[norm]} at n_batch {top['n_batch']} ({format_spread(top[norm].tolist())})")
    worst_gap = min(rows, key=lambda row: row["gap"].mean())
    return (
        f"For the same {2 * HALF_CYCLE_EPOCHS} epochs, {', '.join(best[:-1])} and {best[-1]} do best. "
        f"Normalizing each test batch by its own statistics instead of the running averages changes the BN "
        f"network's accuracy by {format_points(smallest['gap'])} at n_batch {smallest['n_batch']} and by "
        f"{format_points(largest['gap'])} at n_batch {largest['n_batch']}; the largest loss is "
        f"{format_points(worst_gap['gap'])}, at n_batch {worst_gap['n_batch']}: the fewer the images, the "
        f"noisier their mean and variance, and the more each image's scores depend on the others in its batch."
    )


def compared(a, b):
    """Welch's t-test of a against b (accuracies, fractions): (its result, "+1.23 points, p = 0.01")."""
    test = welch(a, b)
    return test, gain_and_p(test)


def lower(test):
    """Whether a Welch test (verdicts.welch) finds its first group really lower: p below ALPHA."""
    return test["p"] < ALPHA and test["difference"] < 0


def real(test):
    """What a Welch test (verdicts.welch) found, in words: "a real difference" when p is below ALPHA."""
    return "a real difference" if test["p"] < ALPHA else "within the seeds' noise"


def layer_norm_text(runs, at=REPORT_N_BATCH):
    """Does LN keep its accuracy where BN loses it at small batches? Welch's t-tests on the runs, in words.

    runs: {(n_batch, norm): [summary] * seeds}, as from batch_size_configs,
    at least two seeds each. Four tests: LN against BN at the smallest
    n_batch and at n_batch `at` (the report's), and each normalization's
    accuracy at the smallest n_batch against its own at `at`; without
    normalization the same change shows what the longer runs of small
    batches do by themselves. The last sentence follows from those tests.
    """
    rows = {row["n_batch"]: row for row in batch_size_rows(runs)}
    small, large = rows[min(rows)], rows[at]
    n = small["n_batch"]
    versus = {row["n_batch"]: compared(row["layer"], row["batch"]) for row in (small, large)}
    change = {norm: compared(small[norm], large[norm]) for norm in NORMS}
    bn_loses, ln_loses = lower(change["batch"][0]), lower(change["layer"][0])
    if not bn_loses:
        verdict = (f"So BN loses no accuracy at n_batch {n} that the seeds can tell, and there is no loss here for "
                   f"LN to avoid.")
    elif ln_loses:
        verdict = f"So LN loses accuracy at n_batch {n} too; it does not keep what BN loses."
    else:
        verdict = f"So LN keeps its accuracy at n_batch {n} (no loss the seeds can tell), where BN loses it."
    return (
        f"Layer normalization normalizes each image over its layer's units, the same way in training and at test "
        f"time, so that no image depends on the others in its batch. At n_batch {n} the LN network reaches "
        f"{format_spread(small['layer'].tolist())} against BN's {format_spread(small['batch'].tolist())} "
        f"({versus[n][1]}: {real(versus[n][0])}); at n_batch {at}, the report's, "
        f"{format_spread(large['layer'].tolist())} against {format_spread(large['batch'].tolist())} "
        f"({versus[at][1]}: {real(versus[at][0])}). From n_batch {at} down to {n}, BN's accuracy changes by "
        f"{change['batch'][1]}, LN's by {change['layer'][1]}, and without normalization by {change['none'][1]}. "
        + verdict
    )


# ---------------------------------------------------------------- what the network learned


def weight_images(W):
    """The columns of a first-layer weight matrix as colour images, each rescaled to [0, 1] for display.

    W: (3072, m), a row per input feature in CIFAR-10's order (1024 red,
    1024 green, 1024 blue values, each 32 rows of 32) -> (m, 32, 32, 3).
    Each image is stretched from its own minimum to its own maximum: the
    scales of the columns differ, and the pattern is what shows.
    """
    images = W.T.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1).astype(np.float64)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - low) / np.maximum(high - low, np.finfo(float).tiny)


def to_images(X, mean, std):
    """Normalized rows back to displayable images: X: (n, 3072) -> (n, 32, 32, 3) in [0, 1].

    mean, std: (3072,), how the rows were normalized (helpers.core.data.Cifar10).
    """
    pixels = np.clip(X * std + mean, 0.0, 1.0)
    return pixels.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)


def confusion_matrix(y, predicted, classes=10):
    """Counts of (true class, predicted class): y, predicted: (n,) -> (classes, classes), rows true."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y, predicted), 1)
    return matrix


def confident_mistakes(P, y, count):
    """The indices of the count wrongly classified rows with the highest predicted probability, highest first.

    P: (n, K) class probabilities, y: (n,) true classes -> (count,) indices
    (fewer if there are fewer mistakes).
    """
    predicted = P.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = P[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def confusion_text(matrix, class_names):
    """The confusion matrix's conclusion: the best and worst classes and the most frequent confusion."""
    per_class = np.diag(matrix) / matrix.sum(axis=1)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    true, wrong = np.unravel_index(off.argmax(), off.shape)
    order = np.argsort(per_class)
    return (
        f"Test accuracy {100 * np.trace(matrix) / matrix.sum():.2f} %. Best recognized: "
        f"{class_names[order[-1]]} ({100 * per_class[order[-1]]:.0f} %) and {class_names[order[-2]]} "
        f"({100 * per_class[order[-2]]:.0f} %); worst: {class_names[order[0]]} ({100 * per_class[order[0]]:.0f} %) "
        f"and {class_names[order[1]]} ({100 * per_class[order[1]]:.0f} %). The most frequent mistake: "
        f"{off[true, wrong]} of the {matrix[true].sum()} {class_names[true]} images taken for "
        f"{class_names[wrong]}."
    )


# ---------------------------------------------------------------- each layer during training


LAYER_STATS_SIGMAS = (1e-1, 1e-3, 1e-4)
"""The 3-layer network's sigmas whose layers are followed (the report's sensitivity experiment)."""


def layer_stats_configs(n_train):
    """The runs whose layers are followed: {(network, sigma or "he", batch_norm): TrainConfig(layer_stats=True)}.

    The 3-layer network at each sigma of LAYER_STATS_SIGMAS, then the 9-layer
    one with He initialization; without BN first. On the short schedule.
    """
    settings = [("3-layer", sigma) for sigma in LAYER_STATS_SIGMAS] + [("9-layer", "he")]
    return {
        (name, init, batch_norm): short_config(n_train, hidden=NETWORKS[name], init=init, norm="batch" if batch_norm else "none",
                                               layer_stats=True)
        for name in NETWORKS
        for batch_norm in (False, True)
        for network, init in settings
        if network == name
    }


def run_label(key):
    """("3-layer", 1e-3, True) -> "3-layer, sigma 1e-3, BN"."""
    name, init, batch_norm = key
    return f"{name}, {'He' if init == 'he' else 'sigma ' + sigma_label(init)}, {'BN' if batch_norm else 'no BN'}"


def traced_runs(runs, network):
    """The first seed of each run of one network, labelled for layer_plots: {run_label: summary}.

    runs: {(network, init, batch_norm): [summary] * seeds}, as from layer_stats_configs.
    """
    return {run_label(key): seeded[0] for key, seeded in runs.items() if key[0] == network}


def fan_in_gain(hidden, sigma, layer):
    """What a layer without BN multiplies the std of its input by at initialization: sigma sqrt(d_in / 2).

    Its scores S = H W have std sigma sqrt(d_in) times the root mean square of
    H; the ReLU keeps half of a symmetric signal's second moment (the 1 / 2).
    hidden: the hidden widths; layer: 2, 3, ... (layer 1's input, the image, has unit variance).
    """
    return sigma * np.sqrt(hidden[layer - 2] / 2)


def spaced(values, fmt=".1e"):
    """[1e-3, 2e-5] -> "1.0e-03, 2.0e-05"."""
    return ", ".join(f"{v:{fmt}}" for v in values)


def layer_table(runs):
    """Each followed run at step 0 and after its first evaluation: the layers' scale, gradients and updates.

    runs: {(network, init, batch_norm): [summary] * seeds}, the first seed used.
    Per run: the std of each hidden layer's output at step 0, the norm of
    each layer's gradient at step 0, each layer's relative update at the
    first evaluation after step 0, and the final test accuracy.
    """
    rows = []
    for key, seeded in runs.items():
        layers = seeded[0]["history"]["layers"]
        rows.append([run_label(key), spaced(layers["act_std"][0]), spaced(layers["grad_norm"][0]),
                     f"{spaced(layers['update_ratio'][1])} (step {layers['step'][1]})",
                     f"{100 * seeded[0]['test_accuracy']:.2f} %"])
    return Table(["run", "activation std per layer, step 0", "gradient norm per layer, step 0",
                  "relative update per layer", "test accuracy"], rows,
                 "Seed 0 of each run, measured on the probe batch (the first n_batch training images):")


def why_text(runs, sigma=1e-3):
    """Why a small sigma fails without BN, in numbers measured on the 3-layer runs at sigma.

    runs: {(network, init, batch_norm): [summary] * seeds}, with ("3-layer",
    sigma, False) and ("3-layer", sigma, True). Reads their histories'
    layer statistics at step 0 and at the first evaluation after it.
    """
    hidden = NETWORKS["3-layer"]
    plain, normalized = runs["3-layer", sigma, False][0], runs["3-layer", sigma, True][0]
    p, b = plain["history"]["layers"], normalized["history"]["layers"]
    act = p["act_std"][0]
    ratios = [act[l - 1] / act[l - 2] for l in range(2, len(act) + 1)]
    predicted = [fan_in_gain(hidden, sigma, l) for l in range(2, len(act) + 1)]
    first = p["step"][1]
    # The L2 term alone moves W by 2 eta lam W per step: what that step's update would be with no loss gradient.
    decay = 2 * plain["history"]["eta"][first - 1] * plain["config"]["lam"]
    if max(abs(u / decay - 1) for u in p["update_ratio"][1]) < 0.5:
        pull = (f" Without BN that is about the L2 term's own pull towards zero, 2 eta lambda = {decay:.1e} at "
                f"that step: the loss's gradient adds little to it, the weights hardly move and the signal does "
                f"not grow;")
    else:
        pull = f" The L2 term's pull towards zero alone is 2 eta lambda = {decay:.1e} at that step;"
    return (
        f"Without BN, at sigma {sigma_label(sigma)}, the hidden layers' outputs have standard deviations "
        f"{spaced(act)} at step 0: each layer after the first multiplies the scale of its input by "
        f"{spaced(ratios)} (sigma sqrt(d_in / 2) = {spaced(predicted)} is the gain that d_in inputs of weights "
        f"of std sigma and a ReLU give), so the scores that reach the softmax are almost the same for every "
        f"class. The backward pass multiplies by the same small weights on the "
        f"way back: the gradients' norms are {spaced(p['grad_norm'][0])} (layers 1 to {len(hidden) + 1}), "
        f"against {spaced(b['grad_norm'][0])} with BN. Step {first} changed each weight matrix by "
        f"{spaced(p['update_ratio'][1])} of its norm, against {spaced(b['update_ratio'][1])} with "
        f"BN.{pull} without BN the test accuracy of this short run (seed {plain['config']['seed']}, one cycle of "
        f"{2 * HALF_CYCLE_EPOCHS} epochs) ends at {100 * plain['test_accuracy']:.2f} %; notebook 5 tests, over "
        f"seeds and the report's longer schedule, whether such a network learns in the end. "
        f"Batch normalization divides each layer's scores by their own "
        f"standard deviation whatever sigma is, so its layers' outputs have standard deviations "
        f"{spaced(b['act_std'][0], '.2f')} from step 0, each layer gets a gradient of a useful size, and "
        f"the same network reaches {100 * normalized['test_accuracy']:.2f} % in the same steps."
        + growth_text(runs, sigma)
    )


def growth_text(runs, sigma, reference=1e-1):
    """With BN, how the small weights of sigma catch up with those of reference: a sentence, or "" without its run.

    BN makes a layer's output independent of its weights' scale, and the
    small last layer scales the backward signal down as much as BN's division
    by the scores' std scales it up: the gradients are those of reference,
    on weights reference / sigma times smaller.
    """
    if ("3-layer", reference, True) not in runs:
        return ""
    small, large = (runs["3-layer", s, True][0]["history"]["layers"] for s in (sigma, reference))
    return (
        f" With BN the gradients at sigma {sigma_label(sigma)} are about those at sigma {sigma_label(reference)} "
        f"({spaced(large['grad_norm'][0])}), on weights {reference / sigma:g} times smaller: step "
        f"{small['step'][1]} changed them by {spaced(small['update_ratio'][1])} of their norm, against "
        f"{spaced(large['update_ratio'][1])} at sigma {sigma_label(reference)}: the small weights can grow to a "
        f"working scale within the first steps."
    )
