"""The fast path (helpers/core/fast.py) against the textbook (layers.py, network.py).

The fast path rearranges the math for speed; it must not change it. In
float64 both give the same cost, gradients and steps to a relative 1e-12,
and they train the same history.
"""

import functools
from dataclasses import replace

import numpy as np
import pytest

from helpers.core import fast, layers, training
from helpers.core.augment import augment
from helpers.core.network import forward_backward, init_network
from helpers.core.config import TrainConfig
from helpers.core.training import textbook_step, train
from helpers.errors import ConfigError
from test_training import blobs

NINE_LAYERS = [3072, 50, 30, 20, 20, 10, 10, 10, 10, 10]
NETWORKS = [
    pytest.param([40, 10], "none", id="1-layer"),
    pytest.param([3072, 50, 50, 10], "none", id="3-layer"),
    pytest.param([3072, 50, 50, 10], "batch", id="3-layer-bn"),
    pytest.param(NINE_LAYERS, "none", id="9-layer"),
    pytest.param(NINE_LAYERS, "batch", id="9-layer-bn"),
]


def problem(dims, norm, n=100, seed=0, dtype=np.float64):
    """A network with gamma and beta moved away from 1 and 0, and a batch (X, y)."""
    rng = np.random.default_rng(seed)
    net = init_network(dims, norm=norm, seed=seed, dtype=dtype)
    for name, p in net.params.items():
        if name.startswith(("gamma", "beta")):
            p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    X = rng.standard_normal((n, dims[0])).astype(dtype)
    y = rng.integers(0, dims[-1], n)
    return net, X, y


def assert_same(a, b, rel=1e-12, what=""):
    """max |a - b| <= rel * max |b|: a relative difference over the whole array (zero must stay zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.max(np.abs(a - b)) <= rel * np.max(np.abs(b)), what


@pytest.mark.parametrize("dims, norm", NETWORKS)
def test_the_fast_loss_and_gradients_are_the_textbook_ones(dims, norm):
    net, X, y = problem(dims, norm)
    _, loss, grads, batch_stats = forward_backward(net, X, y, lam=0.0)
    fast_grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    fast_loss, fast_stats = fast.forward_backward(net, X, y, fast_grads)

    assert fast_loss == pytest.approx(loss, rel=1e-12)
    for name in net.params:
        assert_same(fast_grads[name], grads[name], what=name)
    assert len(fast_stats) == 2 * len(batch_stats)
    for fast_stat, stat in zip(fast_stats, [s for pair in batch_stats for s in pair]):
        assert_same(fast_stat, stat)


@pytest.mark.parametrize("dims, norm", NETWORKS)
def test_a_fast_step_is_the_textbook_step(dims, norm):
    """Parameters and running averages after two steps with lam > 0: the L2 term, the
    scaling by eta and the flat update add up to theta - eta * grad."""
    textbook, X, y = problem(dims, norm)
    quick, _, _ = problem(dims, norm)
    step = fast.make_step(quick, lam=0.01)
    for eta in (0.05, 0.02):
        assert step(X, y, eta) == pytest.approx(textbook_step(textbook, X, y, eta, lam=0.01), rel=1e-12)
    for name in textbook.params:
        assert_same(quick.params[name], textbook.params[name], what=name)
    for name in textbook.running:
        assert_same(quick.running[name], textbook.running[name], what=name)


def test_both_paths_train_the_same_history():
    """A few hundred steps of the report's schedule on toy data: float64 agrees to
    many digits, float32 to its own rounding (which training amplifies a little)."""
    config = dict(hidden=(30, 20), n_batch=20, n_s=100, cycles=2, evals_per_cycle=4, lam=0.005)
    for dtype, rel in ((np.float64, 1e-9), (np.float32, 1e-3)):
        train_set, val_set = blobs(600), blobs(100, seed=1)
        train_set.X, val_set.X = train_set.X.astype(dtype), val_set.X.astype(dtype)
        runs = [train(TrainConfig(**config, textbook=textbook), train_set, val_set, progress=False)
                for textbook in (True, False)]
        assert runs[0].steps == runs[1].steps == 400
        for key in ("train_cost", "train_loss", "val_loss"):
            np.testing.assert_allclose(runs[1].history[key], runs[0].history[key], rtol=rel, err_msg=key)
        assert runs[1].history["val_accuracy"][-1] == pytest.approx(runs[0].history["val_accuracy"][-1], abs=0.02)
        for name, p in runs[0].net.params.items():
            assert runs[1].net.params[name].dtype == p.dtype == dtype
            assert_same(runs[1].net.params[name], p, rel=100 * rel, what=name)


@pytest.mark.parametrize("dims, norm", NETWORKS)
def test_with_label_smoothing_the_fast_loss_and_gradients_are_the_textbook_ones(dims, norm):
    net, X, y = problem(dims, norm)
    _, loss, grads, _ = forward_backward(net, X, y, lam=0.0, smoothing=0.1)
    fast_grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    fast_loss, _ = fast.forward_backward(net, X, y, fast_grads, smoothing=0.1)

    assert fast_loss == pytest.approx(loss, rel=1e-12)
    last = f"W{len(dims) - 1}"
    plain = forward_backward(net, X, y, lam=0.0)[2][last]
    assert np.max(np.abs(grads[last] - plain)) > 0.01 * np.max(np.abs(plain))  # the smoothing is used
    for name in net.params:
        assert_same(fast_grads[name], grads[name], what=name)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_with_label_smoothing_the_step_of_each_path_is_the_same(norm):
    """training.make_step hands config.label_smoothing to the fast path and to the textbook's."""
    config = TrainConfig(lam=0.01, label_smoothing=0.2)
    textbook, X, y = problem([3072, 50, 50, 10], norm)
    quick, _, _ = problem([3072, 50, 50, 10], norm)
    plain, _, _ = problem([3072, 50, 50, 10], norm)
    steps = [training.make_step(quick, config), training.make_step(textbook, replace(config, textbook=True)),
             training.make_step(plain, replace(config, label_smoothing=0.0))]
    for eta in (0.05, 0.02):
        fast_loss, textbook_loss, plain_loss = (step(X, y, eta) for step in steps)
        assert fast_loss == pytest.approx(textbook_loss, rel=1e-12)
    assert fast_loss != pytest.approx(plain_loss, rel=1e-3)
    for name in textbook.params:
        assert_same(quick.params[name], textbook.params[name], what=name)
    for name in textbook.running:
        assert_same(quick.running[name], textbook.running[name], what=name)


