"""Inside the network as it trains: what every layer does to one fixed batch.

With TrainConfig.layer_stats, train() measures the statistics below at every
evaluation of the history (the steps of history["step"], step 0 included) and
keeps them in history["layers"]. They are measured on the probe: the first
n_batch training images, passed forward and back in training mode as the
network sees a mini-batch (batch normalization with the batch's own
statistics), by the textbook code of network.py in the network's dtype. The
probe is the same batch every time, so a curve moves because the network
changed, not because the batch did; it is never augmented. The measurement is
apart from the training step, so it works on the fast path too, and it reads
the network without changing it, nor any random stream of the training: a run
gives the same history, bit for bit, with layer_stats on and off.

For every hidden layer l (1 <= l < k), in the notation of network.py:
    pre_mean, pre_std    mean and standard deviation of the scores
                         S_l = H_{l-1} W_l + b_l, over the batch and the
                         layer's units together
    post_mean, post_std  the same of the normalization's output,
                         gamma_l N(S_l) + beta_l (gamma_l N(max(S_l, 0)) +
                         beta_l with norm_place "after"); None, as a whole,
                         for every evaluation of a network without one
    act_std              the standard deviation of the layer's output H_l,
                         after the ReLU (and the skip and dropout, if any: H_l
                         as the next layer sees it): the "activation std"
    dead                 the fraction of the layer's ReLU units that output
                         zero for every image of the batch
    hist_counts          a histogram of the values at the ReLU's input
    hist_edges           (gamma_l N(S_l) + beta_l when it normalizes before the ReLU,
                         S_l otherwise): HISTOGRAM_BINS counts, and the
                         bins' edges
and for every layer l (1 <= l <= k), the last included:
    grad_norm            ||dJ/dW_l||_F, the Frobenius norm of the gradient of
                         the cost (the L2 term included) on the probe batch
    update_ratio         ||W_l after - W_l before||_F / ||W_l before||_F for
                         the training step that just happened, whatever the
                         update rule; None at step 0, where no step happened
The forward and backward passes are in the network's dtype; the means,
standard deviations, norms and histograms of their arrays are in float64
(see mean below).

The histograms are of the ReLU's input, not of H_l: they show both sides of
the ReLU's threshold, where H_l's histogram would be a spike at zero holding
about half the values. Each histogram spans its own symmetric range [-r, r],
r the largest |value| of that layer at that evaluation (r = 1 when every
value is 0), which the edges record. With one range for all, a network
without BN initialized with sigma = 1e-4, whose values shrink about 1e-4
times per layer (1e-12 in layer 4 of the 9-layer network, 1e-27 in layer
8), would fall into the middle bin, and a BN network's into a few; with
its own range every histogram shows its shape, and r shows its scale. (A
histogram of log10 |value| shows the scales on one axis, but loses the sign,
and the zeros, which are what the ReLU makes.)

With dropout, the probe's masks come from a generator of their own, seeded
anew at every evaluation (training.record): the same masks every time, and
the training's dropout stream untouched.

Cost, measured by `python benchmarks/layer_stats.py --rounds 7` (report
split, float32, OpenBLAS Haswell kernels, 2 threads, the 2-core machine
quiet, 2026-11-27; benchmarks/results/layer_stats.json): one evaluation's
statistics, timed alone on the trained network (the copy of the weights,
then the probe; best of 20), take 1.07 ms for the report's 3-layer BN
network and 1.80 ms for the 9-layer one, two or three fast-path training
steps. Whole runs of 300 steps, with and without, interleaved in one
process, took x 1.03 (3-layer) and x 1.05 (9-layer), medians of 7; they
evaluate 11 times, 15 times as often as the report, whose run evaluates 21
times in 9,000 steps: there the statistics add about 25 and 40 ms, well
under 1 %.
"""

import numpy as np

from .network import forward, loss_and_gradients

HISTOGRAM_BINS = 40

STATS = {
    "pre_mean": "mean of the scores S_l (before BN)",
    "pre_std": "std of the scores S_l (before BN)",
    "post_mean": "mean after BN, gamma BN(S_l) + beta",
    "post_std": "std after BN, gamma BN(S_l) + beta",
    "act_std": "std of the output H_l (after the ReLU)",
    "dead": "fraction of dead ReLU units",
    "grad_norm": "||dJ/dW_l||, Frobenius norm",
    "update_ratio": "||W_l change|| / ||W_l|| per step",
}
"""The curves of history["layers"], one value per layer and evaluation, and what each measures."""

