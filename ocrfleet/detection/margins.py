"""Blank margins trimmed off a page before the detector sees it (``trim_margins``; on with the
pipeline's ``preset="fast"`` where the detector runs on ONNX Runtime on a CPU: ``trims_by_default``).

The detector's cost grows with its input's pixels, and a PDF page or a clean scan is mostly blank
paper: a page with four lines on it pays for the whole sheet. ``content_region`` finds the outer
rows and columns of the (already resized) detector input that are *uniform* (every value in the
row or column, over all channels, within ``TOLERANCE`` grey levels of the others: no ink, so no
text) and returns the rest, widened by ``MARGIN`` pixels of real page on every side and aligned
to the detector's multiple of 32. The detector runs on that region only; its probability map is
put back in place on an empty page-sized map, so the DB post-process, the boxes' coordinates and
the rest of the pipeline are unchanged.

Every ink pixel is inside the region (its row and its column are not uniform), but the model sees
less blank paper around the text, so its map, and a box edge, can move by a pixel or two: with
``MARGIN`` = 96 px, 99 % of lines keep the same box (IoU >= 0.9) and text, and end-to-end
accuracy on the annotated pages is unchanged (docs/pages.md "Presets", run L). Pages with nothing
worth trimming (a photo, a scan with a dark border or speckle, a coloured sheet: spans over
``TOLERANCE`` in every row) are detected whole, exactly as without it. A page whose every row is
uniform holds no text: the detector is not run and the page has zero boxes.
"""
from __future__ import annotations

import numpy as np

TOLERANCE = 16  # grey levels: a row / column whose values span no more than this holds no ink
MARGIN = 96  # detector-input pixels of page kept around the ink on each side
ALIGN = 32  # the DB detectors' input sides are multiples of 32
MAX_KEPT = 0.9  # a region keeping more of the page than this is not worth changing the input for

EMPTY = (0, 0, 0, 0)


def trims_by_default(preset: str | None, det) -> bool:
    """Whether ``preset`` trims margins for the ``TextDetection`` ``det`` unless told otherwise:
    with "fast", where a new input size costs little, i.e. ONNX Runtime on a CPU. Every
    trimmed page is a new input size: OpenVINO compiles one (0.4-0.6 s, docs/pages.md run K),
    TensorRT builds an engine, Paddle Inference's oneDNN makes new primitives."""
    return preset == "fast" and det.backend == "onnxruntime" and det.backend_impl.opts.device == "cpu"


def content_region(img: np.ndarray, tolerance: int = TOLERANCE, margin: int = MARGIN,
                   align: int = ALIGN) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the HxW(xC) uint8 ``img`` to run the detector on, ``EMPTY`` for a page
    with no ink at all, or None to run it on the whole page (nothing worth trimming, or sides that
    are not multiples of ``align``)."""
    h, w = img.shape[:2]
    if h % align or w % align:
        return None
    flat = img.reshape(h, -1)  # a row's values over all channels: numpy reduces these fast
    rows = np.flatnonzero(flat.max(axis=1).astype(np.int16) - flat.min(axis=1) > tolerance)
    if not len(rows):
        return EMPTY
    hi, lo = img.max(axis=0), img.min(axis=0)  # per column (and channel)
    if hi.ndim == 2:
        hi, lo = hi.max(axis=1), lo.min(axis=1)
    cols = np.flatnonzero(hi.astype(np.int16) - lo > tolerance)
    y0 = max(0, int(rows[0]) - margin) // align * align
    x0 = max(0, int(cols[0]) - margin) // align * align
    y1 = min(h, -(-(int(rows[-1]) + 1 + margin) // align) * align)
    x1 = min(w, -(-(int(cols[-1]) + 1 + margin) // align) * align)
    if (y1 - y0) * (x1 - x0) > MAX_KEPT * h * w:
        return None
    return y0, y1, x0, x1
