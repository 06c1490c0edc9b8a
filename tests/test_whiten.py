"""ZCA whitening (helpers/core/whiten.py): the map, its symmetry under the mirror, and its folding into W1."""

from dataclasses import replace

import numpy as np
import pytest

from helpers.core import whiten
from helpers.core.augment import mirror
from helpers.core.config import TrainConfig, check_config
from helpers.core.network import evaluate, init_network, scores
from helpers.core.training import train
from helpers.errors import ConfigError
from test_training import blobs

D = 3072


def images(n, seed=0, dtype=np.float64):
    """Correlated rows of 3072 features, of mean 0 per feature, like normalized images; not mirror-symmetric."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D)) @ (np.eye(D) + 0.3 * rng.standard_normal((D, D)) / np.sqrt(D))
    X += np.linspace(0, 1, D) * rng.standard_normal((n, 1))  # a ramp across the features: mirroring changes it
    X -= X.mean(axis=0)
    return X.astype(dtype)


def test_whitened_images_and_their_mirrors_have_the_identity_covariance():
    X = images(2500)
    Z = whiten.zca_matrix(X, 1e-9)
    both = whiten.whitened(np.concatenate([X, mirror(X)]), Z)
    np.testing.assert_allclose(both.T @ both / len(both), np.eye(D), atol=1e-5)
    np.testing.assert_allclose(Z, Z.T, atol=1e-10)


def test_a_direction_of_variance_lambda_keeps_lambda_over_lambda_plus_eps():
    X = images(2500)
    Z = whiten.zca_matrix(X, 0.5)
    both = np.concatenate([X, mirror(X)])
    lam, U = np.linalg.eigh(both.T @ both / len(both))
    white = whiten.whitened(both, Z) @ U
    np.testing.assert_allclose(np.mean(white ** 2, axis=0), lam / (lam + 0.5), rtol=1e-6, atol=1e-9)


def test_whitening_commutes_with_the_mirror():
    X = images(500, seed=1)
    Z = whiten.zca_matrix(X, 0.1)
    assert np.max(np.abs(mirror(X) - X)) > 1  # the images themselves are not symmetric
    np.testing.assert_allclose(whiten.whitened(mirror(X), Z), mirror(whiten.whitened(X, Z)), atol=1e-10)


def test_the_map_keeps_the_images_dtype_and_whitened_works_in_chunks():
    X = images(300, dtype=np.float32)
    Z = whiten.zca_matrix(X, 0.1)
    assert Z.dtype == np.float32
    out = whiten.whitened(X, Z, chunk_rows=7)
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_allclose(out, X @ Z, rtol=1e-4, atol=1e-4)


def test_a_folded_network_gives_on_images_the_scores_it_gave_on_whitened_ones():
    X = images(200, seed=2)
    Z = whiten.zca_matrix(X, 0.1)
    net = init_network([D, 30, 20, 10], norm="batch", seed=3, dtype=np.float64)
    before = scores(net, whiten.whitened(X, Z))
    whiten.fold(net, Z)
    np.testing.assert_allclose(scores(net, X), before, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("eps", [0.0, -1.0])
def test_a_non_positive_eps_is_refused(eps):
    with pytest.raises(ConfigError, match="eps must be > 0"):
        whiten.zca_matrix(images(10), eps)


def test_images_of_another_size_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="3 x 32 x 32 = 3072 features"):
        whiten.zca_matrix(blobs(50).X, 0.1)


def test_the_jitter_with_whitening_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="set zca to 0, or brightness and contrast to 0"):
        check_config(TrainConfig(zca=0.1, contrast=0.2))
    with pytest.raises(ConfigError, match="zca must be"):
        check_config(TrainConfig(zca=-0.1))


def labelled(n, seed):
    """images() with labels a linear rule of the images can learn."""
    X = images(n, seed).astype(np.float32)
    y = (X[:, :10] @ np.random.default_rng(9).standard_normal((10, 4))).argmax(axis=1)
    return type("Split", (), {"X": X, "y": y})


def test_training_with_zca_returns_networks_that_take_the_images_as_given():
    """The history is measured on whitened images by the unfolded network; the returned
    network, folded, gives the same on the images themselves; so do the snapshots."""
    train_set, val_set = labelled(400, 0), labelled(200, 1)
    config = TrainConfig(hidden=(20,), zca=0.1, n_batch=40, n_s=20, cycles=2, flip=True, evals_per_cycle=2)
    result = train(config, train_set, val_set, progress=False)
    final = evaluate(result.net, val_set.X, val_set.y, config.lam)
    assert final["loss"] == pytest.approx(result.history["val_loss"][-1], rel=1e-4)
    assert final["accuracy"] == result.history["val_accuracy"][-1]
    assert len(result.snapshots) == 2
    np.testing.assert_array_equal(result.snapshots[-1].params["W1"], result.net.params["W1"])

    plain = train(replace(config, zca=0.0), train_set, val_set, progress=False)
    assert not np.allclose(plain.net.params["W1"], result.net.params["W1"], atol=1e-3)
