"""Page images to the detector's input, exactly as PaddleOCR 3.x's ``DetResizeForTest`` and
``NormalizeImage`` do (same rounding, same OpenCV calls), so the boxes come out the same.

Resize: ``limit_type`` "max" shrinks the longer side to ``limit_side_len``, "min" grows the
shorter side to it, "resize_long" scales the longer side to it; the result is capped at
``max_side_limit`` and rounded to multiples of 32 (at least 32). A page whose height + width
is under 64 pixels is first padded to 32 x 32 with black. ``input_shape`` (C, H, W) resizes to
that size instead; an inference.yml ``image_shape`` likewise.
"""
from __future__ import annotations

import logging
import math

import cv2
import numpy as np

log = logging.getLogger("ocrfleet")

LIMIT_TYPES = ("max", "min", "resize_long")


def pad_small(img: np.ndarray) -> np.ndarray:
    h, w, c = img.shape
    out = np.zeros((max(32, h), max(32, w), c), np.uint8)
    out[:h, :w] = img
    return out


def target_size(h: int, w: int, limit_side_len: int, limit_type: str, max_side_limit: int) -> tuple[int, int]:
    """(resize_h, resize_w) of DetResizeForTest's type-0 resize."""
    if limit_type == "max":
        ratio = float(limit_side_len) / (h if h > w else w) if max(h, w) > limit_side_len else 1.0
    elif limit_type == "min":
        ratio = float(limit_side_len) / (h if h < w else w) if min(h, w) < limit_side_len else 1.0
    elif limit_type == "resize_long":
        ratio = float(limit_side_len) / max(h, w)
    else:
        raise ValueError(f"limit_type must be one of {LIMIT_TYPES}, not {limit_type!r}")
    rh, rw = int(h * ratio), int(w * ratio)
    if max(rh, rw) > max_side_limit:  # PaddleOCR warns; a cap under its 4000 is asked for (preset "fast")
        log.log(logging.WARNING if max_side_limit >= 4000 else logging.DEBUG,
                "resized page (%dx%d) exceeds max_side_limit %d; resizing to fit", rw, rh, max_side_limit)
        ratio = float(max_side_limit) / max(rh, rw)
        rh, rw = int(rh * ratio), int(rw * ratio)
    return max(int(round(rh / 32) * 32), 32), max(int(round(rw / 32) * 32), 32)


def resize(img: np.ndarray, limit_side_len: int, limit_type: str, max_side_limit: int,
           input_shape=None, image_shape=None, keep_ratio: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Returns (resized image, [src_h, src_w, ratio_h, ratio_w]) as PaddleOCR does."""
    src_h, src_w = img.shape[:2]
    if src_h + src_w < 64:
        img = pad_small(img)
    h, w = img.shape[:2]
    if input_shape is not None:
        rh, rw = int(input_shape[-2]), int(input_shape[-1])
    elif image_shape is not None:
        rh, rw = image_shape
        if keep_ratio:
            rw = math.ceil(w * rh / h / 32) * 32
    else:
        rh, rw = target_size(h, w, limit_side_len, limit_type, max_side_limit)
    if rh == h and rw == w:
        return img, np.array([src_h, src_w, 1.0, 1.0])
    img = cv2.resize(img, (int(rw), int(rh)))
    return img, np.array([src_h, src_w, rh / float(h), rw / float(w)])


def normalize(img: np.ndarray, mean, std, scale) -> np.ndarray:
    """HWC uint8 (channel order as read) -> contiguous CHW float32: x * scale / std - mean / std
    (per channel, the same float32 operations as PaddleOCR's, so the same values)."""
    alpha = np.array([scale / s for s in std], np.float32)
    beta = np.array([-m / s for m, s in zip(mean, std)], np.float32)
    out = np.empty((img.shape[2],) + img.shape[:2], np.float32)
    for c, channel in enumerate(cv2.split(img)):
        np.multiply(channel, alpha[c], out=out[c])
        out[c] += beta[c]
    return out
