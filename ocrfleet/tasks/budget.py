"""The per-job decoded-pixel budget (``max_job_pixels``): what a job may hold in memory as
decoded images, counted BEFORE anything is allocated, so a few KB of spec cannot become
gigabytes in a worker process.

Charged: every decoded image (each reference counts again, repeats included), every PDF page
measured from its page box (``page.get_size()`` x the render scale) before rendering, every
crop at its size after clipping to the image. Pages and images a job only crops from are
released once their crops are taken; line images (crops, or whole images used as one line)
stay charged until the job ends because the recogniser needs them all. Refusal:
``InputTooLargeError`` (TOO_LARGE) naming the input.
"""
from __future__ import annotations

import numpy as np

from ocrfleet.errors import InputTooLargeError, InvalidInputError


class PixelBudget:
    def __init__(self, limit: int):
        self.limit = int(limit)
        self.held = 0

    def charge(self, pixels: int, ref: str, what: str) -> int:
        pixels = int(pixels)
        if self.limit > 0 and self.held + pixels > self.limit:
            try:
                from ocrfleet.workers import metrics

                metrics.BUDGET.labels(what.split()[0]).inc()
            except Exception:  # noqa: BLE001 - metrics are best effort (and absent outside workers)
                pass
            raise InputTooLargeError(
                f"{what} needs {pixels} decoded pixels; the job already holds {self.held} of its "
                f"{self.limit}-pixel budget (max_job_pixels)", input_ref=ref)
        self.held += pixels
        return pixels

    def release(self, pixels: int) -> None:
        self.held = max(0, self.held - int(pixels))


def image_pixels(data: bytes) -> int | None:
    """Width x height from the image header, or None when the header is not understood."""
    from ocrfleet.recognition.inputs import image_size

    try:
        size = image_size(data)
    except InputTooLargeError:
        return None  # the decoder refuses it with its own message
    return None if size is None else int(size[0]) * int(size[1])


def pdf_pixels(data: bytes, pages, scale: float) -> int | None:
    """Rendered pixels of the selected pages from their page boxes (no rendering); None when
    the document cannot be opened here (the renderer then reports why)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except Exception:  # noqa: BLE001 - encrypted/malformed: left to the renderer's error
        return None
    try:
        count = len(doc)
        selected = range(count) if pages is None else [p for p in pages if 0 <= int(p) < count]
        total = 0
        for index in selected:
            page = doc[int(index)]
            try:
                w, h = page.get_size()
            finally:
                page.close()
            total += int(np.ceil(w * scale)) * int(np.ceil(h * scale))
        return total
    finally:
        doc.close()


def clip_region(region, shape) -> object:
    """The region clipped to the image (h, w): boxes as given (the cropper clips them), quads
    with every point moved inside. InvalidInputError when nothing of it lies on the image."""
    from ocrfleet.recognition.crop import as_region

    h, w = shape[:2]
    kind, arr = as_region(region)
    if kind == "box":
        return region
    pts = np.asarray(arr, np.float64).reshape(4, 2)
    if pts[:, 0].max() <= 0 or pts[:, 1].max() <= 0 or pts[:, 0].min() >= w or pts[:, 1].min() >= h:
        raise InvalidInputError(f"region {np.round(pts, 1).tolist()} lies outside the {w}x{h} image")
    pts[:, 0] = pts[:, 0].clip(0, w)
    pts[:, 1] = pts[:, 1].clip(0, h)
    return pts.tolist()


def crop_pixels(region, shape) -> int:
    """Pixels of the crop of an (already clipped) region: the box, or the quad's warp size."""
    from ocrfleet.recognition.crop import as_region, order_quad

    h, w = shape[:2]
    kind, arr = as_region(region)
    if kind == "box":
        x1, y1, x2, y2 = (float(v) for v in arr)
        cw = max(0.0, min(w, max(x1, x2)) - max(0, min(x1, x2)))
        ch = max(0.0, min(h, max(y1, y2)) - max(0, min(y1, y2)))
        return int(cw + 1) * int(ch + 1)
    q = order_quad(arr).astype(np.float64)
    width = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3]))
    height = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    return int(width + 1) * int(height + 1)