def test_the_fast_step_refuses_a_bad_smoothing_before_touching_the_network():
    net, _, _ = problem([40, 10], "none")
    params = net.params
    with pytest.raises(ConfigError, match="Label smoothing must be a number in"):
        fast.make_step(net, 0.0, smoothing=1.0)
    assert net.params is params  # not yet moved into the flat vector


@pytest.mark.parametrize("sigma", ["he", 1e-4])
def test_three_batch_norm_backwards_agree(sigma):
    """The graph version, the assignment's folded formula and the fast path's."""
    rng = np.random.default_rng(4)
    S = rng.standard_normal((50, 7)) * (1e-3 if sigma == 1e-4 else 1.0) + 2.0
    gamma, beta = 1 + 0.3 * rng.standard_normal(7), 0.3 * rng.standard_normal(7)
    dout = rng.standard_normal((50, 7))
    _, cache = layers.batchnorm_forward(S, gamma, beta)
    graph = layers.batchnorm_backward(dout, cache)
    folded = layers.batchnorm_backward_folded(dout, cache)
    _, fast_cache, _, _ = fast.batchnorm_forward(S.copy(), gamma, beta)
    dgamma, dbeta = np.empty(7), np.empty(7)
    quick = (fast.batchnorm_backward(dout, fast_cache, dgamma, dbeta), dgamma, dbeta)
    for name, g, f, q in zip(("dS", "dgamma", "dbeta"), graph, folded, quick):
        assert_same(f, g, rel=1e-10, what=name)
        assert_same(q, g, rel=1e-10, what=name)


