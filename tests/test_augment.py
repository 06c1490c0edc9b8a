"""Data augmentation (helpers/core/augment.py) against what each operation should do,
and the vectorized code against a plain loop over the images."""

import numpy as np
import pytest

from helpers.core.augment import (
    Augmentation,
    apply_augmentation,
    augment,
    draw_augmentation,
    mirror,
    tta_proba,
)
from helpers.core.network import init_network, predict_proba
from helpers.errors import ConfigError

C, S = 3, 32  # channels, side


def known_image():
    """Raw pixels (3072,) in (0, 1] that say where they are: pixel (ch, r, j) holds (ch * 1024 + r * 32 + j + 1) / 3072."""
    return np.arange(1, C * S * S + 1) / (C * S * S)


def pixel(image, ch, r, j):
    return image.reshape(C, S, S)[ch, r, j]


def stats(seed=0, mirror_symmetric=False):
    """A per-pixel mean and std like the training set's, varying across the image; (3072,) each."""
    rng = np.random.default_rng(seed)
    mean, std = rng.uniform(0.4, 0.55, (C, S, S)), rng.uniform(0.22, 0.31, (C, S, S))
    if mirror_symmetric:  # the same at column j and 31 - j
        mean, std = (mean + mean[..., ::-1]) / 2, (std + std[..., ::-1]) / 2
    return mean.ravel(), std.ravel()


def batch(n=50, seed=0, dtype=np.float32):
    """Normalized images (n, 3072) and the mean and std that normalized them."""
    rng = np.random.default_rng(seed)
    mean, std = stats(seed)
    raw = rng.uniform(0, 1, (n, C * S * S))
    return ((raw - mean) / std).astype(dtype), mean, std


def reference(X, draws, mean=None, std=None):
    """The textbook version, one image at a time: the flip, then the translation pixel by
    pixel, filling what it uncovers with 0 (the training mean), then the jitter on the raw
    pixels around the original image's raw mean."""
    out = np.empty_like(X)
    for i in range(len(X)):
        image = X[i].astype(np.float64)
        m = (image * std + mean).mean() if mean is not None else None
        image = image.reshape(C, S, S)
        if draws.flip is not None and draws.flip[i]:
            image = image[:, :, ::-1]
        if draws.translate:
            dy, dx = draws.shift[:, i]
            moved = np.zeros_like(image)
            for r in range(S):
                for j in range(S):
                    if 0 <= r - dy < S and 0 <= j - dx < S:
                        moved[:, r, j] = image[:, r - dy, j - dx]
            image = moved
        image = image.ravel()
        if draws.contrast is not None or draws.brightness is not None:
            x = image * std + mean
            c = 1.0 if draws.contrast is None else draws.contrast[i]
            b = 0.0 if draws.brightness is None else draws.brightness[i]
            x = m + c * (x - m) + b
            image = (x - mean) / std
        out[i] = image
    return out


# ------------------------------------------------------------------ flips


def test_a_flip_mirrors_each_row_of_pixels_raw_and_normalized():
    x = known_image()
    everything = Augmentation(flip=np.array([True]))
    # Raw pixels (mean 0, std 1): column j takes column 31 - j, in every row of every channel.
    flipped = apply_augmentation(x[None], everything)[0]
    for ch, r, j in [(0, 0, 0), (0, 0, 31), (1, 7, 3), (2, 31, 16), (2, 31, 15)]:
        assert pixel(flipped, ch, r, j) == pixel(x, ch, r, S - 1 - j)
    # Normalized: the normalized values move the same way; with a mean and std the same at
    # columns j and 31 - j that is exactly the raw image mirrored.
    mean, std = stats(mirror_symmetric=True)
    X = ((x - mean) / std)[None]
    flipped_X = apply_augmentation(X, everything)[0]
    for ch, r, j in [(0, 0, 0), (1, 7, 3), (2, 31, 16)]:
        assert pixel(flipped_X, ch, r, j) == pixel(X[0], ch, r, S - 1 - j)
    np.testing.assert_allclose(flipped_X * std + mean, x.reshape(C, S, S)[..., ::-1].ravel(), atol=1e-12)


