"""Page geometry as PaddleOCR's OCR pipeline does it: reading order, line crops, 180-degree turns.

* ``sort_boxes``: PaddleOCR's ``SortQuadBoxes`` — by the first vertex's (y, x), then boxes whose
  first vertices are within 10 px vertically are put left to right.
* ``crop_line``: PaddleOCR's ``CropByPolys(det_box_type="quad")`` — the minimum-area rectangle
  of the integer quad, its vertices ordered top-left, top-right, bottom-right, bottom-left, then
  ``get_rotate_crop_image`` (perspective warp, cubic, replicated border; crops at least 1.5x
  taller than wide turned 90 degrees), which is ``ocrfleet.recognition.crop.rotate_crop``.
* ``line_shape``: the (h, w) ``crop_line`` will give, from the quad alone (None where it gives
  None), so recognition can be planned before any pixel is cut.
* ``rotate_180``: PaddleX's ``rotate_image(img, 180)`` (an affine warp about the centre, cubic,
  so the result is the official one to the pixel).
* ``points_to_boxes``: quads to ``[x_min, y_min, x_max, y_max]`` rows.
"""
from __future__ import annotations

import cv2
import numpy as np

from ocrfleet.errors import InvalidInputError
from ocrfleet.recognition.crop import rotate_crop, upright_shape, warp_size

SAME_LINE_PX = 10


def sort_boxes(polys) -> list[np.ndarray]:
    boxes = sorted(np.asarray(polys).reshape(-1, 4, 2), key=lambda b: (b[0][1], b[0][0]))
    for i in range(len(boxes) - 1):
        for j in range(i, -1, -1):
            if abs(boxes[j + 1][0][1] - boxes[j][0][1]) < SAME_LINE_PX and boxes[j + 1][0][0] < boxes[j][0][0]:
                boxes[j], boxes[j + 1] = boxes[j + 1], boxes[j]
            else:
                break
    return boxes


def minarea_quad(poly: np.ndarray) -> np.ndarray:
    rect = cv2.minAreaRect(np.asarray(poly).astype(np.int32))
    pts = sorted(cv2.boxPoints(rect), key=lambda p: p[0])
    a, d = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    b, c = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    return np.array([pts[a], pts[b], pts[c], pts[d]], dtype=np.float32)


def crop_line(img: np.ndarray, poly: np.ndarray) -> np.ndarray | None:
    """The upright line image under ``poly``; None for an empty (zero-pixel) region."""
    try:
        return rotate_crop(img, minarea_quad(poly))
    except InvalidInputError:
        return None


def line_shape(quad: np.ndarray) -> tuple[int, int] | None:
    """(h, w) of ``rotate_crop(img, quad)`` for a ``minarea_quad`` ``quad``; None for an empty region."""
    width, height = warp_size(quad)
    return upright_shape(width, height) if width >= 1 and height >= 1 else None


def rotate_180(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    mat = cv2.getRotationMatrix2D((w / 2, h / 2), 180, 1.0)
    cos, sin = abs(mat[0, 0]), abs(mat[0, 1])
    new_w, new_h = int(h * sin + w * cos), int(h * cos + w * sin)
    mat[0, 2] += (new_w - w) / 2
    mat[1, 2] += (new_h - h) / 2
    return cv2.warpAffine(img, mat, (new_w, new_h), flags=cv2.INTER_CUBIC)


def points_to_boxes(polys) -> np.ndarray:
    if len(polys) == 0:
        return np.array([])
    arr = np.asarray(polys)
    return np.stack([arr[:, :, 0].min(1), arr[:, :, 1].min(1), arr[:, :, 0].max(1), arr[:, :, 1].max(1)], axis=1)
