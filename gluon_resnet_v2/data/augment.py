"""Image transforms: the paper's CIFAR recipe on uint8 batches, and ImageNet crops.

CIFAR (He et al. 2016, appendix; first ResNet paper Sec. 4.2): zero-pad 4 pixels, take a
random 32x32 crop, flip horizontally with probability 0.5, normalise per channel.
ImageNet (Table 5, "scale and aspect ratio augmentation"): a random crop of 8-100 % of
the area with aspect 3/4-4/3, resized to the training crop, random flip; at test time
the shorter side is resized to the test crop and the centre square taken (320 in Table 5).
Random draws come from a caller's generator so a batch is reproducible from its seed.
"""
import math

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # the usual RGB statistics of ImageNet train, [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
# Stats come from exact per-channel histograms of chunks of images: no float copy of the
# whole set, 0.5 s for CIFAR's 50k images (float64 sums took 1.7 s).
_STATS_CHUNK = 4096


def channel_stats(images):
    """Per-channel mean and std, in [0, 1] units, of uint8 images (N, H, W, C)."""
    channels = images.shape[-1]
    hist = np.zeros((channels, 256), np.int64)
    for i in range(0, len(images), _STATS_CHUNK):
        chunk = images[i:i + _STATS_CHUNK]
        for c in range(channels):
            hist[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255
    count = hist.sum(axis=1)
    mean = hist @ values / count
    std = np.sqrt(np.maximum(hist @ (values * values) / count - mean * mean, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def normalize(images, mean, std):
    """uint8 NHWC -> float32 NCHW, (x / 255 - mean) / std per channel."""
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).reshape(1, -1, 1, 1)
    shift = (-np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(1, -1, 1, 1)
    # transpose the uint8 data (4x less to move than float), then scale in place
    out = images.transpose(0, 3, 1, 2).astype(np.float32)
    out *= scale
    out += shift
    return out


def draw_crop_flip(rng, n, pad):
    """Per-image crop offsets (rows, cols) into the padded image and flip flags.

    The draw order (offsets first, then flips) is part of the reproducibility contract."""
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    flips = rng.random(n) < 0.5
    return offsets[:, 0], offsets[:, 1], flips


def crop_flip(images, pad, rows, cols, flips):
    """Zero-pad `pad` pixels, crop back to the original size at (rows, cols), flip.

    Vectorised with one fancy-indexing gather over the whole batch; a flip is just the
    reversed column index, so it costs nothing extra."""
    n, h, w = images.shape[:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    row_idx = rows[:, None] + np.arange(h)                    # (n, h)
    col_idx = cols[:, None] + np.arange(w)                    # (n, w)
    col_idx = np.where(flips[:, None], col_idx[:, ::-1], col_idx)
    return padded[np.arange(n)[:, None, None], row_idx[:, :, None], col_idx[:, None, :]]


def draw_resized_crop(rng, height, width, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop box (top, left, h, w): a fraction `area` of the image, aspect w/h in
    `ratio` (log-uniform). Ten tries, then the largest central square (a fallback for
    extreme aspect ratios, as Inception-style pipelines have)."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = height * width * rng.uniform(*area)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def random_resized_crop(image, size, rng):
    """Training view of one RGB uint8 image: random area/aspect crop to size x size, flip."""
    top, left, h, w = draw_resized_crop(rng, *image.shape[:2])
    crop = _resize(image[top:top + h, left:left + w], size, size)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def resize_center_crop(image, size):
    """Test view: shorter side resized to `size`, then the central size x size square."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_h, new_w = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    image = _resize(image, new_h, new_w)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return image[top:top + size, left:left + size]


def _resize(image, height, width):
    # INTER_AREA averages when shrinking (no aliasing); bilinear when enlarging
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
