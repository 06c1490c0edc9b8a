"""Data augmentation of a mini-batch: random flips, translations and a photometric jitter.

Each training step can show the network a slightly changed copy of its
mini-batch: images mirrored left to right, moved by a few pixels, made a
little brighter or darker, their contrast raised or lowered. Every image
draws its own changes from the NumPy Generator passed in, so one generator
state always gives the same batch, and the work is done on the whole batch
at once, with no Python loop over the images.

The images are the rows of X: (n, 3072), normalized as helpers.core.data
returns them, X = (x - mean) / std per feature, x the pixels on the [0, 1]
scale. A row holds 1024 red, then 1024 green, then 1024 blue values, each
channel a row-major 32 x 32 grid: the pixel in row r and column j of channel
ch is feature ch * 1024 + r * 32 + j.

How each operation relates to the normalized data:

- Flips and translations move normalized values: X[q] goes to X[p]. That
  moves the raw pixel exactly only where the training mean and std are the
  same at p and q. Over CIFAR-10 they vary little across an image (mean 0.39
  to 0.55, std 0.22 to 0.32), so on the raw scale the result differs from
  the exact move by 0.45/255 on average (at most 4/255) for a flip, and by
  1.4/255 on average (at most 18/255, next to the border) for a move by 4
  columns (2,000 training images of the JPEG re-encoded copy). Moving raw pixels
  instead, x = X std + mean and back, costs four more passes over the batch:
  with every option on, 0.43 ms per batch against 0.34.
- A translation fills the pixels it uncovers with 0: the training mean of
  that very pixel, so the border shows the mean image of the training set.
- The jitter is exact on the raw scale, which is why it needs the training
  mean and std: on raw pixels it is an affine map of each image, which the
  normalization turns into another affine map (see jitter). Values are not
  clipped to [0, 1].

The operations run in this order: flip, translate, jitter. So the border a
translation uncovers, the training mean, is jittered with the rest of the
image, and the contrast scales each image around the raw mean of the whole
original image (raw_means: computed before the move, so that it does not
depend on how much border came in).

The distributions, independent from image to image and from one operation
to another:

- flip: each image is mirrored left to right with probability 1/2;
- translate k: a shift (dy, dx) with dy and dx uniform integers in [-k, k]:
  the content moves dy rows down and dx columns right;
- contrast c: a factor uniform in [1 - c, 1 + c); x -> m + factor (x - m)
  on the raw scale, m the mean of the image's 3072 raw values;
- brightness b: an offset uniform in [-b, b), added to every raw value.

draw_augmentation draws them from the generator in that order, flips (n
uniforms), shifts (2 n integers, every dy then every dx), contrast factors
(n), brightness offsets (n), and nothing for an operation that is off.

Speed: each option costs a few passes over the batch, 20 to 40 us each for
100 images, against 440 to 550 us for a whole step of the report's 3-layer
network on the fast path. Alone after the gather (`python benchmarks/speed.py`
before trick 10, 2 BLAS threads, best blocks of 250 steps) flips added 0.10
ms per step (x 1.23), translations by 4 pixels 0.13 ms (x 1.29), the jitter
0.19 ms (x 1.44), all three 0.36 ms (x 1.82): an image mean, a scaling and
two outer products for the jitter, the flipped rows reversed and put back,
the shifted rows and their mask. So train() augments with the same draws in
fewer passes (helpers.core.fast.augmented_minibatches: flips and
translations in the gather itself, x 1.00 to 1.11; the jitter x 1.21) and
uses this module on the textbook path. The comments of flip_rows and
shift_images say what each choice gained over the alternatives.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError
from .network import predict_proba

CHANNELS, SIDE = 3, 32
N_FEATURES = CHANNELS * SIDE * SIDE


@dataclass
class Augmentation:
    """The random changes drawn for a batch of n images; None for an operation that is off."""

    flip: np.ndarray | None = None
    """(n,) bool: mirror image i left to right."""
    shift: np.ndarray | None = None
    """(2, n) int: dy (rows down) and dx (columns right) of image i, in [-translate, translate]."""
    translate: int = 0
    contrast: np.ndarray | None = None
    """(n,) the contrast factor of image i."""
    brightness: np.ndarray | None = None
    """(n,) the offset added to image i's raw values."""


