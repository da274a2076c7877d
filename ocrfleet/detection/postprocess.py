"""DB post-processing as PaddleOCR 3.x's ``DBPostProcess`` (box_type "quad"): threshold the
probability map, one minimum-area box per contour, score "fast" (mean probability inside the
box) or "slow" (inside the contour), drop boxes under ``box_thresh``, expand by
``unclip_ratio`` (pyclipper, round joins), drop boxes whose short side is under 5 pixels,
scale to the page and clip to it. Boxes are int16 (N, 4, 2), clockwise from top-left.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pyclipper

MIN_SIZE = 3


def mini_box(contour) -> tuple[np.ndarray, float]:
    rect = cv2.minAreaRect(contour)
    pts = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    return np.array([pts[i1], pts[i2], pts[i3], pts[i4]]), min(rect[1])


def score_fast(pred: np.ndarray, box: np.ndarray) -> float:
    h, w = pred.shape[:2]
    box = box.copy()
    xmin = max(0, min(math.floor(box[:, 0].min()), w - 1))
    xmax = max(0, min(math.ceil(box[:, 0].max()), w - 1))
    ymin = max(0, min(math.floor(box[:, 1].min()), h - 1))
    ymax = max(0, min(math.ceil(box[:, 1].max()), h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def score_slow(pred: np.ndarray, contour: np.ndarray) -> float:
    h, w = pred.shape[:2]
    contour = np.reshape(contour.copy(), (-1, 2))
    xmin, xmax = np.clip(contour[:, 0].min(), 0, w - 1), np.clip(contour[:, 0].max(), 0, w - 1)
    ymin, ymax = np.clip(contour[:, 1].min(), 0, h - 1), np.clip(contour[:, 1].max(), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    contour[:, 0] -= xmin
    contour[:, 1] -= ymin
    cv2.fillPoly(mask, contour.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def unclip(box: np.ndarray, ratio: float) -> np.ndarray:
    area = cv2.contourArea(box)
    length = cv2.arcLength(box, True)
    distance = area * ratio / length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(distance)
    try:
        return np.array(paths)
    except ValueError:  # several paths of different lengths: the first, as PaddleOCR
        return np.array(paths[0])


def boxes_from_map(pred: np.ndarray, shape, thresh: float, box_thresh: float, unclip_ratio: float,
                   max_candidates: int = 1000, score_mode: str = "fast", use_dilation: bool = False
                   ) -> tuple[np.ndarray, list[float]]:
    """``pred``: (H, W) probabilities; ``shape``: [src_h, src_w, ratio_h, ratio_w]."""
    mask = np.greater(pred, thresh).view(np.uint8)  # 0 / 1: findContours reads any non-zero as 1
    if use_dilation:
        mask = cv2.dilate(mask, np.array([[1, 1], [1, 1]], np.uint8))
    src_h, src_w = shape[0], shape[1]
    height, width = mask.shape
    sx, sy = src_w / width, src_h / height
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[:max_candidates]:
        points, sside = mini_box(contour)
        if sside < MIN_SIZE:
            continue
        score = score_fast(pred, points.reshape(-1, 2)) if score_mode == "fast" else score_slow(pred, contour)
        if box_thresh > score:
            continue
        expanded = unclip(points, unclip_ratio).reshape(-1, 1, 2)
        if expanded.size == 0:  # degenerate contour: nothing left after the offset
            continue
        box, sside = mini_box(expanded)
        if sside < MIN_SIZE + 2:
            continue
        box = box.astype(np.float64)
        box[:, 0] = np.clip(np.round(box[:, 0] * sx), 0, src_w)
        box[:, 1] = np.clip(np.round(box[:, 1] * sy), 0, src_h)
        boxes.append(box.astype(np.float32).astype(np.int16))
        scores.append(score)
    if not boxes:
        return np.zeros((0, 4, 2), np.int16), []
    return np.array(boxes, dtype=np.int16), scores