def test_a_step_with_a_nonfinite_loss_changes_nothing():
    net, X, y = problem([40, 10], "none")
    step = fast.make_step(net, lam=0.01)
    before = {name: p.copy() for name, p in net.params.items()}
    X[0, 0] = np.nan
    assert not np.isfinite(step(X, y, 0.1))
    for name, p in net.params.items():
        np.testing.assert_array_equal(p, before[name], err_msg=name)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_a_scaled_pass_gives_the_gradients_times_the_scale(norm):
    net, X, y = problem([30, 16, 12, 10], norm, n=25)
    grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    scaled = {name: np.zeros_like(p) for name, p in net.params.items()}
    fast.forward_backward(net, X, y, grads)
    fast.forward_backward(net, X, y, scaled, scale=0.05)
    for name in net.params:
        np.testing.assert_allclose(scaled[name], 0.05 * grads[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_flat_parameters_are_views_of_one_vector_and_keep_the_values():
    net, _, _ = problem([30, 16, 12, 10], "batch")
    values = {name: p.copy() for name, p in net.params.items()}
    flat = fast.flatten_parameters(net)
    for name, p in net.params.items():
        np.testing.assert_array_equal(p, values[name])
        assert np.shares_memory(p, flat.vector) and np.shares_memory(flat.grads[name], flat.gradient)
    assert flat.vector.size == sum(p.size for p in values.values())
    assert flat.n_weights == sum(p.size for name, p in values.items() if name.startswith("W"))


def test_batch_sum_and_mean_are_the_sums_and_means_over_rows():
    A = np.random.default_rng(0).standard_normal((37, 5)).astype(np.float32)
    np.testing.assert_allclose(fast.batch_sum(A), A.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(fast.batch_mean(A), A.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert fast.batch_sum(A).dtype == np.float32
    out = np.empty(5, np.float32)
    assert fast.batch_sum(A, out=out) is out


@pytest.mark.parametrize("option", [dict(norm_place="after"), dict(skips=True)])
def test_the_fast_path_refuses_a_network_with_options(option):
    with pytest.raises(ConfigError, match="textbook_step"):
        fast.make_step(init_network([12, 6, 6, 3], **option), 0.0)


def test_the_fast_path_refuses_dropout_without_a_generator_before_touching_the_network():
    net = init_network([12, 6, 6, 3], dropout=0.2)
    params = net.params
    with pytest.raises(ConfigError, match="pass rng"):
        fast.make_step(net, 0.0)
    assert net.params is params


@pytest.mark.parametrize("dims, norm", NETWORKS[1:])
def test_with_dropout_the_fast_loss_and_gradients_are_the_textbook_ones(dims, norm):
    """The same generator state gives both paths the same masks."""
    net, X, y = problem(dims, norm)
    net = replace(net, dropout=0.3)
    _, loss, grads, _ = forward_backward(net, X, y, lam=0.0, rng=np.random.default_rng(7))
    fast_grads = {name: np.zeros_like(p) for name, p in net.params.items()}
    fast_loss, _ = fast.forward_backward(net, X, y, fast_grads, rng=np.random.default_rng(7))

    assert fast_loss == pytest.approx(loss, rel=1e-12)
    plain = forward_backward(replace(net, dropout=0.0), X, y, lam=0.0)[1]
    assert fast_loss != pytest.approx(plain, rel=1e-3)  # the masks are used
    for name in net.params:
        assert_same(fast_grads[name], grads[name], what=name)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_with_dropout_the_step_of_each_path_is_the_same(norm):
    """training.make_step gives both paths the generator [seed, 2], so three steps draw the same masks."""
    config = TrainConfig(lam=0.01, dropout=0.2, seed=3)
    nets = [replace(problem([3072, 50, 50, 10], norm)[0], dropout=0.2) for _ in range(2)]
    _, X, y = problem([3072, 50, 50, 10], norm)
    quick, textbook = (training.make_step(net, replace(config, textbook=textbook))
                       for net, textbook in zip(nets, (False, True)))
    assert isinstance(textbook, functools.partial) and not isinstance(quick, functools.partial)
    for eta in (0.05, 0.02, 0.03):
        assert quick(X, y, eta) == pytest.approx(textbook(X, y, eta), rel=1e-12)
    for name in nets[1].params:
        assert_same(nets[0].params[name], nets[1].params[name], what=name)
    for name in nets[1].running:
        assert_same(nets[0].running[name], nets[1].running[name], what=name)


def test_with_dropout_both_paths_train_the_same_history():
    config = TrainConfig(hidden=(30, 20), n_batch=20, n_s=100, cycles=1, evals_per_cycle=4, lam=0.005,
                         dropout=0.2)
    train_set, val_set = blobs(600), blobs(100, seed=1)
    train_set.X, val_set.X = train_set.X.astype(np.float64), val_set.X.astype(np.float64)
    runs = [train(replace(config, textbook=textbook), train_set, val_set, progress=False)
            for textbook in (True, False)]
    for key in ("train_cost", "train_loss", "val_loss"):
        np.testing.assert_allclose(runs[1].history[key], runs[0].history[key], rtol=1e-9, err_msg=key)
    for name, p in runs[0].net.params.items():
        assert_same(runs[1].net.params[name], p, rel=1e-7, what=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [dict(flip=True), dict(translate=2), dict(flip=True, translate=4),
                                     dict(brightness=0.2), dict(contrast=0.3), dict(translate=1, contrast=0.3),
                                     dict(flip=True, translate=3, brightness=0.1, contrast=0.2)])
def test_augmented_batches_equal_augment_of_the_gathered_batch(options, dtype):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((23, 3072)).astype(dtype), rng.integers(0, 10, 23)
    mean, std = rng.uniform(0.4, 0.55, 3072), rng.uniform(0.22, 0.31, 3072)
    order = training.batch_indices(len(X), 5, np.random.default_rng(1))
    batches = fast.augmented_minibatches(X, y, order, np.random.default_rng(2), mean=mean, std=std, **options)
    plain_order, plain_rng = training.batch_indices(len(X), 5, np.random.default_rng(1)), np.random.default_rng(2)
    jitter = "brightness" in options or "contrast" in options
    for _ in range(12):  # three epochs: the first and last images are moved across the buffer's margins too
        X_batch, y_batch = next(batches)
        idx = next(plain_order)
        expected = augment(X[idx], plain_rng, mean=mean, std=std, **options)
        if jitter:  # the offsets are summed in another order (one BLAS product)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(X_batch, expected, rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(X_batch, expected)
        np.testing.assert_array_equal(y_batch, y[idx])
        assert X_batch.dtype == X.dtype and X_batch.shape == (5, 3072)


@pytest.mark.parametrize("options", [dict(flip=True, translate=2), dict(translate=1), dict(),
                                     dict(flip=True, brightness=0.1, contrast=0.2)])
def test_training_batches_are_the_same_on_both_paths(options):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 3072)).astype(np.float32), rng.integers(0, 10, 40)
    mean, std = rng.uniform(0.4, 0.55, 3072), rng.uniform(0.22, 0.31, 3072)
    fast_batches = training.training_batches(TrainConfig(n_batch=8, **options), X, y, mean, std)
    textbook_batches = training.training_batches(TrainConfig(n_batch=8, textbook=True, **options), X, y, mean, std)
    for _ in range(10):
        (Xf, yf), (Xt, yt) = next(fast_batches), next(textbook_batches)
        np.testing.assert_allclose(Xf, Xt, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(yf, yt)


def test_the_augmentation_buffer_is_kept_for_the_same_images_only():
    rng = np.random.default_rng(4)
    X, other = rng.standard_normal((2, 6, 3072)).astype(np.float32)
    buffer = fast.augmentation_buffer(X, True, 66)
    assert buffer.shape == (2 * 6 * 3072 + 2 * 66,) and not buffer[:66].any() and not buffer[-66:].any()
    np.testing.assert_array_equal(buffer[66 : 66 + X.size].reshape(X.shape), X)
    from helpers.core.augment import mirror
    np.testing.assert_array_equal(buffer[66 + X.size : -66].reshape(X.shape), mirror(X))
    assert fast.augmentation_buffer(X, True, 66) is buffer
    assert fast.augmentation_buffer(X.copy(), True, 66) is not buffer
    assert fast.augmentation_buffer(other, False, 0).size == other.size
