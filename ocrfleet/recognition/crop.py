"""Cut text lines out of a page: axis-aligned boxes and 4-point quads, as PaddleOCR does.

A quad is perspective-warped to a rectangle (``get_rotate_crop_image``: width = the longer of
the top/bottom edges, height = the longer of the left/right edges, cubic interpolation,
replicated border), and a crop at least 1.5 times taller than wide is rotated 90 degrees
counter-clockwise (``np.rot90``) so vertical lines read left to right.

Quads may be given in any vertex order: they are put in PaddleOCR's order (top-left,
top-right, bottom-right, bottom-left, clockwise on screen) first.
"""
from __future__ import annotations

import cv2
import numpy as np

from ocrfleet.errors import InvalidInputError

TALL_RATIO = 1.5


def as_region(region) -> tuple[str, np.ndarray]:
    """("box", [x1,y1,x2,y2]) or ("quad", 4x2 float32) from a box, flat quad or point list."""
    arr = np.asarray(region, dtype=np.float32)
    if arr.shape == (4,):
        return "box", arr
    if arr.shape == (8,):
        arr = arr.reshape(4, 2)
    if arr.shape == (4, 2) and np.isfinite(arr).all():
        return "quad", arr
    raise InvalidInputError(f"a region must be [x1,y1,x2,y2] or 4 points, got shape {arr.shape}")


def order_quad(pts: np.ndarray) -> np.ndarray:
    """Vertices clockwise (image coordinates, y down) starting at the top-left one."""
    pts = np.asarray(pts, dtype=np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    ring = pts[np.argsort(angles)]  # increasing angle = clockwise on screen
    start = int(np.argmin(ring.sum(axis=1)))
    return np.roll(ring, -start, axis=0)


def warp_size(points: np.ndarray) -> tuple[int, int]:
    """(width, height) of the rectangle ``rotate_crop`` warps TL, TR, BR, BL ``points`` to."""
    points = np.asarray(points, dtype=np.float32)
    width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    return width, height


def upright_shape(width: int, height: int) -> tuple[int, int]:
    """(h, w) of a ``width`` x ``height`` crop once ``rotate_crop`` has turned it upright."""
    return (width, height) if height / width >= TALL_RATIO else (height, width)


def rotate_crop(img: np.ndarray, points: np.ndarray) -> np.ndarray:
    """PaddleOCR's get_rotate_crop_image for TL, TR, BR, BL ``points``."""
    points = np.asarray(points, dtype=np.float32)
    width, height = warp_size(points)
    if width < 1 or height < 1:
        raise InvalidInputError(f"degenerate region {points.tolist()}")
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(points, target)
    out = cv2.warpPerspective(img, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                              flags=cv2.INTER_CUBIC)
    return _upright(out)


def box_crop(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, x2 = sorted((max(0, min(w, x1)), max(0, min(w, x2))))
    y1, y2 = sorted((max(0, min(h, y1)), max(0, min(h, y2))))
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise InvalidInputError(f"region {box.tolist()} is empty inside the {w}x{h} image")
    return _upright(np.ascontiguousarray(img[y1:y2, x1:x2]))


def _upright(crop: np.ndarray) -> np.ndarray:
    h, w = crop.shape[:2]
    if h / w >= TALL_RATIO:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def crop_region(img: np.ndarray, region) -> np.ndarray:
    """The crop of a box or quad; InvalidInputError for a region without area (collinear quad
    points would warp to garbage)."""
    kind, arr = as_region(region)
    if kind == "box":
        return box_crop(img, arr)
    q = order_quad(arr)
    area = 0.5 * abs(float(np.dot(q[:, 0], np.roll(q[:, 1], 1)) - np.dot(q[:, 1], np.roll(q[:, 0], 1))))
    if area < 1.0:
        raise InvalidInputError(f"degenerate region {arr.tolist()}: the quad has no area")
    return rotate_crop(img, q)


def crop_regions(img: np.ndarray, regions) -> list[np.ndarray]:
    return [crop_region(img, r) for r in regions]
