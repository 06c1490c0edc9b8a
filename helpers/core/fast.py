"""The fast path: the textbook's training step, rearranged for speed.

The report's networks are small: a step multiplies (100, 3072) images by a
(3072, 50) matrix, and every other array is (100, 50) or smaller. At these
sizes a NumPy call costs about as much as the arithmetic it does, so the time
of a step is mostly the number of calls. Every trick below saves calls, or
passes over memory, without changing the math: tests/test_fast.py checks
that in float64 this path gives the textbook's cost and gradients
(helpers/core/layers.py and network.py) to a relative 1e-12, and trains the
same history.

The tricks, each with the reason and the gain measured by
`python benchmarks/fast_path.py` (microseconds per call, plain -> fast, on
the arrays of a report step, n_batch 100, float32; figures in
benchmarks/results/fast_path.json, OpenBLAS SkylakeX kernels, 2 threads):

1. Products as np.dot(A, B) rather than A @ B: the same BLAS call with
   less NumPy machinery around it (100x50 by 50x50: 3.4 -> 3.2 us; it
   mattered more when the machine was busy).
2. Sums over the batch as a product with a vector of ones (batch_sum): one
   BLAS call instead of a reduction, whose cost is mostly overhead
   (100x50: 2.2 -> 0.9 us).
3. Batch normalization's backward folded into one formula whose two sums
   are dgamma and dbeta, computed anyway (batchnorm_backward; 100x50:
   28 -> 9 us per layer, against the graph version of layers.py).
4. No gradient for the images: layer 1's dH would cost a (100, 50) x
   (50, 3072) product that nobody reads (120 us saved).
5. Every parameter in one flat vector, every gradient in another
   (FlatParameters), written in place: the update is two calls for the
   whole network instead of two per parameter array.
6. The backward pass scaled by eta (the loss's gradient times eta), so the
   gradients come out as the step itself and the update needs no
   multiplication pass.
7. The L2 term's gradient 2 lam W applied as a decay of the weights in the
   update (their part of the flat vector is contiguous), not added to dW
   layer by layer. Tricks 5 to 7 together: the 3-layer network's update
   61 -> 16 us.
8. Each row's maximum in the loss picked with argmax, which is faster than
   max over short rows (100x10: 4.9 -> 2.0 us).
9. The running averages of all batch-normalized layers updated in one call
   on one flat vector (9-layer network: 21 -> 3 us).
10. Augmentation in the fewest passes over the batch: flips and
   translations done by the gather that makes the batch, the jitter's
   offsets added by one BLAS call (augmented_minibatches). Measured by
   `python benchmarks/speed.py` (see augmented_minibatches).

A whole step, without gathering the batch: 3-layer BN network 644 -> 358 us
(1.8x), 9-layer BN network 1014 -> 492 us (2.1x).

Dropout, which the best model (--preset best) uses, runs on this path too:
forward draws its masks with layers.dropout_mask from the same generator, in
the same order, as network.forward, so both paths train the same networks
(tests/test_fast.py). On the best model's step the path gains mostly by
trick 4 (layer 1 is 3072 x 1024): 30.2 -> 17.9 ms per step (1.69x;
`python benchmarks/fast_path.py` on 2026-12-03, when the same computer
took 1191 -> 653 us for the 3-layer step: slower that day, the same ratio).

train() uses this path unless TrainConfig.textbook is set.
"""

import math
import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError
from .augment import CHANNELS, SIDE, draw_augmentation, inside_mask, raw_means
from .layers import BN_EPS, check_smoothing, dropout_mask
from .network import moving_average


# ------------------------------------------------ trick 2: sums as products


def batch_sum(A, out=None):
    """The sum over the batch (the rows), as one BLAS call. A: (n, d) -> (d,)."""
    return np.dot(_constant(A.shape[0], 1, A.dtype), A, out=out)


def batch_mean(A):
    """The mean over the batch (the rows), as one BLAS call. A: (n, d) -> (d,)."""
    n = A.shape[0]
    return np.dot(_constant(n, 1 / n, A.dtype), A)


@lru_cache(maxsize=32)
def _constant(n, value, dtype):
    """A read-only vector of n copies of value, made once per size."""
    vector = np.full(n, value, dtype)
    vector.flags.writeable = False
    return vector


# --------------------------------------------------------------- the layers


def batchnorm_forward(S, gamma, beta):
    """Training-mode batch normalization, in place on S where it can be.

    S: (n, d) (overwritten with S_hat), gamma, beta: (d,) -> S_tilde: (n, d),
    cache (S_hat, gamma, inv_std), and the batch's mu and var: (d,).
    """
    mu = batch_mean(S)
    S -= mu
    var = batch_mean(S * S)
    inv_std = (var + BN_EPS) ** -0.5
    S *= inv_std
    S_tilde = S * gamma
    S_tilde += beta
    return S_tilde, (S, gamma, inv_std), mu, var


