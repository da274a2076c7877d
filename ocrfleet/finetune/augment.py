"""PaddleOCR-style recognition augmentations (``RecAug`` / ``RecConAug`` family) in OpenCV.

Each transform fires with probability ``p`` (PaddleOCR uses 0.4): small affine warps
(rotation, shear, scale), a smooth TPS-like local warp, random crop / pad of the borders,
Gaussian or motion blur, colour jitter (brightness, contrast, hue/saturation), Gaussian
noise and (rarely) colour inversion. Input and output are BGR uint8 line images.
"""
from __future__ import annotations

import cv2
import numpy as np


def _border(img: np.ndarray) -> tuple[int, int, int]:
    """The median colour of the image border (the paper), for filling."""
    edge = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))


def affine(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    angle = rng.uniform(-3, 3) * min(1.0, 4 * h / w)  # long lines turn less
    shear = rng.uniform(-0.25, 0.25)
    scale = rng.uniform(0.92, 1.05)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[0, 1] += shear
    m[0, 2] -= shear * h / 2
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=_border(img))


def tps_like(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement field (a few control points, interpolated): TIA-style distortion."""
    h, w = img.shape[:2]
    nx = max(2, w // max(h, 1) + 1)
    amp = 0.06 * h
    dx = cv2.resize(rng.uniform(-amp, amp, (2, nx)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-amp, amp, (2, nx)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_pad(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop or pad each border by up to 8% of the height (horizontally up to 4% of the height)."""
    h, w = img.shape[:2]
    top, bottom = (int(round(v)) for v in rng.uniform(-0.08, 0.08, 2) * h)
    left, right = (int(round(v)) for v in rng.uniform(-0.04, 0.08, 2) * h)
    out = img[max(0, top):h - max(0, bottom), max(0, left):w - max(0, right)]
    if out.shape[0] < 4 or out.shape[1] < 4:
        return img
    pads = [max(0, -top), max(0, -bottom), max(0, -left), max(0, -right)]
    if any(pads):
        out = cv2.copyMakeBorder(out, *pads, cv2.BORDER_CONSTANT, value=_border(img))
    return out


def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        k = int(rng.choice([3, 5]))
        return cv2.GaussianBlur(img, (k, k), 0)
    k = int(rng.integers(2, 5))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    if rng.random() < 0.5:
        kernel = kernel.T
    return cv2.filter2D(img, -1, kernel)


def color_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    contrast, bright = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    out = (out - out.mean()) * contrast + out.mean() + bright
    return np.clip(out, 0, 255).astype(np.uint8)


def noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(2, 10)
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def invert(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 255 - img


# (transform, probability): geometric first, then photometric
PIPELINE = ((affine, 0.4), (tps_like, 0.4), (crop_pad, 0.4), (blur, 0.3), (color_jitter, 0.4),
            (noise, 0.3), (invert, 0.05))


def augment(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A randomly augmented copy of a BGR line image; ``strength`` scales every probability."""
    for fn, p in PIPELINE:
        if rng.random() < p * strength:
            img = fn(img, rng)
    return img