LOG_STATS = ("pre_std", "post_std", "act_std", "grad_norm", "update_ratio")
"""The statistics that span orders of magnitude, plotted on a log axis."""


def weights(net):
    """Copies of the weight matrices [W_1, ..., W_k]: the `before` of layer_stats."""
    return [net.params[f"W{l}"].copy() for l in range(1, net.n_layers + 1)]


def layer_stats(net, X, y, lam, rng=None, before=None, smoothing=0.0):
    """The statistics of the module docstring, for one evaluation.

    X: (n, d_in), y: (n,): the probe batch. rng: the generator of the
    dropout masks (needed when net.dropout > 0). before: weights(net) just
    before the last step, or None (then update_ratio is None). smoothing:
    the run's label smoothing, so that grad_norm is of the loss it trains on.
    Returns {name: [one value per layer]} of plain floats, ints and lists,
    ready for JSON: per hidden layer for the statistics of the module
    docstring's first list, per layer for grad_norm and update_ratio.
    """
    S, caches = forward(net, X, training=True, rng=rng)
    _, grads = loss_and_gradients(net, S, caches, y, lam, smoothing)
    k = net.n_layers
    stats = {name: [] for name in ("pre_mean", "pre_std", "post_mean", "post_std", "act_std", "dead",
                                   "hist_counts", "hist_edges")}
    for l in range(1, k):
        _, norm_cache, relu_input, _ = caches[l - 1]
        pre, post = layer_values(net, l, norm_cache, relu_input)
        H = caches[l][0][0]  # layer l's output is layer l + 1's input
        stats["pre_mean"].append(mean(pre))
        stats["pre_std"].append(std(pre))
        if post is not None:
            stats["post_mean"].append(mean(post))
            stats["post_std"].append(std(post))
        stats["act_std"].append(std(H))
        # A unit outputs zero exactly where its ReLU's input is <= 0.
        stats["dead"].append(float(np.all(relu_input <= 0, axis=0).mean()))
        counts, edges = histogram(relu_input)
        stats["hist_counts"].append(counts)
        stats["hist_edges"].append(edges)
    if net.norm == "none":
        stats["post_mean"] = stats["post_std"] = None
    stats["grad_norm"] = [norm(grads[f"W{l}"]) for l in range(1, k + 1)]
    stats["update_ratio"] = None if before is None else [
        norm(net.params[f"W{l}"] - W) / norm(W) for l, W in enumerate(before, start=1)
    ]
    return stats


# The reductions are in float64: in a float32 network without BN at sigma =
# 1e-4, the deep layers' values are 1e-20 and below, and their squares
# underflow to 0 in float32 (its smallest number is about 1e-45).


def mean(A):
    return float(A.mean(dtype=np.float64))


def std(A):
    return float(A.std(dtype=np.float64))


def norm(A):
    """The Frobenius norm of A."""
    return float(np.linalg.norm(A.astype(np.float64, copy=False)))


def layer_values(net, l, norm_cache, relu_input):
    """Hidden layer l's scores S_l and the normalization's output (None without one), from its caches.

    norm_cache, relu_input: layer l's parts of forward's caches -> (n, m_l)
    arrays. A normalization's cache starts with its input and its
    normalized input, (S, S_hat, ...).
    """
    if net.norm == "none":
        return relu_input, None
    if net.norm_place == "after":
        # The normalization's output is not cached (the skip and dropout come after it): rebuilt from S_hat.
        S_hat = norm_cache[1]
        return relu_input, net.params[f"gamma{l}"] * S_hat + net.params[f"beta{l}"]
    return norm_cache[0], relu_input


def histogram(values, bins=HISTOGRAM_BINS):
    """values: any array -> counts (bins ints), edges (bins + 1 floats) over [-r, r], r = max |value| (or 1)."""
    values = values.astype(np.float64, copy=False)  # edges below float32's smallest normal number stay exact
    r = float(np.abs(values).max()) or 1.0
    counts, edges = np.histogram(values, bins=bins, range=(-r, r))
    return counts.tolist(), edges.tolist()


def append(layers, step, stats):
    """Add one evaluation's layer_stats, taken at `step`, to layers (history["layers"]): a dict of lists."""
    layers.setdefault("step", []).append(step)
    for name, value in stats.items():
        layers.setdefault(name, []).append(value)