def batchnorm_backward(dS_tilde, cache, dgamma, dbeta):
    """Trick 3: dS = gamma inv_std (g - mean(g) - S_hat mean(g S_hat)), g = dS_tilde.

    The two means are dbeta / n and dgamma / n, which are computed anyway.
    dS_tilde: (n, d); dgamma, dbeta: (d,) arrays written in place -> dS: (n, d).
    """
    S_hat, gamma, inv_std = cache
    n = dS_tilde.shape[0]
    batch_sum(dS_tilde * S_hat, out=dgamma)
    batch_sum(dS_tilde, out=dbeta)
    dS = dS_tilde - dbeta / n
    dS -= S_hat * (dgamma / n)
    dS *= gamma * inv_std
    return dS


def cross_entropy_forward(S, y, smoothing=0.0):
    """Trick 8. S: (n, K), y: (n,) -> mean cross-entropy, P: (n, K).

    With label smoothing eps the target is T = (1 - eps) Y + eps / K, as in
    layers.cross_entropy_forward. Since T's rows sum to one, a row's loss
    -sum_k T_k log P_k is log Z - (1 - eps) shifted_y - eps mean_k shifted_k:
    no log of P is needed. The caller checks eps (layers.check_smoothing).
    """
    n, K = S.shape
    rows = np.arange(n)
    shifted = S - S[rows, S.argmax(axis=1)][:, None]
    P = np.exp(shifted)
    Z = np.dot(P, _constant(K, 1, P.dtype))
    P /= Z[:, None]
    picked = shifted[rows, y]
    if smoothing:
        picked = (1 - smoothing) * picked + smoothing * np.dot(shifted, _constant(K, 1 / K, shifted.dtype))
    loss = float(np.add.reduce(np.log(Z) - picked)) / n
    return loss, P


def cross_entropy_backward(P, y, scale, smoothing=0.0):
    """Trick 6: scale * (P - T) / n, the loss's gradient at the scores times scale. -> (n, K).

    T = (1 - smoothing) Y + smoothing / K, the target of cross_entropy_forward, is
    never built: its two parts are subtracted from a copy of P in place.
    """
    n, K = P.shape
    dS = P.copy()
    if smoothing:
        dS -= smoothing / K
    dS[np.arange(n), y] -= 1 - smoothing
    dS *= scale / n
    return dS


# ------------------------------------------------------ the forward-backward


def forward(net, X, rng=None):
    """Training-mode scores. X: (n, d_in) -> S: (n, K), caches, batch_stats [mu1, var1, ...].

    rng draws the dropout masks, as network.forward does, in the same order
    and from the same numbers (layers.dropout_forward): needed when net.dropout > 0.
    """
    p, k = net.params, net.n_layers
    caches, batch_stats = [], []
    H = X
    for l in range(1, k):
        S = np.dot(H, p[f"W{l}"])
        bn_cache = None
        if net.norm == "batch":
            # The bias is left out: the mean subtraction cancels it exactly.
            S, bn_cache, mu, var = batchnorm_forward(S, p[f"gamma{l}"], p[f"beta{l}"])
            batch_stats += [mu, var]
        else:
            S += p[f"b{l}"]
        H_in, H = H, np.maximum(S, 0)
        M = None
        if net.dropout:
            M = dropout_mask(H.shape, net.dropout, rng, H.dtype)
            H *= M
        caches.append((H_in, bn_cache, M))
    S = np.dot(H, p[f"W{k}"])
    S += p[f"b{k}"]
    caches.append((H, None, None))
    return S, caches, batch_stats


def backward(net, dS, caches, grads):
    """The gradients from dS: (n, K), the loss's gradient at the scores, written into grads.

    grads: arrays keyed like net.params. The bias of a batch-normalized layer
    is not written: its gradient is zero, and grads must start at zero.
    """
    k = net.n_layers
    for l in range(k, 0, -1):
        H, bn_cache, M = caches[l - 1]
        if l < k:
            H_out = caches[l][0]  # layer l's output (ReLU, then dropout) is layer l + 1's input
            dS = dH * (H_out > 0)  # a dropped unit's dS is 0 either way: its H_out is 0
            if M is not None:
                dS *= M
            if bn_cache is not None:
                dS = batchnorm_backward(dS, bn_cache, grads[f"gamma{l}"], grads[f"beta{l}"])
        np.dot(H.T, dS, out=grads[f"W{l}"])
        if bn_cache is None:
            batch_sum(dS, out=grads[f"b{l}"])
        if l > 1:  # trick 4
            dH = np.dot(dS, net.params[f"W{l}"].T)


