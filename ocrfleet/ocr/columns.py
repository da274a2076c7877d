"""Column-by-column reading order for multi-column pages (``PaddleOCR(..., reading_order="columns")``).

PaddleOCR's sort (``ocrfleet.ocr.geometry.sort_boxes``) reads a page top to bottom, so the lines of
two columns that sit at the same height interleave. Here the page's gutters are found first: runs
of page width, between text, that no column-sized line covers (lines wider than ``SPAN_SHARE`` of
the text's width, such as a title across both columns, are left out of that search), at least
``GUTTER_LINES`` median line heights wide, with at least ``MIN_COLUMN_LINES`` lines on each side.
Lines that cross a gutter (titles, full-width paragraphs) split the page into bands; within a band
the columns are read left to right, each top to bottom in PaddleOCR's order, and a crossing line
is read where it stands. Without a gutter the order is PaddleOCR's, unchanged.

A receipt or form whose prices or fields line up in a column of their own has such a gutter too,
and is then read column by column: the option is for running text in columns, not for tables.
"""
from __future__ import annotations

import numpy as np

READING_ORDERS = (None, "columns")
SPAN_SHARE = 0.55
GUTTER_LINES = 0.8
MIN_COLUMN_LINES = 2


def gutters(boxes: np.ndarray) -> list[float]:
    """x positions (centres) of the gutters between columns of the (N, 4, 2) ``boxes``."""
    x0, x1 = boxes[:, :, 0].min(1), boxes[:, :, 0].max(1)
    heights = boxes[:, :, 1].max(1) - boxes[:, :, 1].min(1)
    left, right = float(x0.min()), float(x1.max())
    narrow = (x1 - x0) < SPAN_SHARE * (right - left)
    if narrow.sum() < 2 * MIN_COLUMN_LINES:
        return []
    start = int(np.floor(left))
    covered = np.zeros(int(np.ceil(right)) - start + 1, bool)
    for a, b in zip(x0[narrow], x1[narrow]):
        covered[int(np.floor(a)) - start:int(np.ceil(b)) - start + 1] = True
    min_width = max(2.0, GUTTER_LINES * float(np.median(heights)))
    centres = (x0[narrow] + x1[narrow]) / 2
    cuts, run = [], None
    for i, c in enumerate(covered):
        if not c and run is None:
            run = i
        elif c and run is not None:
            if i - run >= min_width:
                cut = start + (run + i) / 2
                prev = cuts[-1] if cuts else -np.inf
                if (((centres > prev) & (centres < cut)).sum() >= MIN_COLUMN_LINES
                        and (centres > cut).sum() >= MIN_COLUMN_LINES):
                    cuts.append(cut)
            run = None
    return cuts


def page_order(polys, reading_order: str | None = None) -> list[np.ndarray]:
    """A page's boxes in reading order: PaddleOCR's sort, then column by column when
    ``reading_order`` is "columns" (the pipeline's and page jobs' one ordering)."""
    from ocrfleet.ocr.geometry import sort_boxes

    ordered = sort_boxes(polys)
    return column_order(ordered) if reading_order == "columns" else ordered


def column_order(boxes: list[np.ndarray]) -> list[np.ndarray]:
    """``boxes`` (4x2 quads in PaddleOCR's reading order) in column-by-column reading order."""
    if len(boxes) < 2 * MIN_COLUMN_LINES:
        return list(boxes)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4, 2)
    cuts = gutters(arr)
    if not cuts:
        return list(boxes)
    x0, x1 = arr[:, :, 0].min(1), arr[:, :, 0].max(1)
    column = np.searchsorted(cuts, (x0 + x1) / 2)
    crossing = [any(a < c < b for c in cuts) for a, b in zip(x0, x1)]
    out: list[np.ndarray] = []
    band: list[int] = []
    for i in range(len(boxes)):  # PaddleOCR's order: top to bottom
        if crossing[i]:
            out += [boxes[j] for j in sorted(band, key=lambda j: column[j])]  # stable: PaddleOCR's order within
            band = []
            out.append(boxes[i])
        else:
            band.append(i)
    out += [boxes[j] for j in sorted(band, key=lambda j: column[j])]
    return out