def augment(X, rng, flip=False, translate=0, brightness=0.0, contrast=0.0, mean=None, std=None):
    """A randomly changed copy of a mini-batch; X itself is left unchanged.

    X: (n, 3072) normalized images; rng: a numpy Generator. flip: mirror
    half the images (at random); translate: move each image by up to that
    many pixels in each direction; brightness, contrast: the jitter's range
    on the raw [0, 1] scale, which needs the training mean and std (3072,)
    that normalized X (Cifar10.mean, Cifar10.std). -> (n, 3072), X's dtype.
    With every option off it returns an exact copy. See the module's
    docstring for the distributions and conventions.
    """
    draws = draw_augmentation(len(X), rng, flip, translate, brightness, contrast)
    return apply_augmentation(X, draws, mean, std)


def draw_augmentation(n, rng, flip=False, translate=0, brightness=0.0, contrast=0.0):
    """Draw the random changes of n images from rng, in the documented order. -> Augmentation."""
    if isinstance(translate, bool) or not isinstance(translate, (int, np.integer)) or not 0 <= translate < SIDE:
        raise ConfigError(f"translate must be a whole number of pixels in 0..{SIDE - 1}, got {translate!r}.")
    if not 0 <= brightness:
        raise ConfigError(f"brightness must be >= 0, got {brightness}.")
    if not 0 <= contrast <= 1:
        raise ConfigError(f"contrast must be in [0, 1] (a factor in [1 - contrast, 1 + contrast]), got {contrast}.")
    draws = Augmentation(translate=int(translate))
    if flip:
        draws.flip = rng.random(n) < 0.5
    if translate:
        draws.shift = rng.integers(-translate, translate + 1, size=(2, n))
    if contrast:
        draws.contrast = rng.uniform(1 - contrast, 1 + contrast, n)
    if brightness:
        draws.brightness = rng.uniform(-brightness, brightness, n)
    return draws


def apply_augmentation(X, draws, mean=None, std=None):
    """The images of X: (n, 3072) changed as draws (an Augmentation) says. -> a new (n, 3072) array.

    The result is built inside a flat buffer with `margin` zeros on each
    side, so that shift_images can read a whole image's length before the
    first image and after the last one.
    """
    n, d = X.shape
    if d != N_FEATURES:
        raise ConfigError(f"augment works on CIFAR-10 images, rows of {N_FEATURES} values; got rows of {d}.")
    jittering = draws.contrast is not None or draws.brightness is not None
    image_means = raw_means(X, mean, std) if jittering else None
    margin = (SIDE + 1) * draws.translate  # the largest shift of a flattened image: k rows and k columns
    buffer = np.empty(n * d + 2 * margin, X.dtype)
    buffer[:margin] = 0
    buffer[margin + n * d :] = 0
    images = buffer[margin : margin + n * d].reshape(n, d)
    np.copyto(images, X)
    if draws.flip is not None:
        flip_rows(images, draws.flip)
    if draws.translate and n:
        images = shift_images(buffer, margin, n, draws.shift, draws.translate)
    if jittering:
        jitter(images, draws.contrast, draws.brightness, image_means, mean, std)
    return images


def raw_means(X, mean, std):
    """The mean of each image's 3072 raw values, x = X std + mean. X: (n, 3072) -> (n,), one matrix-vector product."""
    if mean is None or std is None:
        raise ConfigError(
            "brightness and contrast are on the raw [0, 1] scale: pass the mean and std that "
            "normalized the images (Cifar10.mean, Cifar10.std)."
        )
    mean, std = np.asarray(mean, X.dtype), np.asarray(std, X.dtype)
    return np.dot(X, std) / X.shape[1] + mean.mean()


