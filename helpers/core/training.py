"""Mini-batch gradient descent with a triangular cyclical learning rate.

The learning rate climbs linearly from eta_min to eta_max in n_s steps, falls
back to eta_min in n_s more, and repeats for the given number of cycles
(Smith, 2015). Each time it is back at eta_min the network is snapshotted;
the snapshots' averaged softmax is the ensemble of the report.
"""

import copy
import functools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError, DivergedError
from ..progress import progress_bar
from .data import Split
from . import fast, probe, whiten
from .augment import augment
from .config import TrainConfig, check_config, half_cycle_steps
from .optim import init_state, learning_rate, update
from .network import (
    Network,
    evaluate,
    forward_backward,
    init_network,
    predict_proba,
    update_running_stats,
)


@dataclass
class TrainResult:
    """What a run produced: the final network, its history and its snapshots.

    history: "step" and, for "train" and "val", "<set>_cost", "<set>_loss",
        "<set>_accuracy", one entry per evaluation (at step 0, then
        evals_per_cycle times per cycle); "train" on the first
        config.curve_images training images.
        With config.layer_stats, also "layers": a dict of plain lists, one
        entry per evaluation, measured on the probe batch (helpers.core.probe
        says what each is):
            "step": [t, ...], the same as history["step"];
            "pre_mean", "pre_std", "act_std", "dead": [[float per hidden
                layer 1 .. k-1] per evaluation];
            "post_mean", "post_std": the same with BN; without BN, None
                (JSON null) for every evaluation;
            "grad_norm": [[float per layer 1 .. k] per evaluation];
            "update_ratio": the same, None for step 0 (and for the
                evaluation that Ctrl-C adds);
            "hist_counts": [[[40 ints (probe.HISTOGRAM_BINS)] per hidden
                layer] per evaluation]; "hist_edges": the same with 41
                floats, each histogram over its own range [-r, r].
    etas: (steps,) the learning rate used at every update step.
    snapshots: copies of the network each time eta came back to eta_min.
    """

    net: Network
    config: TrainConfig
    n_s: int
    history: dict = field(default_factory=dict)
    etas: np.ndarray = None
    snapshots: list = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    interrupted: bool = False
    before_precise_bn: Network | None = None
    """The final network as trained, before PreciseBN changed its statistics (None without PreciseBN)."""


def copy_network(net):
    return copy.deepcopy(net)


def textbook_step(net, X, y, eta, lam, rule=None, rng=None, smoothing=0.0):
    """One step of mini-batch gradient descent, as the assignment writes it.

    X: (n, d_in), y: (n,) -> the mini-batch's loss. Each parameter moves
    against the gradient of the cost, theta <- theta - eta * grad, and the
    running averages of batch normalization take in the batch's statistics.
    rule: None for that plain step, or (name, state, settings) to move the
    parameters by another update rule of helpers.core.optim instead.
    rng: the generator of the dropout masks, if the network drops units.
    smoothing: the label smoothing eps of the loss (0: none).
    A step whose loss is not finite changes nothing.
    """
    _, loss, grads, batch_stats = forward_backward(net, X, y, lam, rng, smoothing)
    if math.isfinite(loss):
        if rule is None:
            for name, param in net.params.items():
                param -= eta * grads[name]
        else:
            name, state, settings = rule
            update(name, net.params, grads, state, eta, **settings)
        update_running_stats(net, batch_stats)
    return loss


def make_step(net, config):
    """step(X, y, eta) -> loss: one training step of config's kind on net.

    The fast path of fast.py trains the report's networks with plain SGD
    (fast.trains says which), with dropout too; the textbook code of
    network.py trains everything else (other normalizations or places,
    skips, other update rules), and the report's networks too when
    config.textbook is set. Both draw the dropout masks from the generator
    [seed, 2], in the same order.
    """
    rng = np.random.default_rng([config.seed, 2]) if config.dropout > 0 else None
    if not config.textbook and fast.trains(net) and config.optimizer == "sgd":
        return fast.make_step(net, config.lam, config.label_smoothing, rng)
    rule = None
    if config.optimizer != "sgd":
        settings = {"momentum": config.momentum, "rho": config.rmsprop_rho}  # each rule reads its own
        rule = (config.optimizer, init_state(config.optimizer, net.params), settings)
    return functools.partial(textbook_step, net, lam=config.lam, rule=rule, rng=rng,
                             smoothing=config.label_smoothing)


