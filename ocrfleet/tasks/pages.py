"""Page jobs: an input without regions is a whole page (a photo, a scan, a PDF page) whose
every text line is detected, cropped and recognised, as ``ocrfleet.PaddleOCR`` does it.

Mode (spec ``"mode"``, per input ``inputs[i].mode`` wins; default ``auto``), for inputs
WITHOUT regions (inputs with regions are always cut at their regions):

* ``line``: the whole image is one text line (the fleet's behaviour before page jobs);
* ``page``: the image (each PDF page) is a page;
* ``auto``: an image (or PDF page) at most ``auto_line_max_height`` pixels tall (144 = 3x the
  PP-OCR recognisers' input height) is a line, anything taller a page, except images more than
  2000x taller than wide (``MAX_ASPECT``): no page, so refused as a line (INVALID_INPUT).

A page: scaled down to ``max_page_pixels`` when larger (polys are reported in the original
page's pixels); the detector (spec ``det_model_name``, default ``default_det_model``) with the
pipeline's parameters (``ocrfleet.ocr.pipeline.DET_DEFAULTS``; worker settings ``page_preset``
"fast": ``PaddleOCR(preset="fast")``'s, margin trimming included, and ``page_det_max_side`` > 0:
the detector's input capped at that long side, crops still cut from the page, see ``det_params``);
PaddleOCR's reading-order sort
(spec ``"reading_order": "columns"``: multi-column pages column by column, ``ocrfleet.ocr.columns``);
one crop per box (``ocrfleet.ocr.geometry.crop_line``); with ``use_textline_orientation`` the
crops the classifier calls 180 degrees are turned. More than ``max_page_lines`` boxes on one
page: TOO_LARGE naming the input and page. No box: zero lines (a blank page is no error).
The crops of ALL pages of a job go to the recogniser in one call (``run_job``).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ocrfleet.config.settings import Settings
from ocrfleet.errors import InputTooLargeError

MODES = ("auto", "page", "line")


def input_mode(spec: dict, item: dict) -> str:
    return item.get("mode") or spec.get("mode") or "auto"


def is_page(mode: str, image: np.ndarray, s: Settings) -> bool:
    if mode == "page":
        return True
    if mode == "line":
        return False
    from ocrfleet.recognition.engine import MAX_ASPECT

    h, w = image.shape[:2]
    return h > s.auto_line_max_height and max(h / w, w / h) <= MAX_ASPECT


def wants_pages(spec: dict) -> bool:
    """Could any input of this spec be a page (so the detector is needed)?"""
    return any(item.get("regions") is None and input_mode(spec, item) != "line" for item in spec["inputs"])


class PageReader:
    """Turns page images into line entries + crops; keeps one record per page for the result."""

    def __init__(self, s: Settings, spec: dict, models, timings):
        """``models(name)`` gives a loaded model (the worker's ``ModelCache.get``)."""
        self.s, self.spec, self.models, self.timings = s, spec, models, timings
        self.det_name = spec.get("det_model_name") or s.default_det_model
        self.use_cls = bool(spec.get("use_textline_orientation", False))
        self.keep_images = bool(spec.get("visualize"))
        self.pages: list[dict] = []
        self.images: list[np.ndarray] = []  # the (scaled) pages, only with visualize

    def read(self, entry: dict, image: np.ndarray) -> list[tuple[dict, np.ndarray]]:
        """(line entry, crop) per detected line of one page, in reading order."""
        from ocrfleet.ocr.columns import page_order
        from ocrfleet.ocr.geometry import crop_line, rotate_180
        from ocrfleet.ocr.pipeline import CLS_MODEL

        t0 = time.perf_counter()
        h, w = image.shape[:2]
        scale = 1.0
        if self.s.max_page_pixels > 0 and h * w > self.s.max_page_pixels:
            import cv2

            scale = math.sqrt(self.s.max_page_pixels / (h * w))
            image = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        page_no = len(self.pages)
        where = entry["input_path"] + ("" if entry["page_index"] is None else f" page {entry['page_index']}")
        det = self.models(self.det_name)
        polys, _ = det.detect(image, **det_params(self.s, det))
        if len(polys) > self.s.max_page_lines:
            raise InputTooLargeError(f"{where}: {len(polys)} text lines detected; the limit is "
                                     f"{self.s.max_page_lines} per page (max_page_lines)", input_ref=entry["input_path"])
        kept, crops = [], []
        for poly in page_order(polys, self.spec.get("reading_order")):
            crop = crop_line(image, poly)
            if crop is not None:
                kept.append(poly)
                crops.append(crop)
        t1 = time.perf_counter()
        if self.use_cls and crops:
            turns = self.models(CLS_MODEL).classify(crops, batch_size=8)
            crops = [rotate_180(c) if angle == 180 else c for c, (angle, _) in zip(crops, turns)]
        self.timings.extra["detect_s"] = self.timings.extra.get("detect_s", 0.0) + t1 - t0
        self.timings.extra["classify_s"] = self.timings.extra.get("classify_s", 0.0) + time.perf_counter() - t1
        self.pages.append({"input_index": entry["input_index"], "input_path": entry["input_path"],
                           "page_index": entry["page_index"], "width": w, "height": h,
                           "scale": round(scale, 6), "lines": len(crops), "text": ""})
        if self.keep_images:
            self.images.append(image)
        out = []
        for n, (poly, crop) in enumerate(zip(kept, crops)):
            original = np.asarray(poly, np.float64) / scale
            out.append(({**{k: v for k, v in entry.items() if k != "region_index"}, "page": page_no, "line_index": n,
                         "poly": np.rint(original).astype(int).tolist()}, crop))
        return out

    def finish(self, entries: list[dict]) -> list[dict]:
        """Fill each page's ``text`` (its lines joined with newlines, in reading order) from the
        recognised entries; drop the entries' internal page number. The ``pages`` list."""
        texts: dict[int, list[str]] = {}
        for entry in entries:
            if "page" in entry:
                texts.setdefault(entry.pop("page"), []).append(entry["rec_text"])
        for n, page in enumerate(self.pages):
            page["text"] = "\n".join(texts.get(n, []))
        return self.pages

    def write_visuals(self, job_id: str, entries: list[dict]) -> None:
        """One PNG per page (ocrfleet.ocr.draw: numbered boxes beside the text) at
        ``<prefix>/<job_id>/page-<n>.png``; sets each page's ``vis_uri``. Polys are drawn in the
        scaled page's pixels. Call before ``finish`` drops the entries' page numbers."""
        import io

        from ocrfleet.ocr.draw import draw_ocr
        from ocrfleet.storage.results import write_visual

        for n, (page, image) in enumerate(zip(self.pages, self.images)):
            lines = [e for e in entries if e.get("page") == n]
            polys = [np.asarray(e["poly"], np.float64) * page["scale"] for e in lines]
            buf = io.BytesIO()
            draw_ocr(image, polys, [e["rec_text"] for e in lines]).save(buf, format="PNG")
            page["vis_uri"] = write_visual(self.s, job_id, f"page-{n}", buf.getvalue())


def det_params(s: Settings, det) -> dict:
    """Page jobs' detection parameters for the ``TextDetection`` ``det``: the pipeline's (PaddleOCR's
    OCR.yaml, or ``page_preset``'s), with ``max_side_limit`` lowered to ``page_det_max_side`` when set
    (the detector's activations grow with its input: docs/pages.md "Worker memory")."""
    from ocrfleet.detection.margins import trims_by_default
    from ocrfleet.ocr.pipeline import PRESETS, preset_det_params

    preset = s.page_preset or None
    if preset not in PRESETS:
        raise ValueError(f"page_preset must be one of {PRESETS[1:]} or empty, not {s.page_preset!r}")
    params = dict(preset_det_params(preset, det), trim_margins=trims_by_default(preset, det))  # as in-process
    if s.page_det_max_side > 0:
        params["max_side_limit"] = min(params["max_side_limit"], s.page_det_max_side)
    return params


def page_texts(result: dict) -> str:
    """A page job's text for people (``ocrfleet submit --wait``): a header per page, its text."""
    out = []
    for page in result.get("pages") or []:
        where = page["input_path"] + ("" if page["page_index"] is None else f" page {page['page_index']}")
        out.append(f"--- {where} ({page['lines']} lines)\n{page['text']}")
    return "\n".join(out)