def test_flipping_twice_gives_the_image_back():
    X, _, _ = batch()
    everything = Augmentation(flip=np.ones(len(X), bool))
    once = apply_augmentation(X, everything)
    assert not np.array_equal(once, X)
    np.testing.assert_array_equal(apply_augmentation(once, everything), X)
    np.testing.assert_array_equal(mirror(mirror(X)), X)


def test_only_the_drawn_images_are_flipped():
    X, _, _ = batch()
    draws = draw_augmentation(len(X), np.random.default_rng(3), flip=True)
    out = augment(X, np.random.default_rng(3), flip=True)
    assert 0 < draws.flip.sum() < len(X)
    np.testing.assert_array_equal(out[draws.flip], mirror(X[draws.flip]))
    np.testing.assert_array_equal(out[~draws.flip], X[~draws.flip])


# ------------------------------------------------------------ translations


@pytest.mark.parametrize("dy, dx", [(2, -3), (-1, 4), (4, 4), (-4, -2), (0, 1), (3, 0)])
def test_a_translation_moves_known_pixels_and_fills_the_border_with_zero(dy, dx):
    x = known_image()[None]
    draws = Augmentation(shift=np.array([[dy], [dx]]), translate=4)
    moved = apply_augmentation(x, draws)[0].reshape(C, S, S)
    for ch in range(C):
        for r in range(S):
            for j in range(S):
                if 0 <= r - dy < S and 0 <= j - dx < S:
                    assert moved[ch, r, j] == pixel(x[0], ch, r - dy, j - dx)
                else:
                    assert moved[ch, r, j] == 0  # the training mean of that pixel
    # A pixel seen by name: (1, 10, 10) moves to (1, 10 + dy, 10 + dx).
    assert moved[1, 10 + dy, 10 + dx] == pixel(x[0], 1, 10, 10)
    assert (moved == 0).sum() == C * (S * S - (S - abs(dy)) * (S - abs(dx)))


def test_translations_of_a_batch_read_nothing_of_the_neighbouring_images():
    # Each image is constant (1, 2, 3, ...): a value from another image would show.
    n = 20
    X = np.repeat(np.arange(1, n + 1, dtype=np.float32)[:, None], C * S * S, axis=1)
    out = augment(X, np.random.default_rng(0), translate=4)
    for i in range(n):
        assert set(np.unique(out[i])) <= {0, i + 1}


def test_with_every_option_off_it_is_an_exact_copy():
    X, mean, std = batch()
    kept = X.copy()
    for out in (augment(X, np.random.default_rng(0)),
                augment(X, np.random.default_rng(0), translate=0, brightness=0.0, contrast=0.0, mean=mean, std=std)):
        np.testing.assert_array_equal(out, X)
        assert not np.shares_memory(out, X)
        assert out.dtype == X.dtype and out.flags.c_contiguous
    out[:] = 7  # the copy is the caller's
    np.testing.assert_array_equal(X, kept)


# ------------------------------------------------------------------ jitter


def test_the_random_changes_follow_their_distributions():
    n = 40_000
    draws = draw_augmentation(n, np.random.default_rng(0), flip=True, translate=3, brightness=0.2, contrast=0.4)
    assert abs(draws.flip.mean() - 0.5) < 0.01
    for shifts in draws.shift:
        assert shifts.min() == -3 and shifts.max() == 3
        assert np.abs(np.bincount(shifts + 3, minlength=7) / n - 1 / 7).max() < 0.01
    assert np.corrcoef(draws.shift)[0, 1] == pytest.approx(0, abs=0.02)
    assert 0.6 <= draws.contrast.min() and draws.contrast.max() < 1.4
    assert draws.contrast.mean() == pytest.approx(1, abs=0.005)
    assert draws.contrast.std() == pytest.approx(0.8 / np.sqrt(12), rel=0.02)  # uniform on [0.6, 1.4)
    assert -0.2 <= draws.brightness.min() and draws.brightness.max() < 0.2
    assert draws.brightness.mean() == pytest.approx(0, abs=0.003)
    assert draws.brightness.std() == pytest.approx(0.4 / np.sqrt(12), rel=0.02)