def forward_backward(net, X, y, grads, scale=1.0, smoothing=0.0, rng=None):
    """The loss of a mini-batch in training mode, and scale times its gradient.

    X: (n, d_in), y: (n,); grads: arrays keyed like net.params, written in
    place (the loss's gradient only: the L2 term is the update's, trick 7).
    smoothing: the label smoothing eps of the loss (0: none), checked by the caller.
    rng: the generator of the dropout masks (see forward).
    Returns the loss and the batch statistics [mu1, var1, mu2, var2, ...].
    """
    S, caches, batch_stats = forward(net, X, rng)
    loss, P = cross_entropy_forward(S, y, smoothing)
    backward(net, cross_entropy_backward(P, y, scale, smoothing), caches, grads)
    return loss, batch_stats


# ------------------------------------------- tricks 5 to 7: the flat update


@dataclass
class FlatParameters:
    """Every parameter of a network in one vector, the weight matrices first,
    and its gradient in another, laid out the same way.

    net.params holds views into `vector` and `grads` views into `gradient`,
    so the backward pass writes every gradient in place and updating the
    vector updates the network.
    """

    vector: np.ndarray
    gradient: np.ndarray
    grads: dict
    """Views into `gradient`, keyed like net.params."""
    n_weights: int


def flatten_parameters(net):
    """Move net.params into one FlatParameters; net.params becomes views into it."""
    names = sorted(net.params, key=lambda name: not name.startswith("W"))
    vector, views = flatten([net.params[name] for name in names])
    gradient, grad_views = flatten([np.zeros_like(net.params[name]) for name in names])
    view_of, grad_of = dict(zip(names, views)), dict(zip(names, grad_views))
    net.params = {name: view_of[name] for name in net.params}
    grads = {name: grad_of[name] for name in net.params}
    n_weights = sum(net.params[name].size for name in names if name.startswith("W"))
    return FlatParameters(vector, gradient, grads, n_weights)


def flatten(arrays):
    """One contiguous copy of a list of arrays, and views into it shaped like each."""
    if not arrays:
        return np.empty(0), []
    vector = np.concatenate([a.ravel() for a in arrays])
    views, start = [], 0
    for a in arrays:
        views.append(vector[start : start + a.size].reshape(a.shape))
        start += a.size
    return vector, views


def sgd_update(flat, eta, lam):
    """theta <- theta - eta (dloss/dtheta + 2 lam W), on the whole vector in two calls.

    flat.gradient holds eta * dloss/dtheta (trick 6); the L2 term is a decay
    of the weights, the first n_weights entries (trick 7).
    """
    flat.vector[: flat.n_weights] *= 1 - 2 * eta * lam
    flat.vector -= flat.gradient


def trains(net):
    """Whether this path trains net: the report's networks, batch-normalized before the ReLU or not at all,
    with or without dropout, without skips. Every other network trains on the textbook path."""
    return net.norm in ("none", "batch") and net.norm_place == "before" and not net.skips


def make_step(net, lam, smoothing=0.0, rng=None):
    """A training step for net on the fast path: step(X, y, eta) -> the mini-batch's loss.

    smoothing: the label smoothing eps of the loss (0: none). rng: the
    generator of the dropout masks, needed when net.dropout > 0. The step moves
    net's parameters and running averages into flat vectors (their views
    stay in net.params and net.running) and updates them in place. A step
    whose loss is not finite changes nothing, so that the caller can stop
    with the network as it was.
    """
    if not trains(net):
        raise ConfigError("The fast path trains the report's networks only, with batch normalization before the "
                          "ReLU or none, without skips: train this one with training.textbook_step "
                          "(train() does so by itself).")
    if net.dropout and rng is None:
        raise ConfigError(f"This network drops hidden units in training (dropout={net.dropout}): pass rng, "
                          "a numpy Generator, to draw the dropout masks.")
    check_smoothing(smoothing)
    flat = flatten_parameters(net)
    running, views = flatten(list(net.running.values()))
    net.running = dict(zip(net.running, views))  # mu1, var1, mu2, var2, ...

    def step(X, y, eta):
        loss, batch_stats = forward_backward(net, X, y, flat.grads, scale=eta, smoothing=smoothing, rng=rng)
        if math.isfinite(loss):
            sgd_update(flat, eta, lam)
            if batch_stats:  # trick 9
                moving_average(running, np.concatenate(batch_stats), net.alpha)
        return loss

    return step


# ------------------------------- trick 10: augmented batches in one gather


