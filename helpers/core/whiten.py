"""ZCA whitening: the training images decorrelated, and the map folded into the first layer afterwards.

Neighbouring pixels of an image are nearly equal, so the 3072 features of
CIFAR-10 are strongly correlated: the eigenvalues of their covariance (over
the 45,000 normalized training images, where they sum to 3072) run from 830
down to 0.00003, and ten directions hold 65 % of the variance. Gradient descent on the first layer then moves fast along the
few directions of large variance and barely along the many small ones, the
fine detail. ZCA whitening (Bell and Sejnowski, 1997; Krizhevsky, 2009, on
CIFAR-10) rotates the images onto the eigenvectors U, rescales each
direction to unit variance and rotates back:

    X_white = X Z,    Z = U diag((lambda + eps)^-1/2) U^T    (d, d), symmetric,

with the covariance C = U diag(lambda) U^T of the training images. eps keeps
the directions of smallest variance, mostly JPEG and sensor noise, from being
blown up: a direction of variance lambda is scaled to lambda / (lambda + eps).
Of all whitening maps, ZCA's stays closest to the images (Kessy et al., 2018):
a whitened image still looks like an image, its edges enhanced, so the
augmentations, which move pixels, still make sense on it.

Mirroring: C is the covariance of the training images and of their mirrors,
so it, and Z, commute with the mirror: mirroring a whitened image gives the
whitened mirror, exactly. Flips during training and mirror TTA at test time
therefore mean what they meant. A translation commutes with Z only
approximately (the image statistics are nearly the same everywhere, but not
at the border); it moves the whitened pixels, a fine augmentation in itself.

Folding: the first layer computes (X Z) W1 = X (Z W1). So after training,
W1 <- Z W1 (fold), and the network takes normalized images as every other
network does: evaluation, TTA, snapshots and checkpoints need nothing more.
"""

import numpy as np

from ..errors import ConfigError
from .augment import CHANNELS, SIDE


def zca_matrix(X, eps):
    """Z: (d, d), X's ZCA whitening map (module docstring), symmetric under the mirror.

    X: (n, d) normalized images (each feature of mean 0 over X), float32 or
    float64; eps > 0, added to every eigenvalue. Z has X's dtype; it is
    computed in float64. Cost on the 45,000 training images: a (3072, 3072)
    product over them and an eigendecomposition, 6.5 s with 2 cores; whitening
    them (whitened) 6 s more.
    """
    if not eps > 0:
        raise ConfigError(f"ZCA's eps must be > 0 (it is added to the covariance's eigenvalues), got {eps}.")
    n, d = X.shape
    C = np.dot(X.T, X).astype(np.float64) / n
    flipped = mirrored_features(d)
    C = (C + C[np.ix_(flipped, flipped)]) / 2  # the covariance of the images and of their mirrors
    lam, U = np.linalg.eigh(C)
    return ((U / np.sqrt(np.maximum(lam, 0) + eps)) @ U.T).astype(X.dtype)


def mirrored_features(d):
    """p: (d,), the feature each feature of a mirrored image comes from: mirror(X) = X[:, p]."""
    if d != CHANNELS * SIDE * SIDE:
        raise ConfigError(f"ZCA whitening is symmetrized under the mirror, so it needs {CHANNELS} x {SIDE} x "
                          f"{SIDE} = {CHANNELS * SIDE * SIDE} features per image (CIFAR-10), got {d}.")
    return np.arange(d).reshape(CHANNELS, SIDE, SIDE)[..., ::-1].ravel()


def whitened(X, Z, chunk_rows=5000):
    """X Z: (n, d), X: (n, d), computed a chunk of rows at a time into one new C-contiguous array."""
    out = np.empty((len(X), Z.shape[1]), np.result_type(X, Z))
    for start in range(0, len(X), chunk_rows):
        np.dot(X[start : start + chunk_rows], Z, out=out[start : start + chunk_rows])
    return out


def fold(net, Z):
    """W1 <- Z W1, in place: net then takes images as they were before whitening (module docstring)."""
    net.params["W1"][...] = np.dot(Z, net.params["W1"])