def jitter(images, contrast, brightness, image_means, mean, std):
    """Contrast, then brightness, of each image, exactly on the raw scale, in place.

    images: (n, 3072) normalized; contrast, brightness: (n,) factors c and
    offsets b, or None for none; image_means: (n,) the raw mean m_i each
    image's contrast is centred on (raw_means of the original images);
    mean, std: (3072,) the training statistics. On raw pixels, x = X std +
    mean, image i becomes c_i (x - m_i) + m_i + b_i. Normalized again, that is
        c_i X + e_i / std - (1 - c_i) mean / std,   e_i = (1 - c_i) m_i + b_i:
    the image scaled, plus two outer products.
    """
    n = len(images)
    mean, std = np.asarray(mean, images.dtype), np.asarray(std, images.dtype)
    b = np.zeros(n, images.dtype) if brightness is None else brightness.astype(images.dtype)
    if contrast is None:  # c_i = 1: X + b_i / std
        images += np.multiply.outer(b, 1 / std)
        return images
    c = contrast.astype(images.dtype)
    images *= c[:, None]
    images += np.multiply.outer((1 - c) * image_means + b, 1 / std)
    images -= np.multiply.outer(1 - c, mean / std)
    return images


def flip_rows(images, flip):
    """Mirror, in place, the images whose entry of flip: (n,) bool is set. images: (n, 3072).

    Only the chosen rows are copied, reversed, and put back: NumPy reverses
    one value at a time, about 0.3 ns a value, 4 times the cost of a plain
    copy. A copy of a batch of 100 and this take 85 us; np.where(flip,
    reversed view, images), which reverses every image, 247 us;
    np.copyto(..., where=flip) 148 us; reversing all the images and copying
    the others back 85 us, the same.
    """
    rows = np.flatnonzero(flip)
    pixels = images.reshape(len(images), CHANNELS, SIDE, SIDE)
    pixels[rows] = pixels[rows, :, :, ::-1]


def mirror(X):
    """Every image of X: (n, 3072) mirrored left to right. -> a new (n, 3072) array."""
    return X.reshape(len(X), CHANNELS, SIDE, SIDE)[..., ::-1].reshape(X.shape)


def shift_images(buffer, margin, n, shift, k):
    """Translate each of the n images stored flat in buffer. -> a new (n, 3072) array.

    buffer: (n * 3072 + 2 margin,), image i at margin + 3072 i, margin >= 33 k
    zeros before and after; shift: (2, n) dy, dx in [-k, k].
    Flattened, a move by dy rows and dx columns is a move by 32 dy + dx
    values, so each image is one contiguous slice of the buffer; the values
    that came across an edge (from the other end of a row, another channel,
    another image, the margins) are then set to 0 by a mask. This beats the
    textbook way, padding every image to (3, 32 + 2k, 32 + 2k) with zeros
    and cutting a window out of it, whose copies go 32 values at a time
    (k = 4, in a training step: 117 against 133 us per batch of 100). The
    values from other images are multiplied by 0, so X must be finite.
    """
    dy, dx = shift
    windows = sliding_window_view(buffer, N_FEATURES)  # windows[s] = buffer[s : s + 3072], a view
    out = windows[margin + N_FEATURES * np.arange(n) - (SIDE * dy + dx)]
    out *= inside_mask(k, buffer.dtype.str)[dy + k, dx + k]
    return out


@lru_cache(maxsize=8)
def inside_mask(k, dtype):
    """(2k + 1, 2k + 1, 3072) read-only: [dy + k, dx + k] is 1 where a pixel moved by (dy, dx) came from inside the image, else 0."""
    mask = np.zeros((2 * k + 1, 2 * k + 1, CHANNELS, SIDE, SIDE), dtype)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            mask[dy + k, dx + k, :, max(dy, 0) : SIDE + min(dy, 0), max(dx, 0) : SIDE + min(dx, 0)] = 1
    mask = mask.reshape(2 * k + 1, 2 * k + 1, N_FEATURES)
    mask.flags.writeable = False
    return mask


def tta_proba(net, X):
    """Test-time augmentation: the mean of the class probabilities of each image and of its mirror.

    X: (n, 3072) normalized images -> P: (n, K).
    """
    return (predict_proba(net, X) + predict_proba(net, mirror(X))) / 2