def augmented_minibatches(X, y, order, augment_rng, flip=False, translate=0, brightness=0.0, contrast=0.0,
                          mean=None, std=None):
    """The training batches, augmented as augment() would, in the fewest passes over each batch.

    X: (n, 3072) normalized images, y: (n,); order: an iterator of index
    batches (training.batch_indices); augment_rng and the rest: as for
    augment(), which draws the same numbers, so that every batch equals
    augment(X[idx], augment_rng, ...): bit for bit with flips and
    translations, to rounding with the jitter (tests/test_fast.py).

    augment() gathers the batch, copies it, reverses the flipped rows, moves
    every image within a zero-padded buffer, then scales each image and adds
    two outer products: seven passes over the batch after the gather. Here:
    - the mirrored images are made once, for the whole training set, beside
      the originals, inside one flat buffer with zero margins
      (augmentation_buffer); a batch is then a single gather of windows of
      that buffer, image i's window starting at its original or its mirror,
      moved by 32 dy + dx values (as augment.shift_images explains);
    - the mask of the pixels that came from inside the image and the
      contrast factors multiply the batch in one pass (their product is a
      (n, 3072) array either way);
    - the jitter's two outer products are one rank-2 product, written into
      the same scratch array every step and added to the batch, and the
      images' raw means are computed once per run for the whole training set.
    That costs memory, twice the training set with flips, and a copy of the
    training set, made once per process. Per step (`python benchmarks/speed.py`
    on the report's 3-layer network, Haswell kernels, 2 BLAS threads, best
    blocks, two runs; docs/speed.md): flips x 1.00 to 1.02 (x 1.23 on a
    copy of the batch), translations by 2 x 1.08 (1.28), both x 1.10 to 1.11,
    the jitter x 1.21 to 1.22 (1.44).
    """
    n, d = X.shape
    geometric, jittering = flip or translate, brightness or contrast
    if geometric:
        margin = (SIDE + 1) * translate
        windows = sliding_window_view(augmentation_buffer(X, flip, margin), d)  # windows[s] = buffer[s : s + d]
        mask = inside_mask(translate, X.dtype.str) if translate else None
    if jittering:
        image_means = raw_means(X, mean, std)
        offsets = np.stack([1 / std, -mean / std]).astype(X.dtype)  # (2, d): see augment.jitter
        scratch = np.empty((0, d), X.dtype)  # the offsets of a batch, written in place each step
    for idx in order:
        draws = draw_augmentation(len(idx), augment_rng, flip, translate, brightness, contrast)
        scale = None
        if geometric:
            start = margin + d * (idx + n * draws.flip if flip else idx)
            if translate:
                dy, dx = draws.shift
                start = start - (SIDE * dy + dx)
                scale = mask[dy + translate, dx + translate]  # a new array: mask is read-only
            X_batch = windows[start]
        else:
            X_batch = X[idx]
        if jittering:
            c = np.ones(len(idx), X.dtype) if draws.contrast is None else draws.contrast.astype(X.dtype)
            b = 0 if draws.brightness is None else draws.brightness.astype(X.dtype)
            if draws.contrast is not None:
                scale = c[:, None] if scale is None else np.multiply(scale, c[:, None], out=scale)
        if scale is not None:
            X_batch *= scale
        if jittering:
            weights = np.stack([(1 - c) * image_means[idx] + b, 1 - c], axis=1)  # (n_batch, 2)
            if len(scratch) != len(idx):
                scratch = np.empty_like(X_batch)
            X_batch += np.dot(weights, offsets, out=scratch)
        yield X_batch, y[idx]


_kept = {}


def augmentation_buffer(X, flip, margin):
    """X: (n, d), and its images mirrored if flip, in one flat buffer with `margin` zeros at each end.

    The buffer is kept for the next run on the same X in this process (only
    the last one): writing a copy of the training set into new memory costs
    up to 2.5 s on a 2-core x86_64 with 24 GB (the kernel compacting memory into huge
    pages for it), more than the flips save over a report-length run, while a notebook's or a
    search's worker trains run after run on the same data. X must not change
    in place between runs.
    """
    n, d = X.shape
    key = (flip, margin)
    if key in _kept and _kept[key][0]() is X:
        return _kept[key][1]
    _kept.clear()
    copies = 2 if flip else 1
    buffer = np.zeros(copies * n * d + 2 * margin, X.dtype)
    images = buffer[margin : margin + copies * n * d].reshape(copies * n, d)
    images[:n] = X
    if flip:  # augment.mirror, written in place: mirror(X) would make a temporary copy of the training set
        pixels = (n, CHANNELS, SIDE, SIDE)
        np.copyto(images[n:].reshape(pixels), X.reshape(pixels)[..., ::-1])
    _kept[key] = (weakref.ref(X), buffer)
    return buffer