def test_jitter_changes_each_raw_image_as_documented():
    X, mean, std = batch(n=2000, dtype=np.float64)
    raw = X * std + mean
    rng_seed = 5
    draws = draw_augmentation(len(X), np.random.default_rng(rng_seed), brightness=0.1, contrast=0.3)
    new = augment(X, np.random.default_rng(rng_seed), brightness=0.1, contrast=0.3, mean=mean, std=std) * std + mean
    # The mean moves by the brightness offset, the spread around it scales by the contrast factor.
    np.testing.assert_allclose(new.mean(axis=1), raw.mean(axis=1) + draws.brightness, atol=1e-12)
    np.testing.assert_allclose(new.std(axis=1), raw.std(axis=1) * draws.contrast, rtol=1e-12)
    assert np.abs(new.mean(axis=1) - raw.mean(axis=1)).max() <= 0.1
    assert new.mean() == pytest.approx(raw.mean(), abs=0.005)


def test_jitter_needs_the_training_statistics():
    X, _, _ = batch()
    with pytest.raises(ConfigError, match="mean and std"):
        augment(X, np.random.default_rng(0), brightness=0.1)


@pytest.mark.parametrize("setting", [{"translate": 32}, {"translate": -1}, {"translate": 1.5}, {"translate": True},
                                     {"brightness": -0.1}, {"contrast": 1.5}, {"contrast": -0.1}])
def test_settings_out_of_range_are_refused(setting):
    X, mean, std = batch()
    with pytest.raises(ConfigError):
        augment(X, np.random.default_rng(0), mean=mean, std=std, **setting)


def test_rows_that_are_not_cifar_images_are_refused():
    with pytest.raises(ConfigError, match="3072"):
        augment(np.zeros((5, 100), np.float32), np.random.default_rng(0), flip=True)


# ---------------------------------------------- determinism, the reference


def test_the_same_seed_gives_the_same_batch_and_x_is_left_alone():
    X, mean, std = batch()
    kept = X.copy()
    options = dict(flip=True, translate=4, brightness=0.1, contrast=0.2, mean=mean, std=std)
    first = augment(X, np.random.default_rng(7), **options)
    np.testing.assert_array_equal(augment(X, np.random.default_rng(7), **options), first)
    assert not np.array_equal(augment(X, np.random.default_rng(8), **options), first)
    np.testing.assert_array_equal(X, kept)
    # One generator, two calls: two different batches, as in training.
    rng = np.random.default_rng(7)
    assert not np.array_equal(augment(X, rng, **options), augment(X, rng, **options))


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("options", [
    dict(flip=True, translate=4, brightness=0.2, contrast=0.3),
    dict(flip=True, translate=2),
    dict(translate=1, contrast=0.5),
    dict(brightness=0.1),
], ids=["everything", "geometry", "translate-contrast", "brightness"])
def test_the_vectorized_code_equals_a_loop_over_the_images(dtype, tol, options):
    X, mean, std = batch(n=64, dtype=dtype)
    draws = draw_augmentation(len(X), np.random.default_rng(11), **options)
    out = augment(X, np.random.default_rng(11), mean=mean, std=std, **options)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, reference(X, draws, mean, std), rtol=tol, atol=tol)


# ---------------------------------------------------- test-time augmentation


def test_tta_proba_is_the_mean_of_the_image_and_of_its_mirror():
    X, _, _ = batch(n=30, dtype=np.float64)
    net = init_network([C * S * S, 20, 20, 10], norm="batch", seed=1, dtype=np.float64)
    # A mirror built on its own: column j of every row of every channel from column 31 - j.
    ch, r, j = np.meshgrid(np.arange(C), np.arange(S), np.arange(S), indexing="ij")
    mirrored = X[:, (ch * S * S + r * S + (S - 1 - j)).ravel()]
    expected = (predict_proba(net, X) + predict_proba(net, mirrored)) / 2
    P = tta_proba(net, X)
    np.testing.assert_allclose(P, expected, rtol=1e-12)
    np.testing.assert_allclose(P.sum(axis=1), 1)
    assert not np.allclose(P, predict_proba(net, X))