def new_network(config, dims, dtype=np.float32):
    """The network of config's model settings, with fresh weights from config.seed. dims: [d_in, *hidden, K]."""
    return init_network(dims, config.norm, config.init, config.seed, dtype, config.alpha, dropout=config.dropout,
                        norm_place=config.norm_place, skips=config.skips)


def train(config, train_set, val_set, progress=True, mean=None, std=None):
    """Train a network from scratch; see TrainConfig for the settings.

    train_set, val_set: objects with X: (n, d) and y: (n,), e.g. helpers.core.data.Split.
    mean, std: (d,) how the images were normalized (helpers.core.data.Cifar10),
    needed by the brightness and contrast jitter only.
    With config.zca, training and the history see the images ZCA-whitened,
    and the networks returned (the final one and the snapshots) take them
    as given: the whitening is folded into their W1 (helpers.core.whiten).
    Ctrl-C stops training cleanly: the result then holds what was trained so
    far, with interrupted=True. A NaN or infinite cost raises DivergedError.
    """
    n_train = len(train_set.X)
    check_config(config, n_train)  # with n_train, the schedule is checked over the run's real length
    if (config.brightness or config.contrast) and (mean is None or std is None):
        raise ConfigError("The brightness and contrast jitter work on raw pixels: pass the data's mean and std.")
    Z = None
    if config.zca:  # training and its curves see whitened images; the map is folded into W1 at the end
        Z = whiten.zca_matrix(train_set.X, config.zca)
        train_set, val_set = (Split(whiten.whitened(s.X, Z), s.y) for s in (train_set, val_set))
    X, y = train_set.X, train_set.y
    n_s = half_cycle_steps(config, n_train)
    total_steps = 2 * n_s * config.cycles
    eval_every = max(1, (2 * n_s) // config.evals_per_cycle)

    dims = [X.shape[1], *config.hidden, int(max(train_set.y.max(), val_set.y.max())) + 1]
    net = new_network(config, dims, X.dtype)
    result = TrainResult(net, config, n_s, history={"step": []}, etas=np.zeros(total_steps))
    # Slices of the first rows: views, no copy.
    curve_set = train_set if config.curve_images is None else Split(X[: config.curve_images], y[: config.curve_images])
    probe_set = Split(X[: config.n_batch], y[: config.n_batch]) if config.layer_stats else None
    record(result, 0, curve_set, val_set, probe_set)

    step = make_step(net, config)
    batches = training_batches(config, X, y, mean, std)
    bar = progress_bar(total_steps, progress, desc="training", unit="step", mininterval=0.5)
    try:
        for t in range(total_steps):
            evaluating = (t + 1) % eval_every == 0 or t + 1 == total_steps
            # The update ratio needs the weights before the step; copied only before an evaluation, untimed.
            before = probe.weights(net) if probe_set is not None and evaluating else None
            start = time.perf_counter()
            X_batch, y_batch = next(batches)
            eta = learning_rate(config.schedule, t, total_steps, config.eta_min, config.eta_max, n_s,
                                config.step_gamma, None, config.warmup)
            loss = step(X_batch, y_batch, eta)
            if not math.isfinite(loss):
                raise DivergedError(
                    f"Training diverged: the loss became {loss} at step {t} (eta = {eta:.3g}). "
                    "Lower eta_max or raise lam."
                )
            result.etas[t] = eta
            result.steps = t + 1
            result.train_seconds += time.perf_counter() - start
            if result.steps % (2 * n_s) == 0:
                result.snapshots.append(copy_network(net))
            if evaluating:
                record(result, result.steps, curve_set, val_set, probe_set, before)
                bar.set_postfix(cost=f"{result.history['train_cost'][-1]:.3f}")
            bar.update(1)
    except KeyboardInterrupt:
        result.interrupted = True
        if result.history["step"][-1] != result.steps:
            record(result, result.steps, curve_set, val_set, probe_set)
    finally:
        batches.close()
        bar.close()
    result.etas = result.etas[: result.steps]
    if config.precise_bn and not result.interrupted:
        result.before_precise_bn = copy_network(net)
        precise_bn(net, X, y, config.precise_bn, config.n_batch, np.random.default_rng([config.seed, 3]))
    if Z is not None:
        for trained in (net, *result.snapshots, *filter(None, [result.before_precise_bn])):
            whiten.fold(trained, Z)
    return result


def precise_bn(net, X, y, batches, n_batch, rng):
    """PreciseBN (Wu and Johnson, 2021): batch normalization's population statistics, recomputed after training.

    The running averages that test time uses mix the statistics of the
    networks of the last few dozen steps, which were still moving, with
    alpha = 0.9 weighting the last batches most. Here the final network
    sees `batches` random batches of n_batch training images in training
    mode, dropout off as at test time, and each layer's running mean and
    variance become the mean over the batches of their batch means and
    variances. X: (n, d), y: (n,); net.running changes in place.
    """
    still = replace(net, dropout=0.0)  # shares net's arrays
    stats = [forward_backward(still, X[idx], y[idx], 0.0)[3]
             for idx in (rng.choice(len(X), n_batch, replace=False) for _ in range(batches))]
    for l, per_batch in enumerate(zip(*stats), start=1):
        net.running[f"mu{l}"][...] = np.mean([mu for mu, _ in per_batch], axis=0)
        net.running[f"var{l}"][...] = np.mean([var for _, var in per_batch], axis=0)


def training_batches(config, X, y, mean=None, std=None):
    """The run's mini-batches, augmented as config says: (X_batch, y_batch) pairs without end.

    X: (n, d), y: (n,); mean, std: (d,), for the jitter. The order comes from
    the generator [seed, 1], the augmentation's draws from [seed, 4]. The
    fast path's augmented_minibatches gives the same batches in fewer passes;
    with TrainConfig.textbook, augment() changes each gathered batch, as
    written in augment.py.
    """
    order = batch_indices(len(X), config.n_batch, np.random.default_rng([config.seed, 1]))
    augment_rng = np.random.default_rng([config.seed, 4])
    if not (config.flip or config.translate or config.brightness or config.contrast):
        return ((X[idx], y[idx]) for idx in order)
    if not config.textbook:
        return fast.augmented_minibatches(X, y, order, augment_rng, config.flip, config.translate,
                                          config.brightness, config.contrast, mean, std)
    return ((augment(X[idx], augment_rng, config.flip, config.translate, config.brightness, config.contrast,
                     mean, std), y[idx]) for idx in order)


def batch_indices(n, n_batch, rng):
    """The indices of each mini-batch, without end: epoch after epoch, each in a new random order.

    An epoch is n // n_batch batches of n_batch indices; the last n % n_batch
    images of its order sit that epoch out. Each batch is gathered from a
    permutation of the indices, never by shuffling (copying) the whole data set.
    """
    while True:
        order = rng.permutation(n)
        for j in range(n // n_batch):
            yield order[j * n_batch : (j + 1) * n_batch]


def record(result, step, train_set, val_set, probe_set=None, before=None):
    """Append the test-time cost, loss and accuracy on both sets to the history.

    train_set: the training images the curves are measured on (see TrainConfig.curve_images).
    probe_set: the probe batch of TrainConfig.layer_stats (None without it).
    Given, history["layers"] takes the statistics of helpers.core.probe too,
    with the update ratio of the step just made when `before` holds the
    weights from before it (probe.weights).
    """
    h = result.history
    h["step"].append(step)
    for name, s in (("train", train_set), ("val", val_set)):
        for key, value in evaluate(result.net, s.X, s.y, result.config.lam).items():
            h.setdefault(f"{name}_{key}", []).append(value)
    if probe_set is not None:
        c = result.config
        # Dropout masks of the probe's own, the same at every evaluation: the training's stream is untouched.
        rng = np.random.default_rng([c.seed, 5]) if c.dropout > 0 else None
        stats = probe.layer_stats(result.net, probe_set.X, probe_set.y, c.lam, rng, before, c.label_smoothing)
        probe.append(h.setdefault("layers", {}), step, stats)


def ensemble_proba(nets, X):
    """The mean of the networks' softmax outputs. X: (n, d) -> P: (n, K)."""
    return sum(predict_proba(net, X) for net in nets) / len(nets)


def ensemble_accuracy(nets, X, y):
    return float(np.mean(ensemble_proba(nets, X).argmax(axis=1) == y))
