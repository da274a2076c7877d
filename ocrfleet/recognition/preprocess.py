"""Resize / normalise / pad text-line images exactly as PaddleOCR's text recognition does.

Each image is resized to the model height keeping its aspect ratio; its padded width is
``H * max(W/H, w/h)`` (capped at ``MAX_WIDTH``, where it is squeezed to fit); a batch is
zero-padded on the right to its widest member. Values are ``(x/255 - 0.5) / 0.5`` in BGR.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MAX_WIDTH = 3200


def widths(h: int, w: int, shape) -> tuple[int, int]:
    """(resized width, padded width) of an ``h`` x ``w`` image for model input ``shape``."""
    _, H, W = shape
    padded = int(H * max(W / H, w / h))
    if padded > MAX_WIDTH:
        return MAX_WIDTH, MAX_WIDTH
    return min(padded, int(math.ceil(H * w / h))), padded


def stretched_width(w: int, scale: float) -> int:
    return w if scale == 1 else max(1, round(w * scale))


def stretch(img: np.ndarray, scale: float) -> np.ndarray:
    """``img`` ``scale`` times as wide (same height): a fine-tuned model's ``width_scale``, which
    gives narrow handwriting more CTC steps per character. The image itself when ``scale`` is 1."""
    if scale == 1:
        return img
    return cv2.resize(img, (stretched_width(img.shape[1], scale), img.shape[0]), interpolation=cv2.INTER_LINEAR)


def to_bgr(img: np.ndarray) -> np.ndarray:
    """Any 8/16-bit gray, BGR or BGRA array as 8-bit BGR."""
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        elif np.issubdtype(img.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(img)) <= 1.0 else 1.0
            img = np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
        else:
            img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def make_batch(images: list[np.ndarray], shape) -> np.ndarray:
    """Stack BGR uint8 images into one normalised float32 NCHW batch."""
    C, H, _ = shape
    sizes = [widths(im.shape[0], im.shape[1], shape) for im in images]
    batch = np.zeros((len(images), C, H, max(p for _, p in sizes)), dtype=np.float32)
    for i, (im, (rw, _)) in enumerate(zip(images, sizes)):
        resized = cv2.resize(im, (rw, H)).astype(np.float32)
        resized = resized.transpose((2, 0, 1))
        resized /= 255
        resized -= 0.5
        resized /= 0.5
        batch[i, :, :, :rw] = resized
    return batch
